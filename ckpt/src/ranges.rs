//! The lazy pager's bookkeeping of the pages still to fill: disjoint, half-open address
//! ranges of the restored process, each knowing where its bytes are in the page source.
//! At first every range is at its source address; an `mremap` moves a range of the
//! process, not its bytes in the source, so a moved range keeps its source address. Pure
//! logic, tested on its own.

use std::collections::BTreeMap;

/// A piece of a [`RangeMap`]: the process's `[start, end)`, whose bytes the source holds
/// at `[src, src + (end - start))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// First address in the process.
    pub start: u64,
    /// End (exclusive) in the process.
    pub end: u64,
    /// Where `start`'s bytes are in the source.
    pub src: u64,
}

impl Piece {
    /// Its length.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// The part of it inside `[start, end)` (possibly empty).
    fn clip(&self, start: u64, end: u64) -> Piece {
        let s = self.start.max(start);
        let e = self.end.min(end).max(s);
        Piece {
            start: s,
            end: e,
            src: self.src + (s - self.start),
        }
    }
}

/// Disjoint half-open ranges `[start, end)` with their source addresses, merged when
/// they touch both in the process and in the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeMap {
    /// start -> (end, src)
    map: BTreeMap<u64, (u64, u64)>,
}

impl RangeMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total length covered.
    pub fn total(&self) -> u64 {
        self.map.iter().map(|(s, (e, _))| e - s).sum()
    }

    /// The pieces, in address order.
    pub fn iter(&self) -> impl Iterator<Item = Piece> + '_ {
        self.map
            .iter()
            .map(|(&start, &(end, src))| Piece { start, end, src })
    }

    /// The first piece, if any.
    pub fn first(&self) -> Option<Piece> {
        self.iter().next()
    }

    /// Adds `[start, end)` at its own source address (`src == start`), replacing
    /// whatever covered it.
    pub fn insert(&mut self, start: u64, end: u64) {
        self.put(Piece {
            start,
            end,
            src: start,
        });
    }

    /// Adds `p`, replacing whatever covered its range, and merges it with neighbours
    /// that continue it in the source too.
    fn put(&mut self, p: Piece) {
        if p.is_empty() {
            return;
        }
        self.remove(p.start, p.end);
        let mut p = p;
        if let Some((&ps, &(pe, psrc))) = self.map.range(..p.start).next_back() {
            if pe == p.start && psrc + (pe - ps) == p.src {
                self.map.remove(&ps);
                p = Piece {
                    start: ps,
                    end: p.end,
                    src: psrc,
                };
            }
        }
        if let Some(&(ne, nsrc)) = self.map.get(&p.end) {
            if p.src + p.len() == nsrc {
                self.map.remove(&p.end);
                p.end = ne;
            }
        }
        self.map.insert(p.start, (p.end, p.src));
    }

    /// Removes `[start, end)`; returns how much of it was in the map.
    pub fn remove(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let mut touched: Vec<Piece> = Vec::new();
        if let Some((&ps, &(pe, src))) = self.map.range(..start).next_back() {
            if pe > start {
                touched.push(Piece {
                    start: ps,
                    end: pe,
                    src,
                });
            }
        }
        touched.extend(self.map.range(start..end).map(|(&s, &(e, src))| Piece {
            start: s,
            end: e,
            src,
        }));
        let mut removed = 0;
        for p in touched {
            self.map.remove(&p.start);
            removed += p.clip(start, end).len();
            for keep in [p.clip(p.start, start), p.clip(end, p.end)] {
                if !keep.is_empty() {
                    self.map.insert(keep.start, (keep.end, keep.src));
                }
            }
        }
        removed
    }

    /// Whether `addr` is covered.
    pub fn contains(&self, addr: u64) -> bool {
        self.map
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, &(e, _))| addr < e)
    }

    /// The parts of `[start, end)` that are in the map, in order.
    pub fn intersect(&self, start: u64, end: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        if let Some((&ps, &(pe, src))) = self.map.range(..start).next_back() {
            out.push(
                Piece {
                    start: ps,
                    end: pe,
                    src,
                }
                .clip(start, end),
            );
        }
        for (&s, &(e, src)) in self.map.range(start..end) {
            out.push(
                Piece {
                    start: s,
                    end: e,
                    src,
                }
                .clip(start, end),
            );
        }
        out.retain(|p| !p.is_empty());
        out
    }

    /// Removes every part whose bytes lie in the source inside one of `sources`' ranges
    /// (source addresses: where a piece was moved, not where it is now); returns how
    /// much was removed.
    pub fn remove_sources(&mut self, sources: &RangeMap) -> u64 {
        let mut gone = Vec::new();
        for p in self.iter() {
            for d in sources.intersect(p.src, p.src + p.len()) {
                gone.push((p.start + (d.start - p.src), p.start + (d.end - p.src)));
            }
        }
        gone.into_iter().map(|(s, e)| self.remove(s, e)).sum()
    }

    /// Moves whatever is in `[from, from + len)` to `[to, to + len)` (an `mremap`),
    /// keeping each moved piece's source address. Any part of the destination that was
    /// in the map before is dropped first: its old contents were unmapped by the move.
    /// Returns how much was moved.
    pub fn relocate(&mut self, from: u64, to: u64, len: u64) -> u64 {
        let moved = self.intersect(from, from + len);
        let total = self.remove(from, from + len);
        self.remove(to, to + len);
        for p in moved {
            self.put(Piece {
                start: p.start - from + to,
                end: p.end - from + to,
                src: p.src,
            });
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::{Piece, RangeMap};

    fn map(ranges: &[(u64, u64)]) -> RangeMap {
        let mut s = RangeMap::new();
        for &(a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    fn list(s: &RangeMap) -> Vec<(u64, u64, u64)> {
        s.iter().map(|p| (p.start, p.end, p.src)).collect()
    }

    #[test]
    fn remove_sources_goes_by_where_the_bytes_are_not_where_they_went() {
        let mut s = map(&[(0, 100), (200, 300)]);
        // [50, 60) moves to [1000, 1010): its bytes are still at 50 in the source.
        s.relocate(50, 1000, 10);
        let gone = s.remove_sources(&map(&[(40, 55), (250, 400)]));
        assert_eq!(gone, 10 + 5 + 50);
        assert_eq!(
            list(&s),
            vec![(0, 40, 0), (60, 100, 60), (200, 250, 200), (1005, 1010, 55)]
        );
        assert_eq!(s.remove_sources(&RangeMap::new()), 0);
    }

    #[test]
    fn insert_merges_touching_and_overlapping() {
        assert_eq!(list(&map(&[(0, 10), (10, 20)])), vec![(0, 20, 0)]);
        assert_eq!(
            list(&map(&[(5, 10), (0, 6), (30, 40), (8, 31)])),
            vec![(0, 40, 0)]
        );
        assert_eq!(list(&map(&[(0, 1), (2, 3)])), vec![(0, 1, 0), (2, 3, 2)]);
        assert_eq!(map(&[(0, 1), (2, 3)]).total(), 2);
    }

    #[test]
    fn remove_splits_and_trims_keeping_sources() {
        let mut s = map(&[(0, 100)]);
        s.remove(10, 20);
        assert_eq!(list(&s), vec![(0, 10, 0), (20, 100, 20)]);
        s.remove(0, 15);
        assert_eq!(list(&s), vec![(20, 100, 20)]);
        s.remove(90, 200);
        assert_eq!(list(&s), vec![(20, 90, 20)]);
        s.remove(0, 1000);
        assert!(s.is_empty());
    }

    #[test]
    fn contains_and_intersect() {
        let s = map(&[(10, 20), (30, 40)]);
        assert!(!s.contains(9));
        assert!(s.contains(10));
        assert!(!s.contains(20));
        let got: Vec<_> = s
            .intersect(15, 35)
            .iter()
            .map(|p| (p.start, p.end))
            .collect();
        assert_eq!(got, vec![(15, 20), (30, 35)]);
        assert_eq!(s.intersect(0, 5), vec![]);
        assert_eq!(
            s.intersect(12, 13),
            vec![Piece {
                start: 12,
                end: 13,
                src: 12
            }]
        );
    }

    #[test]
    fn relocate_moves_ranges_but_not_their_sources() {
        let mut s = map(&[(0, 10), (100, 110)]);
        s.relocate(0, 200, 10);
        assert_eq!(list(&s), vec![(100, 110, 100), (200, 210, 0)]);
        // A moved piece found later at its new place still comes from the old one.
        assert_eq!(
            s.intersect(205, 207),
            vec![Piece {
                start: 205,
                end: 207,
                src: 5
            }]
        );
        // Moving a hole over a pending range drops it.
        s.relocate(50, 100, 10);
        assert_eq!(list(&s), vec![(200, 210, 0)]);
        // Moving next to a range whose source does not continue it keeps them apart.
        s.insert(300, 310);
        s.relocate(200, 290, 10);
        assert_eq!(list(&s), vec![(290, 300, 0), (300, 310, 300)]);
        // Moving it back where its source continues merges again.
        s.relocate(290, 0, 10);
        s.relocate(300, 10, 10);
        assert_eq!(list(&s), vec![(0, 10, 0), (10, 20, 300)]);
        s.relocate(10, 200, 10);
        s.insert(10, 20);
        assert_eq!(list(&s), vec![(0, 20, 0), (200, 210, 300)]);
    }

    /// Random inserts, removes and moves against a model holding, per address, the
    /// source address of its bytes.
    #[test]
    fn random_operations_match_a_model() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const N: usize = 256;
        let mut s = RangeMap::new();
        let mut model: [Option<u64>; N] = [None; N];
        for _ in 0..5000 {
            let a = next() % N as u64;
            let b = (a + next() % 40).min(N as u64);
            match next() % 3 {
                0 => {
                    s.insert(a, b);
                    for x in a..b {
                        model[x as usize] = Some(x);
                    }
                }
                1 => {
                    let there = model[a as usize..b as usize].iter().flatten().count();
                    assert_eq!(s.remove(a, b), there as u64, "removed from {a}..{b}");
                    model[a as usize..b as usize].fill(None);
                }
                _ => {
                    let len = b - a;
                    let to = next() % (N as u64 - len + 1);
                    let there = model[a as usize..b as usize].iter().flatten().count();
                    assert_eq!(s.relocate(a, to, len), there as u64, "moved from {a}..{b}");
                    let moved: Vec<_> = model[a as usize..b as usize].to_vec();
                    model[a as usize..b as usize].fill(None);
                    model[to as usize..(to + len) as usize].copy_from_slice(&moved);
                }
            }
            for (i, want) in model.iter().enumerate() {
                let got = s.intersect(i as u64, i as u64 + 1).first().map(|p| p.src);
                assert_eq!(got, *want, "address {i}");
                assert_eq!(s.contains(i as u64), want.is_some(), "address {i}");
            }
            let v: Vec<Piece> = s.iter().collect();
            assert!(
                v.windows(2).all(|w| w[0].end < w[1].start
                    || (w[0].end == w[1].start && w[0].src + w[0].len() != w[1].src)),
                "not merged: {v:?}"
            );
            assert_eq!(
                s.total(),
                model.iter().filter(|m| m.is_some()).count() as u64
            );
        }
    }
}
