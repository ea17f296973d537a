//! berthd's memory budget for the transports: one pool of bytes that every connection draws
//! from for the request it is reading and the replies it has not written yet. A request
//! that cannot get its share within the request deadline is answered `resource_exhausted`
//! instead of growing memory, so no number of peers can make the transports hold more than
//! the budget (plus one reply being encoded per running call, itself capped).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes are granted in chunks of at least this much, so reading a long line does not take
/// the semaphore once per read.
const GRANT: usize = 64 << 10;
/// Requests up to this size are read without a charge: their cost is bounded by the
/// number of connections, and an exhausted budget must still let a client be told so.
pub const UNCHARGED_REQUEST: usize = GRANT;

/// The shared pool of bytes.
#[derive(Clone, Debug)]
pub struct Budget {
    pool: Arc<Semaphore>,
    total: usize,
}

/// Bytes held out of a [`Budget`]; returned when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    held: Option<OwnedSemaphorePermit>,
}

impl Charge {
    /// How many bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Adds `other`'s bytes to this charge.
    pub fn absorb(&mut self, other: Charge) {
        match (&mut self.held, other.held) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (_, None) => {}
        }
    }
}

impl Budget {
    pub fn new(total_bytes: u64) -> Budget {
        let total = usize::try_from(total_bytes)
            .unwrap_or(usize::MAX)
            .clamp(GRANT, Semaphore::MAX_PERMITS);
        Budget {
            pool: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held by anyone right now.
    pub fn available(&self) -> usize {
        self.pool.available_permits()
    }

    /// Takes `bytes` out of the pool, waiting at most `wait` for other connections to give
    /// some back. The error says what the caller must put in its `resource_exhausted` answer.
    pub async fn charge(&self, bytes: usize, wait: Duration) -> Result<Charge, String> {
        if bytes == 0 {
            return Ok(Charge::default());
        }
        let exhausted = || self.exhausted_message(bytes);
        let n = u32::try_from(bytes).map_err(|_| exhausted())?;
        if bytes > self.total {
            return Err(exhausted());
        }
        if wait.is_zero() {
            return match self.pool.clone().try_acquire_many_owned(n) {
                Ok(permit) => Ok(Charge { held: Some(permit) }),
                Err(_) => Err(exhausted()),
            };
        }
        match tokio::time::timeout(wait, self.pool.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(Charge { held: Some(permit) }),
            _ => Err(exhausted()),
        }
    }

    /// What a client is told when the budget cannot hold `bytes` more.
    pub fn exhausted_message(&self, bytes: usize) -> String {
        format!(
            "berthd's memory budget (memory_budget_bytes = {}) cannot hold up to {bytes} more \
             bytes for this request now; retry later or ask for less",
            self.total
        )
    }

    /// Grows `charge` so it covers at least `needed` bytes (in [`GRANT`] steps).
    pub async fn cover(
        &self,
        charge: &mut Charge,
        needed: usize,
        wait: Duration,
    ) -> Result<(), String> {
        let held = charge.bytes();
        if needed <= held {
            return Ok(());
        }
        let more = (needed - held)
            .max(GRANT)
            .min(self.total.saturating_sub(held).max(1));
        let extra = self.charge(more.max(needed - held), wait).await?;
        charge.absorb(extra);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_return_their_bytes_when_dropped_and_the_pool_never_overdraws() {
        let budget = Budget::new(1 << 20);
        let wait = Duration::from_millis(50);
        let a = budget.charge(700 << 10, wait).await.expect("fits");
        let err = budget
            .charge(400 << 10, wait)
            .await
            .expect_err("over budget");
        assert!(err.contains("memory_budget_bytes = 1048576"), "{err}");
        drop(a);
        let mut b = budget.charge(400 << 10, wait).await.expect("freed");
        budget.cover(&mut b, 600 << 10, wait).await.expect("grows");
        assert!(b.bytes() >= 600 << 10);
        assert!(
            budget.charge(2 << 20, wait).await.is_err(),
            "never above the total"
        );
    }
}
