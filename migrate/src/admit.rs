//! What the migration port lets in before a peer has proven anything, in the spirit of
//! OpenSSH's pre-authentication limits: a bounded number of handshakes under way in all
//! and from any one address, each of which ends within the handshake's deadline; and
//! log lines about dropped links at a bounded rate, so a flood cannot fill the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Handshakes under way at a time, in all.
pub const MAX_STARTUPS: usize = 64;
/// Handshakes under way at a time from one address.
pub const MAX_STARTUPS_PER_ADDR: usize = 8;

/// The handshakes under way.
#[derive(Debug, Default, Clone)]
pub struct Startups(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One handshake's place; given back when dropped.
#[derive(Debug)]
pub struct Startup {
    of: Startups,
    ip: IpAddr,
}

impl Startups {
    /// A place for a handshake from `ip`, or None when there are too many already.
    pub fn admit(&self, ip: IpAddr) -> Option<Startup> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = m.values().sum();
        let here = m.entry(ip).or_default();
        if total >= MAX_STARTUPS || *here >= MAX_STARTUPS_PER_ADDR {
            return None;
        }
        *here += 1;
        Some(Startup {
            of: self.clone(),
            ip,
        })
    }

    /// Handshakes under way.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Whether none is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        let mut m = self.of.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// At most `burst` events per `window` pass; the rest are counted and reported with
/// the next one that passes.
#[derive(Debug)]
pub struct Throttle {
    burst: u32,
    window: Duration,
    state: Mutex<(Instant, u32, u64)>,
}

impl Throttle {
    /// A throttle letting `burst` events through per `window`.
    pub fn new(burst: u32, window: Duration) -> Throttle {
        Throttle {
            burst,
            window,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Some(n) if this event may be logged, n being how many were held back since the
    /// last one that was; None if it must not.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(s.0) >= self.window {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 >= self.burst {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startups_are_bounded_per_address_and_in_all_and_come_back() {
        let s = Startups::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..MAX_STARTUPS_PER_ADDR)
            .map(|_| s.admit(a).unwrap())
            .collect();
        assert!(s.admit(a).is_none(), "one address holds at most its share");
        let mut others = vec![];
        for i in 0.. {
            let ip: IpAddr = format!("10.0.1.{i}").parse().unwrap();
            match s.admit(ip) {
                Some(g) => others.push(g),
                None => break,
            }
        }
        assert_eq!(s.len(), MAX_STARTUPS);
        drop(held);
        assert_eq!(s.len(), MAX_STARTUPS - MAX_STARTUPS_PER_ADDR);
        assert!(s.admit(a).is_some());
        drop(others);
        assert!(s.is_empty());
    }

    #[test]
    fn a_throttle_passes_a_burst_then_reports_what_it_held_back() {
        let t = Throttle::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let got: Vec<_> = (0..10).map(|_| t.allow_at(t0)).collect();
        assert_eq!(&got[..3], &[Some(0); 3]);
        assert!(got[3..].iter().all(Option::is_none));
        assert_eq!(t.allow_at(t0 + Duration::from_secs(11)), Some(7));
        assert_eq!(t.allow_at(t0 + Duration::from_secs(11)), Some(0));
    }
}
