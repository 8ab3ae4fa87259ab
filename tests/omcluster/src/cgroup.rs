//! The node cgroups: CPU quota, memory limit, CPU accounting, membership.
//!
//! Works with cgroup v1 (one hierarchy per controller, or combined ones such as
//! `cpu,cpuacct`) and cgroup v2 (one unified hierarchy). Which one is used is read from
//! /proc/self/mountinfo: a v1 hierarchy with the controller wins, else the v2 hierarchy
//! if it offers the controller.

use crate::Error;
use std::fs;
use std::path::{Path, PathBuf};

/// Parent of every omcluster cgroup, in each hierarchy.
pub const GROUP: &str = "omcluster";
const PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    V1,
    V2,
}

/// One mounted hierarchy that we use, and the controllers we use from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    root: PathBuf,
    kind: Kind,
    controllers: Vec<&'static str>,
}

/// The hierarchies that give us `cpu`, `cpuacct` (or v2's cpu.stat) and `memory`.
#[derive(Debug, Clone)]
pub struct Cgroups {
    hierarchies: Vec<Hierarchy>,
}

impl Cgroups {
    /// Finds the hierarchies for cpu, CPU accounting and memory on this machine.
    pub fn detect() -> Result<Self, Error> {
        let info = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::Cgroup(format!("cannot read /proc/self/mountinfo: {e}")))?;
        Self::from_mountinfo(&info, |p| fs::read_to_string(p).ok())
    }

    fn from_mountinfo(info: &str, read: impl Fn(&Path) -> Option<String>) -> Result<Self, Error> {
        let mut v1: Vec<(PathBuf, Vec<String>)> = Vec::new();
        let mut v2: Option<(PathBuf, Vec<String>)> = None;
        for line in info.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mnt), Some(fstype), Some(opts)) =
                (fields.get(4), fields.get(sep + 1), fields.get(sep + 3))
            else {
                continue;
            };
            let mnt = PathBuf::from(unescape(mnt));
            match *fstype {
                "cgroup" => v1.push((mnt, opts.split(',').map(String::from).collect())),
                "cgroup2" if v2.is_none() => {
                    let ctl = read(&mnt.join("cgroup.controllers")).unwrap_or_default();
                    v2 = Some((mnt, ctl.split_whitespace().map(String::from).collect()));
                }
                _ => {}
            }
        }
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        // cpuacct is v1's accounting; v2 accounts in cpu.stat of the cpu controller.
        for ctl in ["cpu", "cpuacct", "memory"] {
            let found = v1
                .iter()
                .find(|(_, opts)| opts.iter().any(|o| o == ctl))
                .map(|(root, _)| (root.clone(), Kind::V1))
                .or_else(|| {
                    let (root, ctls) = v2.as_ref()?;
                    let v2_name = if ctl == "cpuacct" { "cpu" } else { ctl };
                    ctls.iter()
                        .any(|c| c == v2_name)
                        .then(|| (root.clone(), Kind::V2))
                });
            let Some((root, kind)) = found else {
                return Err(Error::Cgroup(format!(
                    "no cgroup hierarchy offers the `{ctl}` controller \
                     (neither a cgroup v1 mount nor the cgroup2 mount has it)"
                )));
            };
            match hierarchies.iter_mut().find(|h| h.root == root) {
                Some(h) => h.controllers.push(ctl),
                None => hierarchies.push(Hierarchy {
                    root,
                    kind,
                    controllers: vec![ctl],
                }),
            }
        }
        Ok(Self { hierarchies })
    }

    /// Human-readable summary, e.g. `cgroup v1 (cpu: /sys/fs/cgroup/cpu, ...)`.
    pub fn describe(&self) -> String {
        let kind = if self.hierarchies.iter().all(|h| h.kind == Kind::V2) {
            "cgroup v2"
        } else {
            "cgroup v1"
        };
        let parts: Vec<String> = self
            .hierarchies
            .iter()
            .map(|h| format!("{}: {}", h.controllers.join("+"), h.root.display()))
            .collect();
        format!("{kind} ({})", parts.join(", "))
    }

    /// The cluster's directory in every hierarchy.
    pub fn cluster_dirs(&self, cluster: &str) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| h.root.join(GROUP).join(cluster))
            .collect()
    }

    /// Names of the clusters that have a cgroup directory.
    pub fn cluster_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for h in &self.hierarchies {
            for e in fs::read_dir(h.root.join(GROUP))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.path().is_dir() {
                    names.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names
    }

    fn node_dir(&self, h: &Hierarchy, cluster: &str, node: u16) -> PathBuf {
        h.root.join(GROUP).join(cluster).join(format!("node{node}"))
    }

    fn with(&self, ctl: &str) -> &Hierarchy {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.contains(&ctl))
            .expect("detect() found every controller")
    }

    /// Creates the node's cgroups with a CPU quota of `cpu` CPUs and `mem` bytes of memory.
    pub fn create_node(&self, cluster: &str, node: u16, cpu: f64, mem: u64) -> Result<(), Error> {
        for h in &self.hierarchies {
            let dir = self.node_dir(h, cluster, node);
            if h.kind == Kind::V2 {
                // Each level must hand the controllers down to the next.
                let ctl: Vec<String> = h
                    .controllers
                    .iter()
                    .filter(|c| **c != "cpuacct")
                    .map(|c| format!("+{c}"))
                    .collect();
                let mut level = h.root.clone();
                for part in [GROUP, cluster] {
                    write(&level.join("cgroup.subtree_control"), &ctl.join(" "))?;
                    level = level.join(part);
                    mkdir(&level)?;
                }
                write(&level.join("cgroup.subtree_control"), &ctl.join(" "))?;
            }
            mkdir(&dir)?;
        }
        let quota = (cpu * PERIOD_US as f64).round() as u64;
        let c = self.with("cpu");
        let cdir = self.node_dir(c, cluster, node);
        match c.kind {
            Kind::V1 => {
                write(&cdir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&cdir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            Kind::V2 => write(&cdir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?,
        }
        let m = self.with("memory");
        let mdir = self.node_dir(m, cluster, node);
        match m.kind {
            Kind::V1 => {
                write(&mdir.join("memory.limit_in_bytes"), &mem.to_string())?;
                let memsw = mdir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &mem.to_string())?;
                }
            }
            Kind::V2 => {
                write(&mdir.join("memory.max"), &mem.to_string())?;
                let swap = mdir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` (0 = the caller) into the node's cgroups.
    pub fn join(&self, cluster: &str, node: u16, pid: u32) -> Result<(), Error> {
        for h in &self.hierarchies {
            write(
                &self.node_dir(h, cluster, node).join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        Ok(())
    }

    /// Processes in the node's cgroups (host pids).
    pub fn procs(&self, cluster: &str, node: u16) -> Vec<u32> {
        self.procs_in(&self.node_dir(self.with("cpu"), cluster, node))
    }

    fn procs_in(&self, dir: &Path) -> Vec<u32> {
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Every process in any cgroup of the cluster, in any hierarchy.
    pub fn cluster_procs(&self, cluster: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        for dir in self.cluster_dirs(cluster) {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                pids.extend(self.procs_in(&e.path()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// CPU time used by the node so far, in nanoseconds.
    pub fn cpu_usage_ns(&self, cluster: &str, node: u16) -> Option<u64> {
        let h = self.with("cpuacct");
        let dir = self.node_dir(h, cluster, node);
        match h.kind {
            Kind::V1 => fs::read_to_string(dir.join("cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok(),
            Kind::V2 => fs::read_to_string(dir.join("cpu.stat"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us * 1000),
        }
    }

    /// Memory the node uses now, in bytes.
    pub fn mem_usage(&self, cluster: &str, node: u16) -> Option<u64> {
        let h = self.with("memory");
        let file = match h.kind {
            Kind::V1 => "memory.usage_in_bytes",
            Kind::V2 => "memory.current",
        };
        fs::read_to_string(self.node_dir(h, cluster, node).join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes the cluster's cgroups (they must be empty of processes). Returns the
    /// directories that could not be removed.
    pub fn remove_cluster(&self, cluster: &str) -> Vec<(PathBuf, std::io::Error)> {
        let mut failed = Vec::new();
        for dir in self.cluster_dirs(cluster) {
            if !dir.exists() {
                continue;
            }
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    if let Err(err) = fs::remove_dir(e.path()) {
                        failed.push((e.path(), err));
                    }
                }
            }
            if let Err(err) = fs::remove_dir(&dir) {
                failed.push((dir.clone(), err));
            }
            // The shared parent goes when the last cluster goes (it may still be in use).
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        failed
    }
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir)
        .map_err(|e| Error::Cgroup(format!("cannot create cgroup {}: {e}", dir.display())))
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    fs::write(path, value)
        .map_err(|e| Error::Cgroup(format!("cannot write `{value}` to {}: {e}", path.display())))
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_SPLIT: &str = "\
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn v1_with_separate_hierarchies() {
        let c = Cgroups::from_mountinfo(V1_SPLIT, |_| Some("hugetlb".into())).unwrap();
        assert_eq!(c.hierarchies.len(), 3);
        assert!(c.hierarchies.iter().all(|h| h.kind == Kind::V1));
        assert_eq!(
            c.cluster_dirs("x")[2],
            PathBuf::from("/sys/fs/cgroup/memory/omcluster/x")
        );
    }

    #[test]
    fn v1_with_combined_cpu_cpuacct() {
        let info = "\
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let c = Cgroups::from_mountinfo(info, |_| None).unwrap();
        assert_eq!(c.hierarchies.len(), 2);
        assert_eq!(c.hierarchies[0].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn pure_v2() {
        let info = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let c =
            Cgroups::from_mountinfo(info, |_| Some("cpuset cpu io memory pids".into())).unwrap();
        assert_eq!(c.hierarchies.len(), 1);
        assert_eq!(c.hierarchies[0].kind, Kind::V2);
        assert_eq!(
            c.describe(),
            "cgroup v2 (cpu+cpuacct+memory: /sys/fs/cgroup)"
        );
    }

    #[test]
    fn missing_controller_is_named() {
        let info = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let e = Cgroups::from_mountinfo(info, |_| Some("cpu".into())).unwrap_err();
        assert!(e.to_string().contains("`memory` controller"), "{e}");
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
