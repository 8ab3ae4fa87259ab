//! Address arithmetic for ranges of consecutive addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as a position in its family's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub(crate) v6: bool,
    pub(crate) n: u128,
}

impl From<IpAddr> for Pos {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Pos {
                v6: false,
                n: u128::from(u32::from(a)),
            },
            IpAddr::V6(a) => Pos {
                v6: true,
                n: u128::from(a),
            },
        }
    }
}

/// The address `n` places after `a`, or None past the end of its address space.
pub(crate) fn offset(a: IpAddr, n: u128) -> Option<IpAddr> {
    match a {
        IpAddr::V4(a) => {
            let v = u128::from(u32::from(a)).checked_add(n)?;
            Some(IpAddr::V4(Ipv4Addr::from(u32::try_from(v).ok()?)))
        }
        IpAddr::V6(a) => Some(IpAddr::V6(Ipv6Addr::from(u128::from(a).checked_add(n)?))),
    }
}

/// Inclusive range of addresses within one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) first: Pos,
    pub(crate) last: Pos,
}

impl Span {
    pub(crate) fn overlaps(&self, other: &Span) -> bool {
        self.first.v6 == other.first.v6
            && self.first.n <= other.last.n
            && other.first.n <= self.last.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_stops_at_the_end_of_each_family() {
        let last4: IpAddr = "255.255.255.254".parse().unwrap();
        assert_eq!(offset(last4, 1), Some("255.255.255.255".parse().unwrap()));
        assert_eq!(offset(last4, 2), None);
        let last6: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap();
        assert!(offset(last6, 1).is_some());
        assert_eq!(offset(last6, 2), None);
        let a: IpAddr = "10.0.0.255".parse().unwrap();
        assert_eq!(offset(a, 1), Some("10.0.1.0".parse().unwrap()));
    }

    #[test]
    fn spans_of_different_families_never_overlap() {
        let v4 = Span {
            first: Pos { v6: false, n: 1 },
            last: Pos { v6: false, n: 10 },
        };
        let v6 = Span {
            first: Pos { v6: true, n: 1 },
            last: Pos { v6: true, n: 10 },
        };
        assert!(!v4.overlaps(&v6));
        assert!(v4.overlaps(&v4));
    }
}
