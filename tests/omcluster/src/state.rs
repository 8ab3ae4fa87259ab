//! Where a cluster keeps its files, and the record of a running cluster.

use crate::spec::NodeSpec;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::PathBuf;

/// Directory of every cluster's files on the host.
pub const STATE_ROOT: &str = "/run/omcluster";

pub fn cluster_dir(cluster: &str) -> PathBuf {
    PathBuf::from(STATE_ROOT).join(cluster)
}

pub fn node_dir(cluster: &str, node: u16) -> PathBuf {
    cluster_dir(cluster).join(format!("node{node}"))
}

fn state_file(cluster: &str) -> PathBuf {
    cluster_dir(cluster).join("state.json")
}

/// One running node: its capacity and the host pid of its init process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: u16,
    pub hostname: String,
    pub addr: std::net::Ipv4Addr,
    #[serde(flatten)]
    pub spec: NodeSpec,
    /// Host pid of the node's init (pid 1 inside the node).
    pub init_pid: u32,
    /// Its start time (field 22 of /proc/PID/stat), so that a reused pid is never
    /// mistaken for it.
    pub init_start: u64,
}

/// The record of a cluster that is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub nodes: Vec<NodeState>,
}

impl ClusterState {
    pub fn load(cluster: &str) -> Result<Option<Self>, Error> {
        let path = state_file(cluster);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::State(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::State(format!("cannot read {}: {e}", path.display()))),
        }
    }

    pub fn save(&self) -> Result<(), Error> {
        let path = state_file(&self.name);
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).expect("state serialises");
        fs::write(&tmp, text)
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(|e| Error::State(format!("cannot write {}: {e}", path.display())))
    }

    pub fn node(&self, node: u16) -> Result<&NodeState, Error> {
        self.nodes
            .iter()
            .find(|n| n.node == node)
            .ok_or_else(|| Error::NoSuchNode {
                cluster: self.name.clone(),
                node,
                count: self.nodes.len(),
            })
    }
}

/// Start time of a process (clock ticks since boot), or None if it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// True if `pid` is still the process that was started at `start`.
pub fn is_same_process(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// An exclusive lock on one cluster name, held while it is brought up or down.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

impl Lock {
    pub fn take(cluster: &str) -> Result<Self, Error> {
        fs::create_dir_all(STATE_ROOT)
            .map_err(|e| Error::State(format!("cannot create {STATE_ROOT}: {e}")))?;
        let path = PathBuf::from(STATE_ROOT).join(format!("{cluster}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::State(format!("cannot open {}: {e}", path.display())))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::State(format!("cannot lock {}: {e}", path.display())))
    }
}
