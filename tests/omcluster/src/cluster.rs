//! Bringing a cluster up, looking at it, and tearing it down (leftovers included).

use crate::cgroup::Cgroups;
use crate::spec::ClusterSpec;
use crate::state::{self, ClusterState, Lock, NodeState};
use crate::{net, node, Error};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every operation on a cluster needs root (namespaces, veths, cgroups).
pub fn require_root() -> Result<(), Error> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

/// The map every node of an N-node cluster gets as /etc/openmosix.map.
pub fn map_text(nodes: usize) -> String {
    format!(
        "# openMosix cluster map, written by omcluster\n# FIRST-ID  ADDRESS  COUNT\n1 {} {nodes}\n",
        net::node_addr(1)
    )
}

/// Brings up the cluster described by `spec`. `omcluster_bin` is the omcluster binary,
/// which starts each node's init. Leftovers of an earlier, crashed cluster of the same
/// name are removed first; a cluster of that name that is still up is an error.
pub fn up(spec: &ClusterSpec, omcluster_bin: &Path) -> Result<ClusterState, Error> {
    require_root()?;
    let _lock = Lock::take(&spec.name)?;
    if let Some(old) = ClusterState::load(&spec.name).ok().flatten() {
        let running = old
            .nodes
            .iter()
            .any(|n| state::is_same_process(n.init_pid, n.init_start));
        if running {
            return Err(Error::AlreadyUp(spec.name.clone()));
        }
    }
    let cgroups = Cgroups::detect()?;
    teardown(&spec.name, &cgroups)?;
    build(spec, omcluster_bin, &cgroups).inspect_err(|_| {
        let _ = teardown(&spec.name, &cgroups);
    })
}

fn build(spec: &ClusterSpec, bin: &Path, cgroups: &Cgroups) -> Result<ClusterState, Error> {
    let name = &spec.name;
    let io = |what: &str, e: std::io::Error| Error::State(format!("{what}: {e}"));
    fs::create_dir_all(state::cluster_dir(name))
        .map_err(|e| io(&format!("create {}", state::cluster_dir(name).display()), e))?;
    net::create_bridge(name)?;
    let map = map_text(spec.nodes.len());
    let host_hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    let node_hosts: String = (1..=spec.nodes.len() as u16)
        .map(|i| format!("{} node{i}\n", net::node_addr(i)))
        .collect();

    let mut nodes = Vec::new();
    for (i, ns) in spec.nodes.iter().enumerate() {
        let i = i as u16 + 1;
        net::create_node(name, i)?;
        cgroups.create_node(name, i, ns.cpu, ns.mem)?;
        let dir = state::node_dir(name, i);
        let upper = dir.join("etc.upper");
        for d in [&upper, &dir.join("etc.work")] {
            fs::create_dir_all(d).map_err(|e| io(&format!("create {}", d.display()), e))?;
        }
        let files = [
            ("openmosix.map", spec.map.then(|| map.clone())),
            ("hostname", Some(format!("node{i}\n"))),
            (
                "hosts",
                Some(format!("{host_hosts}\n# omcluster {name}\n{node_hosts}")),
            ),
        ];
        for (file, text) in files {
            let Some(text) = text else { continue };
            let p = upper.join(file);
            fs::write(&p, text).map_err(|e| io(&format!("write {}", p.display()), e))?;
        }
        let fs_file = dir.join(node::FS_FILE);
        let fs_json = serde_json::to_string(&spec.fs).map_err(|e| Error::State(e.to_string()))?;
        fs::write(&fs_file, fs_json).map_err(|e| io(&format!("write {}", fs_file.display()), e))?;
        let out = Command::new(bin)
            .args([node::INIT_ARG, name, &i.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::NodeStart {
                node: i,
                reason: format!("cannot run {}: {e}", bin.display()),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let pid: Option<u32> = stdout.trim().parse().ok();
        let (Some(pid), true) = (pid, out.status.success()) else {
            return Err(Error::NodeStart {
                node: i,
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        };
        let start = state::start_time(pid).ok_or_else(|| Error::NodeStart {
            node: i,
            reason: format!("its init (pid {pid}) died at once"),
        })?;
        nodes.push(NodeState {
            node: i,
            hostname: format!("node{i}"),
            addr: net::node_addr(i),
            spec: *ns,
            init_pid: pid,
            init_start: start,
        });
    }
    let state = ClusterState {
        name: name.clone(),
        nodes,
    };
    state.save()?;
    if let Some(d) = &spec.daemon {
        start_daemons(&state, d, bin)?;
    }
    Ok(state)
}

/// Gives every node the same new cluster key (made by `omd keygen`, in the node's /etc
/// as /etc/omd/cluster.key) and starts omd in each; returns once every omd is ready.
fn start_daemons(state: &ClusterState, d: &crate::DaemonSpec, bin: &Path) -> Result<(), Error> {
    let first = state::node_dir(&state.name, 1).join("etc.upper/omd/cluster.key");
    let out = Command::new(&d.bin)
        .args(["keygen", "--force", "--out"])
        .arg(&first)
        .output()
        .map_err(|e| Error::State(format!("cannot run {}: {e}", d.bin.display())))?;
    if !out.status.success() {
        return Err(Error::State(format!(
            "omd keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    for n in &state.nodes[1..] {
        let dir = state::node_dir(&state.name, n.node).join("etc.upper/omd");
        fs::create_dir_all(&dir)
            .and_then(|_| fs::copy(&first, dir.join("cluster.key")).map(|_| ()))
            .map_err(|e| Error::State(format!("cannot give node {} the key: {e}", n.node)))?;
    }
    for n in &state.nodes {
        let out = Command::new(bin)
            .args(["exec", "--name", &state.name, &n.node.to_string(), "--"])
            .arg(&d.bin)
            .args(["--log", "/run/omd/omd.log"])
            .args(&d.args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::NodeStart {
                node: n.node,
                reason: format!("cannot run omd: {e}"),
            })?;
        if !out.status.success() {
            return Err(Error::NodeStart {
                node: n.node,
                reason: format!(
                    "omd did not start: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
    }
    Ok(())
}

/// What `down` found and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: usize,
    pub cgroups: usize,
    pub files: bool,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }
}

/// Removes everything of the cluster `name`: its processes, namespaces, veths, bridge,
/// cgroups and files. Works from the state record when there is one, and also finds the
/// remains of a crashed `up` or `down` without it.
pub fn down(name: &str) -> Result<Removed, Error> {
    crate::spec::check_name(name)?;
    require_root()?;
    let _lock = Lock::take(name)?;
    let removed = teardown(name, &Cgroups::detect()?)?;
    let _ = fs::remove_file(Path::new(state::STATE_ROOT).join(format!("{name}.lock")));
    Ok(removed)
}

/// Names of every cluster that has something on this machine.
pub fn cluster_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(state::STATE_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.extend(net::cluster_names());
    if let Ok(cg) = Cgroups::detect() {
        names.extend(cg.cluster_names());
    }
    names.sort();
    names.dedup();
    names
}

fn teardown(name: &str, cgroups: &Cgroups) -> Result<Removed, Error> {
    let mut removed = Removed::default();
    let mut problems = Vec::new();

    // 1. The nodes' inits: killing pid 1 of a pid namespace kills all of the node.
    let mut inits: Vec<u32> = ClusterState::load(name)
        .ok()
        .flatten()
        .map(|s| {
            s.nodes
                .iter()
                .filter(|n| state::is_same_process(n.init_pid, n.init_start))
                .map(|n| n.init_pid)
                .collect()
        })
        .unwrap_or_default();
    let members = cgroups.cluster_procs(name);
    inits.extend(members.iter().copied().filter(|&p| is_node_init(p, name)));
    inits.sort_unstable();
    inits.dedup();
    for &pid in &inits {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    removed.processes = members.len().max(inits.len());

    // 2. Whatever is still in the cluster's cgroups was started in the cluster. Host-side
    // `omcluster exec` wrappers exit by themselves once their command is gone; anything
    // still there after a second is killed.
    let mut killed_rest = false;
    let emptied = poll(Duration::from_secs(10), |elapsed| {
        let left = cgroups.cluster_procs(name);
        if !left.is_empty() && !killed_rest && elapsed > Duration::from_secs(1) {
            for &pid in &left {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            killed_rest = true;
        }
        left.is_empty()
    });
    if !emptied {
        let left = cgroups.cluster_procs(name);
        problems.push(format!("processes still running in its cgroups: {left:?}"));
    }

    // The inits were re-parented to the host's init when their starter exited; wait until
    // it has reaped them, so that nothing of the cluster is left even as a zombie.
    poll(Duration::from_secs(5), |_| {
        !inits
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
    });

    // 3. cgroups (an emptied cgroup can be busy for a moment).
    let dirs = cgroups
        .cluster_dirs(name)
        .iter()
        .filter(|d| d.exists())
        .count();
    let mut failed = Vec::new();
    poll(Duration::from_secs(1), |_| {
        failed = cgroups.remove_cluster(name);
        failed.is_empty()
    });
    removed.cgroups = dirs;
    problems.extend(
        failed
            .iter()
            .map(|(p, e)| format!("cgroup {} not removed: {e}", p.display())),
    );

    // 4. Network namespaces (their veths and the bridge go with them).
    removed.namespaces = net::cluster_namespaces(name).len();
    problems.extend(net::remove_cluster(name).iter().map(|e| e.to_string()));

    // 5. Files: state record, node /etc overlays.
    let dir = state::cluster_dir(name);
    if dir.exists() {
        removed.files = true;
        if let Err(e) = fs::remove_dir_all(&dir) {
            problems.push(format!("{} not removed: {e}", dir.display()));
        }
    }
    if problems.is_empty() {
        Ok(removed)
    } else {
        Err(Error::Teardown {
            cluster: name.to_string(),
            problems,
        })
    }
}

/// Calls `done` (with the time elapsed) every 20 ms until it returns true or `limit` has
/// passed; says whether it returned true.
fn poll(limit: Duration, mut done: impl FnMut(Duration) -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done(start.elapsed()) {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True if `pid` is the init of a node of cluster `name`.
fn is_node_init(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.len() >= 3 && args[1] == node::PID1_ARG.as_bytes() && args[2] == name.as_bytes()
}

/// What `omcluster status` shows of one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub node: NodeState,
    pub running: bool,
    /// Processes in the node, its init included.
    pub processes: usize,
    /// CPU time the node has used, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Memory the node uses now, in bytes.
    pub mem_used: Option<u64>,
}

/// The nodes of a running cluster and what they are doing.
pub fn status(name: &str) -> Result<Vec<NodeStatus>, Error> {
    crate::spec::check_name(name)?;
    let state = ClusterState::load(name)?.ok_or_else(|| Error::NotUp(name.to_string()))?;
    let cgroups = Cgroups::detect()?;
    Ok(state
        .nodes
        .into_iter()
        .map(|n| NodeStatus {
            running: state::is_same_process(n.init_pid, n.init_start),
            processes: cgroups.procs(name, n.node).len(),
            cpu_seconds: cgroups.cpu_usage_ns(name, n.node).map(|ns| ns as f64 / 1e9),
            mem_used: cgroups.mem_usage(name, n.node),
            node: n,
        })
        .collect())
}
