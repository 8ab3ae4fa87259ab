//! The gossip algorithm, independent of clocks and sockets, so that the daemon and the
//! simulator (`omd simulate`) run exactly this code.
//!
//! As in MOSIX: every node keeps a vector with one entry per node of the cluster. Each
//! entry holds the newest information it has about that node, stamped with the local
//! time at which that information was fresh. Once per interval a node sends ONE message
//! to ONE peer chosen at random: its own entry (age 0) and the `window` entries with the
//! newest stamps. The receiver turns each carried age into a stamp of its own clock
//! (`now - age`) and keeps, for every node, whichever entry is newer: older information
//! never overwrites newer. Clocks need not agree, only ages travel.
//!
//! Finding the freshest entries must not cost a scan of the vector per message (10,000
//! nodes would make that 10^8 per simulated second). Stamps only ever grow, so the table
//! keeps the `window` freshest indices up to date as entries change, in O(window).

use rand::Rng;

/// Milliseconds on the local clock (the daemon: since it started; the simulator: since
/// the simulation started).
pub type Millis = i64;

/// Stamp of an entry that was never heard of.
pub const NEVER: Millis = Millis::MIN;

#[derive(Debug, Clone, Copy, Default)]
struct Entry<P> {
    stamp: Millis,
    payload: P,
}

/// One node's knowledge of all nodes, indexed 0..n (the caller maps node numbers).
#[derive(Debug, Clone)]
pub struct Table<P> {
    me: usize,
    entries: Vec<Entry<P>>,
    /// Indices (never `me`) of the freshest entries, at most `window` of them.
    fresh: Vec<u32>,
    window: usize,
}

impl<P: Copy + Default> Table<P> {
    /// A table for `n` nodes held by node `me`, sending `window` records besides its own.
    pub fn new(n: usize, me: usize, window: usize) -> Self {
        assert!(me < n, "node index {me} outside a table of {n}");
        Self {
            me,
            entries: vec![
                Entry {
                    stamp: NEVER,
                    payload: P::default()
                };
                n
            ],
            fresh: Vec::with_capacity(window),
            window,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Records this node's own state, fresh at `now`.
    pub fn set_own(&mut self, now: Millis, payload: P) {
        self.entries[self.me] = Entry {
            stamp: now,
            payload,
        };
    }

    /// Offers information about node `idx` that was fresh at `stamp`. It is kept only if
    /// it is newer than what the table holds; says whether it was. Information about
    /// this node itself is never taken from others.
    pub fn offer(&mut self, idx: usize, stamp: Millis, payload: P) -> bool {
        if idx == self.me || idx >= self.entries.len() || stamp <= self.entries[idx].stamp {
            return false;
        }
        self.entries[idx] = Entry { stamp, payload };
        self.note_fresh(idx as u32, stamp);
        true
    }

    fn note_fresh(&mut self, idx: u32, stamp: Millis) {
        if self.window == 0 || self.fresh.contains(&idx) {
            return;
        }
        if self.fresh.len() < self.window {
            self.fresh.push(idx);
            return;
        }
        let (pos, oldest) = self
            .fresh
            .iter()
            .enumerate()
            .map(|(p, &i)| (p, self.entries[i as usize].stamp))
            .min_by_key(|&(_, s)| s)
            .expect("window is not empty");
        if stamp > oldest {
            self.fresh[pos] = idx;
        }
    }

    /// Merges a received message: `(index, age, payload)` triples, ages relative to
    /// `now`. Returns how many entries became newer.
    pub fn merge(
        &mut self,
        now: Millis,
        records: impl IntoIterator<Item = (usize, Millis, P)>,
    ) -> usize {
        records
            .into_iter()
            .filter(|&(idx, age, p)| self.offer(idx, now - age.max(0), p))
            .count()
    }

    /// The message this node sends at `now`: its own entry first, then the freshest
    /// entries it holds, as `(index, age, payload)`.
    pub fn message(&self, now: Millis, out: &mut Vec<(usize, Millis, P)>) {
        out.clear();
        let own = &self.entries[self.me];
        out.push((self.me, now.saturating_sub(own.stamp).max(0), own.payload));
        for &i in &self.fresh {
            let e = &self.entries[i as usize];
            out.push((i as usize, (now - e.stamp).max(0), e.payload));
        }
    }

    /// The indices of the freshest entries (the window a message carries), never this
    /// node's own.
    pub fn freshest(&self) -> impl Iterator<Item = usize> + '_ {
        self.fresh.iter().map(|&i| i as usize)
    }

    /// The newest information about node `idx`: its stamp and payload.
    pub fn get(&self, idx: usize) -> Option<(Millis, P)> {
        let e = self.entries.get(idx)?;
        (e.stamp != NEVER).then_some((e.stamp, e.payload))
    }

    /// How old the newest information about `idx` is at `now`.
    pub fn age(&self, idx: usize, now: Millis) -> Option<Millis> {
        self.get(idx).map(|(s, _)| (now - s).max(0))
    }

    /// A node is up while information about it younger than `down_after` is held.
    pub fn is_up(&self, idx: usize, now: Millis, down_after: Millis) -> bool {
        self.age(idx, now).is_some_and(|a| a < down_after)
    }

    /// Calls `f(index, stamp)` for every entry ever heard of, this node's own included.
    pub fn for_each_stamp(&self, mut f: impl FnMut(usize, Millis)) {
        for (i, e) in self.entries.iter().enumerate() {
            if e.stamp != NEVER {
                f(i, e.stamp);
            }
        }
    }
}

/// The peer to send to: uniformly random among the `n` nodes other than `me`.
pub fn pick_peer(rng: &mut impl Rng, n: usize, me: usize) -> Option<usize> {
    if n < 2 {
        return None;
    }
    let k = rng.random_range(0..n - 1);
    Some(if k >= me { k + 1 } else { k })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn older_information_never_overwrites_newer() {
        let mut t: Table<u32> = Table::new(4, 0, 2);
        assert!(t.offer(1, 100, 7));
        assert!(!t.offer(1, 90, 8), "older");
        assert!(!t.offer(1, 100, 9), "same age");
        assert_eq!(t.get(1), Some((100, 7)));
        assert!(t.offer(1, 101, 10));
        assert_eq!(t.get(1), Some((101, 10)));
        assert!(!t.offer(0, 1000, 1), "nobody tells me about myself");
        assert!(!t.offer(9, 1000, 1), "not a node");
    }

    #[test]
    fn merge_turns_ages_into_local_stamps_and_up_follows_age() {
        let mut t: Table<u8> = Table::new(3, 0, 4);
        assert_eq!(t.merge(10_000, [(1, 500, 1), (2, 3000, 2)]), 2);
        assert_eq!(t.age(1, 10_000), Some(500));
        assert_eq!(t.age(2, 11_000), Some(4000));
        assert!(t.is_up(1, 10_000, 2000));
        assert!(!t.is_up(2, 10_000, 2000));
        assert!(!t.is_up(2, 10_000, 2000));
        assert!(t.is_up(2, 10_000, 3001));
        // Heard again: up again.
        t.merge(20_000, [(2, 0, 3)]);
        assert!(t.is_up(2, 20_500, 2000));
    }

    #[test]
    fn the_message_is_own_record_then_the_freshest() {
        let mut t: Table<u8> = Table::new(6, 2, 2);
        t.set_own(1000, 42);
        t.offer(0, 100, 0);
        t.offer(1, 300, 1);
        t.offer(3, 200, 3);
        t.offer(4, 50, 4);
        let mut m = Vec::new();
        t.message(1000, &mut m);
        assert_eq!(m[0], (2, 0, 42));
        let mut rest: Vec<usize> = m[1..].iter().map(|r| r.0).collect();
        rest.sort();
        assert_eq!(rest, vec![1, 3]);
    }

    #[test]
    fn peers_are_uniform_and_never_self() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = [0u32; 5];
        for _ in 0..50_000 {
            let p = pick_peer(&mut rng, 5, 2).unwrap();
            seen[p] += 1;
        }
        assert_eq!(seen[2], 0);
        for (i, &c) in seen.iter().enumerate().filter(|(i, _)| *i != 2) {
            assert!((11_500..13_500).contains(&c), "peer {i} chosen {c} times");
        }
        assert_eq!(pick_peer(&mut rng, 1, 0), None);
    }

    proptest! {
        /// The incrementally kept window is exactly the `window` freshest entries.
        #[test]
        fn window_is_the_freshest(
            offers in proptest::collection::vec((0usize..40, 0i64..1000), 0..300),
            window in 1usize..8,
        ) {
            let mut t: Table<u8> = Table::new(40, 0, window);
            for (i, s) in offers {
                t.offer(i, s, 0);
            }
            let mut m = Vec::new();
            t.message(2000, &mut m);
            let mut got: Vec<i64> = m[1..].iter().map(|r| 2000 - r.1).collect();
            got.sort_unstable_by(|a, b| b.cmp(a));
            let mut all: Vec<i64> = (1..40).filter_map(|i| t.get(i).map(|g| g.0)).collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            all.truncate(window);
            prop_assert_eq!(got, all);
        }
    }
}
