//! A small seeded generator (SplitMix64), so a failing crash run can be replayed with the
//! same `--seed`. Not for anything that needs real randomness.

/// SplitMix64: one u64 of state, good enough spread for picking actions and delays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for a sub-task (a client thread, a round), independent of the parent's
    /// later draws.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next_u64() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let at = self.next_u64() % items.len() as u64;
        &items[at as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_and_ranges_are_inclusive() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (xs, ys): (Vec<u64>, Vec<u64>) =
            (0..50).map(|_| (a.range(3, 5), b.range(3, 5))).unzip();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (3..=5).contains(x)));
        assert!(xs.contains(&3) && xs.contains(&5));
    }
}
