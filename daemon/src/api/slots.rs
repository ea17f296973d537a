//! Connection slots and who gives one up when they run out.
//!
//! berthd serves at most `max_connections` connections at once. A connection that has not yet
//! sent one complete request (an HTTP request with its body, a non-blank NDJSON line, a
//! WebSocket upgrade) is *unproven*: it costs a slot and has done nothing for it. When every
//! slot is taken, a newcomer that has sent its first bytes evicts the oldest unproven
//! connection instead of being refused; a newcomer that is silent evicts nobody (it waits,
//! holding no slot, up to 2 s for its first byte in a [`Lobby`], then tries again, else it
//! is refused). So peers that connect and stay silent, however fast they reconnect, cannot
//! lock out a client that sends its request: silent ones do not push each other out, so
//! there is no eviction storm, and a client that speaks pushes out the longest-waiting silent
//! peer; once it has completed its request it is never evicted. Only when every slot holds a proven connection
//! is a newcomer refused (`resource_exhausted`), as before; idle proven connections still
//! leave after `idle_timeout_secs`.
//!
//! Not covered: peers that each send *half* a request and reconnect at once evict one
//! another, and a newcomer among them may be evicted before its request is read.
//!
//! The policy is the same for every uid: root's own silent connections are evicted like
//! anyone's, and a socket-group member's prompt request is served like root's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The slots of one listener.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Connections holding a slot, evicted ones excluded.
    live: usize,
    next_id: u64,
    /// Unproven connections by arrival (ids grow), each with the signal that evicts it.
    unproven: BTreeMap<u64, Arc<Eviction>>,
    /// Connections evicted since start-up.
    evicted: u64,
}

/// Tells an evicted connection to end.
#[derive(Debug, Default)]
struct Eviction {
    /// Set (under the slots' lock) when the slot was taken away.
    done: AtomicBool,
    notify: Notify,
}

/// One connection's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    eviction: Arc<Eviction>,
}

/// Whether a new connection got a slot.
#[derive(Debug)]
pub enum Admission {
    /// Served; `evicted` is true when an unproven connection gave up its slot for it.
    Admitted { slot: Slot, evicted: bool },
    /// Every slot holds a proven connection.
    Full,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic: every change is a single step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a new connection a slot: a free one, else (if `may_evict`) the oldest unproven
    /// connection's.
    pub fn admit(self: &Arc<Self>, may_evict: bool) -> Admission {
        let mut st = self.lock();
        let evicted = if st.live < self.max {
            st.live += 1;
            false
        } else if !may_evict {
            return Admission::Full;
        } else if let Some((_, victim)) = st.unproven.pop_first() {
            // The victim's slot passes to the newcomer: `live` is unchanged, and the
            // victim, no longer in `unproven`, does not give it back again when it ends.
            victim.done.store(true, Ordering::Relaxed);
            victim.notify.notify_one();
            st.evicted += 1;
            true
        } else {
            return Admission::Full;
        };
        let id = st.next_id;
        st.next_id += 1;
        let eviction = Arc::new(Eviction::default());
        st.unproven.insert(id, eviction.clone());
        Admission::Admitted {
            slot: Slot {
                slots: self.clone(),
                id,
                eviction,
            },
            evicted,
        }
    }

    /// Connections evicted since start-up.
    #[cfg(test)]
    fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

impl Slot {
    /// Records that the connection completed a request, so it is never evicted. `false`
    /// when it was evicted first: it must then end without serving the request.
    pub fn proven(&self) -> bool {
        let mut st = self.slots.lock();
        st.unproven.remove(&self.id);
        !self.eviction.done.load(Ordering::Relaxed)
    }

    /// Resolves when a newer connection took this slot.
    pub async fn evicted(&self) {
        self.eviction.notify.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        st.unproven.remove(&self.id);
        if !self.eviction.done.load(Ordering::Relaxed) {
            st.live -= 1;
        }
    }
}

/// Silent newcomers that found every slot taken, waiting (holding no slot) for their first
/// byte. It holds at most `cap`; when full, the one that has waited longest is refused to
/// make room, so silent peers reconnecting in a loop cannot keep a newcomer out of it.
#[derive(Debug)]
pub struct Lobby {
    cap: usize,
    state: Mutex<(u64, BTreeMap<u64, Arc<Notify>>)>,
}

/// A newcomer's place in the [`Lobby`]; left when dropped.
#[derive(Debug)]
pub struct Waiting {
    lobby: Arc<Lobby>,
    id: u64,
    kicked: Arc<Notify>,
}

impl Lobby {
    pub fn new(cap: usize) -> Arc<Lobby> {
        Arc::new(Lobby {
            cap: cap.max(1),
            state: Mutex::default(),
        })
    }

    /// Lets a newcomer in, refusing the longest waiter if the lobby is full.
    pub fn enter(self: &Arc<Self>) -> Waiting {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1.len() >= self.cap {
            if let Some((_, oldest)) = st.1.pop_first() {
                oldest.notify_one();
            }
        }
        let id = st.0;
        st.0 += 1;
        let kicked = Arc::new(Notify::new());
        st.1.insert(id, kicked.clone());
        Waiting {
            lobby: self.clone(),
            id,
            kicked,
        }
    }
}

impl Waiting {
    /// Resolves when a newer newcomer took this place.
    pub async fn kicked(&self) {
        self.kicked.notified().await;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut st = self.lobby.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> (Slot, bool) {
        match a {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn a_full_listener_evicts_the_oldest_unproven_connection_and_never_a_proven_one() {
        let slots = Slots::new(3);
        let (proven, _) = admitted(slots.admit(true));
        assert!(proven.proven());
        let (old, _) = admitted(slots.admit(true));
        let (young, _) = admitted(slots.admit(true));
        let (newcomer, evicted) = admitted(slots.admit(true));
        assert!(evicted, "full: the oldest unproven gives way");
        assert!(!old.proven(), "the evicted one may not serve its request");
        assert!(young.proven() && newcomer.proven());
        assert!(matches!(slots.admit(true), Admission::Full), "all proven");
        drop(old);
        assert!(
            matches!(slots.admit(true), Admission::Full),
            "an evicted slot is not freed twice"
        );
        drop(young);
        let (_again, evicted) = admitted(slots.admit(true));
        assert!(!evicted, "a closed proven connection frees its slot");
        assert_eq!(slots.evicted(), 1);
        assert!(proven.proven(), "proving twice is harmless");
    }

    #[test]
    fn a_silent_newcomer_evicts_nobody() {
        let slots = Slots::new(1);
        let (silent, _) = admitted(slots.admit(false));
        assert!(matches!(slots.admit(false), Admission::Full));
        let (_speaking, evicted) = admitted(slots.admit(true));
        assert!(
            evicted,
            "the refused silent newcomer left the unproven one evictable"
        );
        assert!(!silent.proven());
    }

    #[tokio::test]
    async fn an_evicted_slot_is_told_even_before_it_waits() {
        let slots = Slots::new(1);
        let (victim, _) = admitted(slots.admit(true));
        let (_newcomer, evicted) = admitted(slots.admit(true));
        assert!(evicted);
        tokio::time::timeout(std::time::Duration::from_secs(1), victim.evicted())
            .await
            .expect("the eviction was stored for it");
    }

    #[tokio::test]
    async fn a_full_lobby_refuses_its_longest_waiter() {
        let lobby = Lobby::new(2);
        let first = lobby.enter();
        let second = lobby.enter();
        drop(second);
        let _third = lobby.enter();
        let _fourth = lobby.enter();
        tokio::time::timeout(std::time::Duration::from_secs(1), first.kicked())
            .await
            .expect("the longest waiter made room");
    }
}
