//! Load arithmetic, without touching the kernel.
//!
//! The load of a node is its run-queue length normalised by its speed: `100` means that
//! the processes ready to run would keep one standard CPU ([`STANDARD_SPEED`]) busy. A
//! node of half the speed shows twice the load for the same run queue, and a node of two
//! CPUs half of it.
//!
//! MOSIX smooths the load in two ways (Barak & La'adan, "The MOSIX multicomputer
//! operating system for high performance cluster computing"): the load a node *exports*
//! to others rises at once and decays slowly, so that others do not all pounce on a node
//! whose load dipped for a moment; the load a node uses for its *own* decisions rises
//! slowly and drops at once, so that a short burst does not make it push processes away.

use om_proto::STANDARD_SPEED;

/// Each second, the exported load keeps this fraction of its excess over the measured
/// load (a half-life of about 3 s).
pub const EXPORT_DECAY: f64 = 0.8;
/// Each second, the local view moves only this fraction of the way up.
pub const LOCAL_RISE: f64 = 0.3;

/// The two smoothed views of a node's load, updated once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Smoothed {
    /// What other nodes are told.
    pub exported: f64,
    /// What this node uses itself.
    pub local: f64,
}

impl Smoothed {
    pub fn update(&mut self, raw: f64) {
        self.exported = if raw >= self.exported {
            raw
        } else {
            self.exported * EXPORT_DECAY + raw * (1.0 - EXPORT_DECAY)
        };
        self.local = if raw <= self.local {
            raw
        } else {
            self.local + (raw - self.local) * LOCAL_RISE
        };
    }
}

/// The load of `runnable` processes on `cpus` CPUs of speed `speed` each.
pub fn raw_load(runnable: f64, speed: u32, cpus: u16) -> f64 {
    let capacity = f64::from(speed.max(1)) * f64::from(cpus.max(1));
    100.0 * runnable * f64::from(STANDARD_SPEED) / capacity
}

/// The CPU capacity a node may use: the CPU quota (in CPUs) if there is one, else the
/// online CPUs. Returns (CPUs it may run on, capacity in CPUs).
pub fn capacity(online: usize, quota: Option<f64>) -> (u16, f64) {
    let online = online.max(1) as f64;
    let cap = quota.map_or(online, |q| q.min(online)).max(0.01);
    (cap.ceil() as u16, cap)
}

/// The speed of each of a node's CPUs: the speed measured on one unthrottled CPU, scaled
/// by the share of its CPUs it may actually use (a quarter-CPU quota makes a node of one
/// CPU at a quarter of the speed).
pub fn node_speed(measured: u32, cpus: u16, capacity: f64) -> u32 {
    let share = (capacity / f64::from(cpus.max(1))).min(1.0);
    (f64::from(measured) * share).round().max(1.0) as u32
}

/// Utilisation in hundredths of a percent of capacity, from CPU time used over an
/// interval of wall time.
pub fn utilisation(cpu_ns: u64, wall_ns: u64, capacity: f64) -> u16 {
    if wall_ns == 0 {
        return 0;
    }
    let u = cpu_ns as f64 / (wall_ns as f64 * capacity.max(0.01)) * 10_000.0;
    u.round().clamp(0.0, 10_000.0) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_load_rises_at_once_and_decays_slowly() {
        let mut s = Smoothed::default();
        s.update(400.0);
        assert_eq!(s.exported, 400.0);
        s.update(0.0);
        assert!((s.exported - 320.0).abs() < 1e-9);
        for _ in 0..20 {
            s.update(0.0);
        }
        assert!(s.exported < 5.0);
    }

    #[test]
    fn local_load_rises_slowly_and_drops_at_once() {
        let mut s = Smoothed::default();
        s.update(100.0);
        assert!((s.local - 30.0).abs() < 1e-9);
        s.update(100.0);
        assert!(s.local > 30.0 && s.local < 100.0);
        s.update(10.0);
        assert_eq!(s.local, 10.0);
    }

    #[test]
    fn load_is_normalised_by_speed_and_cpus() {
        assert_eq!(raw_load(1.0, STANDARD_SPEED, 1), 100.0);
        assert_eq!(raw_load(1.0, STANDARD_SPEED / 2, 1), 200.0);
        assert_eq!(raw_load(1.0, STANDARD_SPEED, 2), 50.0);
        assert_eq!(raw_load(0.0, 0, 0), 0.0);
    }

    #[test]
    fn quota_scales_speed() {
        assert_eq!(capacity(2, None), (2, 2.0));
        assert_eq!(capacity(2, Some(0.25)), (1, 0.25));
        assert_eq!(capacity(2, Some(8.0)), (2, 2.0));
        assert_eq!(capacity(4, Some(1.5)), (2, 1.5));
        assert_eq!(node_speed(12_000, 1, 0.25), 3000);
        assert_eq!(node_speed(12_000, 1, 1.0), 12_000);
        assert_eq!(node_speed(12_000, 2, 1.5), 9000);
        assert_eq!(utilisation(500_000_000, 1_000_000_000, 0.5), 10_000);
        assert_eq!(utilisation(250_000_000, 1_000_000_000, 1.0), 2500);
    }
}
