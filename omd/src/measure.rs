//! What this node has and does, read from the kernel: run queue, CPU quota and usage,
//! memory, and a speed benchmark.
//!
//! Inside a container or an omcluster node the numbers are those of the node's cgroups:
//! a node capped at a quarter of a CPU is a node of a quarter-speed CPU, and a node
//! limited to 512 MiB has 512 MiB of memory.

use procfs::process::Process;
use procfs::Current;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cgroup directories this process belongs to, where the controllers are mounted.
#[derive(Debug, Clone, Default)]
pub struct Cgroups {
    cpu: Option<Dir>,
    cpuacct: Option<Dir>,
    memory: Option<Dir>,
}

#[derive(Debug, Clone)]
struct Dir {
    /// Where the hierarchy is mounted.
    mount: PathBuf,
    /// Our cgroup, below `mount`.
    path: PathBuf,
    v2: bool,
}

impl Dir {
    /// Our cgroup's directory and each of its ancestors up to the mount point.
    fn chain(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.path
            .ancestors()
            .map(|a| self.mount.join(a.strip_prefix("/").unwrap_or(a)))
    }

    fn own(&self) -> PathBuf {
        self.chain().next().expect("at least the mount point")
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The value of `key` in a "key value" file such as memory.stat or cpu.stat.
fn stat_value(p: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Cgroups {
    /// Finds this process's cgroups; anything not found is simply absent (then the
    /// whole machine's numbers are used).
    pub fn detect() -> Self {
        let Ok(me) = Process::myself() else {
            return Self::default();
        };
        let (Ok(groups), Ok(mounts)) = (me.cgroups(), me.mountinfo()) else {
            return Self::default();
        };
        let mounts: Vec<_> = mounts.into_iter().collect();
        let mut out = Self::default();
        for g in groups.into_iter() {
            let v2 = g.hierarchy == 0 && g.controllers.is_empty();
            let mount = mounts.iter().find(|m| {
                if v2 {
                    m.fs_type == "cgroup2"
                } else {
                    m.fs_type == "cgroup"
                        && g.controllers
                            .iter()
                            .all(|c| m.super_options.contains_key(c))
                }
            });
            let Some(m) = mount else { continue };
            // A mount of a sub-tree (in a container) shows paths relative to its root.
            let path = Path::new(&g.pathname);
            let path = path
                .strip_prefix(&m.root)
                .map_or(path.to_path_buf(), |p| Path::new("/").join(p));
            let dir = Dir {
                mount: m.mount_point.clone(),
                path,
                v2,
            };
            let has = |c: &str| v2 || g.controllers.iter().any(|x| x == c);
            let available = |f: &str| !v2 || dir.own().join(f).exists();
            if has("cpu") && out.cpu.is_none() && available("cpu.max") {
                out.cpu = Some(dir.clone());
            }
            if has("cpuacct") && out.cpuacct.is_none() && !v2 {
                out.cpuacct = Some(dir.clone());
            }
            if v2 && out.cpuacct.is_none() && available("cpu.stat") {
                out.cpuacct = Some(dir.clone());
            }
            if has("memory") && out.memory.is_none() && available("memory.current") {
                out.memory = Some(dir);
            }
        }
        out
    }

    /// The CPU quota in CPUs (the tightest along the cgroup's ancestors), if any.
    pub fn cpu_quota(&self) -> Option<f64> {
        let d = self.cpu.as_ref()?;
        d.chain()
            .filter_map(|dir| {
                if d.v2 {
                    let text = std::fs::read_to_string(dir.join("cpu.max")).ok()?;
                    let mut it = text.split_whitespace();
                    let quota: f64 = it.next()?.parse().ok()?; // "max" fails: no quota
                    let period: f64 = it.next()?.parse().ok()?;
                    Some(quota / period)
                } else {
                    let quota: i64 = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
                        .ok()?
                        .trim()
                        .parse()
                        .ok()?;
                    let period = read_u64(&dir.join("cpu.cfs_period_us"))?;
                    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
                }
            })
            .reduce(f64::min)
    }

    /// CPU time used by the cgroup, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        let d = self.cpuacct.as_ref()?;
        if d.v2 {
            stat_value(&d.own().join("cpu.stat"), "usage_usec").map(|u| u * 1000)
        } else {
            read_u64(&d.own().join("cpuacct.usage"))
        }
    }

    /// (limit, usage, reclaimable cache) of the memory cgroup, when it has a limit.
    fn memory(&self) -> Option<(u64, u64, u64)> {
        let d = self.memory.as_ref()?;
        let (limit_file, usage_file, cache_key) = if d.v2 {
            ("memory.max", "memory.current", "inactive_file")
        } else {
            (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        };
        let limit = d
            .chain()
            .filter_map(|p| read_u64(&p.join(limit_file)))
            .min()?;
        let usage = read_u64(&d.own().join(usage_file))?;
        let cache = stat_value(&d.own().join("memory.stat"), cache_key).unwrap_or(0);
        Some((limit, usage, cache))
    }
}

/// Memory as `mosctl` reports it: (available to new processes, raw free, total).
pub fn memory(cg: &Cgroups) -> (u64, u64, u64) {
    let host = procfs::Meminfo::current().ok();
    let total = host.as_ref().map_or(0, |m| m.mem_total);
    let avail = host
        .as_ref()
        .map_or(0, |m| m.mem_available.unwrap_or(m.mem_free));
    let free = host.as_ref().map_or(0, |m| m.mem_free);
    match cg.memory() {
        Some((limit, usage, cache)) if limit < total => {
            // The machine may run short before the cgroup does.
            let available = limit.saturating_sub(usage.saturating_sub(cache)).min(avail);
            (available, limit.saturating_sub(usage).min(free), limit)
        }
        _ => (avail, free, total),
    }
}

/// The number of threads ready to run in this node (its pid namespace), except the
/// caller's own.
pub fn runnable() -> usize {
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    all.flatten()
        .filter(|p| p.pid != me)
        .filter_map(|p| p.tasks().ok())
        .flat_map(|tasks| tasks.flatten())
        .filter_map(|t| t.stat().ok())
        .filter(|s| s.state == 'R')
        .count()
}

/// CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Iterations of the benchmark loop per second of CPU time that make a standard CPU.
pub const REFERENCE_RATE: f64 = 250_000_000.0;

/// The speed of one CPU, unthrottled: a fixed integer loop timed by the thread's own CPU
/// clock for about `budget` of CPU time, so that other load on the machine (or a CPU
/// quota) does not change the result. The quota is applied by [`crate::load::node_speed`].
///
/// The budget is run in eight slices and the fastest slice counts: a virtual CPU that
/// the host took away for a moment, or caches another process had just filled, only
/// slow some slices (on a 2-CPU VM a single 150 ms run once measured under half the
/// speed of its neighbour's).
pub fn benchmark(budget: Duration) -> u32 {
    use nix::time::{clock_gettime, ClockId};
    let cpu_now = || {
        clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
            .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
            .unwrap_or_default()
    };
    let slice = (budget / 8).max(Duration::from_millis(2));
    let start_cpu = cpu_now();
    let start_wall = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut best: f64 = 0.0;
    loop {
        let slice_cpu = cpu_now();
        let mut iterations: u64 = 0;
        let used = loop {
            for _ in 0..20_000 {
                // xorshift: dependent integer operations the compiler cannot fold away.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            iterations += 20_000;
            std::hint::black_box(x);
            let used = cpu_now().saturating_sub(slice_cpu);
            if used >= slice {
                break used;
            }
        };
        best = best.max(iterations as f64 / used.as_secs_f64().max(1e-6));
        // The wall-clock bound keeps a starved start from taking long.
        if cpu_now().saturating_sub(start_cpu) >= budget || start_wall.elapsed() > budget * 20 {
            return (f64::from(om_proto::STANDARD_SPEED) * best / REFERENCE_RATE).round() as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_is_stable_and_plausible() {
        let a = benchmark(Duration::from_millis(100));
        let b = benchmark(Duration::from_millis(100));
        assert!(a > 1000 && a < 1_000_000, "{a}");
        let ratio = f64::from(a) / f64::from(b);
        assert!((0.7..1.4).contains(&ratio), "{a} vs {b}");
    }

    #[test]
    fn memory_is_consistent() {
        let (avail, free, total) = memory(&Cgroups::detect());
        assert!(
            total > 0 && avail <= total && free <= total,
            "{avail} {free} {total}"
        );
    }

    #[test]
    fn a_busy_thread_is_counted_as_runnable() {
        // Another process, so that it is not excluded as ours: a shell busy loop.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let seen = (0..20).map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            runnable()
        });
        let max = seen.max().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(max >= 1, "a spinning shell was never seen runnable");
    }
}
