//! A set of disjoint, half-open address ranges. Used by the lazy pager to track which
//! pages still have to be filled. Pure logic, tested on its own.

use std::collections::BTreeMap;

/// Disjoint half-open ranges `[start, end)`, merged when they touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total length covered.
    pub fn total(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// The ranges, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(s, e)| (*s, *e))
    }

    /// The first range, if any.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.map.iter().next().map(|(s, e)| (*s, *e))
    }

    /// Adds `[start, end)`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // Merge with a range starting at or before `start` that reaches it.
        if let Some((&ps, &pe)) = self.map.range(..=s).next_back() {
            if pe >= s {
                s = ps;
                e = e.max(pe);
                self.map.remove(&ps);
            }
        }
        // Swallow ranges starting inside [s, e].
        let inside: Vec<u64> = self.map.range(s..=e).map(|(k, _)| *k).collect();
        for k in inside {
            let ke = self.map.remove(&k).unwrap_or(k);
            e = e.max(ke);
        }
        self.map.insert(s, e);
    }

    /// Removes `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut touched: Vec<(u64, u64)> = Vec::new();
        if let Some((&ps, &pe)) = self.map.range(..start).next_back() {
            if pe > start {
                touched.push((ps, pe));
            }
        }
        touched.extend(self.map.range(start..end).map(|(s, e)| (*s, *e)));
        for (s, e) in touched {
            self.map.remove(&s);
            if s < start {
                self.map.insert(s, start);
            }
            if e > end {
                self.map.insert(end, e);
            }
        }
    }

    /// Whether `addr` is covered.
    pub fn contains(&self, addr: u64) -> bool {
        self.map
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, &e)| addr < e)
    }

    /// The parts of `[start, end)` that are in the set, in order.
    pub fn intersect(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if let Some((_, &pe)) = self.map.range(..start).next_back() {
            if pe > start {
                out.push((start, pe.min(end)));
            }
        }
        for (&s, &e) in self.map.range(start..end) {
            out.push((s, e.min(end)));
        }
        out.retain(|(s, e)| s < e);
        out
    }

    /// Moves whatever is in `[from, from + len)` to `[to, to + len)` (an `mremap`). Any
    /// part of the destination that was in the set before is dropped first: its old
    /// contents were unmapped by the move.
    pub fn relocate(&mut self, from: u64, to: u64, len: u64) {
        let moved = self.intersect(from, from + len);
        self.remove(from, from + len);
        self.remove(to, to + len);
        for (s, e) in moved {
            self.insert(s - from + to, e - from + to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RangeSet;

    fn set(ranges: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    fn list(s: &RangeSet) -> Vec<(u64, u64)> {
        s.iter().collect()
    }

    #[test]
    fn insert_merges_touching_and_overlapping() {
        assert_eq!(list(&set(&[(0, 10), (10, 20)])), vec![(0, 20)]);
        assert_eq!(
            list(&set(&[(5, 10), (0, 6), (30, 40), (8, 31)])),
            vec![(0, 40)]
        );
        assert_eq!(list(&set(&[(0, 1), (2, 3)])), vec![(0, 1), (2, 3)]);
        assert_eq!(set(&[(0, 1), (2, 3)]).total(), 2);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = set(&[(0, 100)]);
        s.remove(10, 20);
        assert_eq!(list(&s), vec![(0, 10), (20, 100)]);
        s.remove(0, 15);
        assert_eq!(list(&s), vec![(20, 100)]);
        s.remove(90, 200);
        assert_eq!(list(&s), vec![(20, 90)]);
        s.remove(0, 1000);
        assert!(s.is_empty());
    }

    #[test]
    fn contains_and_intersect() {
        let s = set(&[(10, 20), (30, 40)]);
        assert!(!s.contains(9));
        assert!(s.contains(10));
        assert!(!s.contains(20));
        assert_eq!(s.intersect(15, 35), vec![(15, 20), (30, 35)]);
        assert_eq!(s.intersect(0, 5), vec![]);
        assert_eq!(s.intersect(12, 13), vec![(12, 13)]);
    }

    #[test]
    fn relocate_moves_and_drops_destination() {
        let mut s = set(&[(0, 10), (100, 110)]);
        s.relocate(0, 200, 10);
        assert_eq!(list(&s), vec![(100, 110), (200, 210)]);
        // Moving a hole over a pending range drops it.
        s.relocate(50, 100, 10);
        assert_eq!(list(&s), vec![(200, 210)]);
    }

    #[test]
    fn random_operations_match_a_bitmap() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = RangeSet::new();
        let mut bits = [false; 256];
        for _ in 0..5000 {
            let a = next() % 256;
            let b = (a + next() % 40).min(256);
            if next() % 2 == 0 {
                s.insert(a, b);
                bits[a as usize..b as usize]
                    .iter_mut()
                    .for_each(|x| *x = true);
            } else {
                s.remove(a, b);
                bits[a as usize..b as usize]
                    .iter_mut()
                    .for_each(|x| *x = false);
            }
            for (i, &bit) in bits.iter().enumerate() {
                assert_eq!(s.contains(i as u64), bit, "address {i}");
            }
            let v = list(&s);
            assert!(v.windows(2).all(|w| w[0].1 < w[1].0), "not merged: {v:?}");
        }
    }
}
