//! `omcluster`: a cluster of openMosix nodes on one Linux machine.
//!
//! Every node is a set of namespaces and cgroups, so that a node behaves like a machine
//! of its own: its own network (a veth on a private bridge, address 198.18.0.N), its own
//! files where they matter (/tmp, /run, and /etc through an overlay holding the node's
//! /etc/openmosix.map), its own host name (nodeN), its own processes (a pid namespace),
//! and its own CPU share and memory limit (cgroup v1 or v2). The host's network is never
//! touched.
//!
//! The `omcluster` command is a thin CLI over this library, and the test harness
//! ([`harness::TestCluster`]) is the same code: what the tests exercise is what users run.

pub mod cgroup;
pub mod cluster;
pub mod harness;
pub mod net;
pub mod node;
pub mod spec;
pub mod state;

pub use cluster::{cluster_names, down, status, up, NodeStatus, Removed};
pub use spec::{ClusterSpec, DaemonSpec, NodeSpec};
pub use state::{ClusterState, NodeState};

use std::path::PathBuf;

/// Everything that can go wrong building, entering or removing a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Spec(String),
    #[error("{0}")]
    Cgroup(String),
    #[error("{0}")]
    Net(String),
    #[error("{0}")]
    State(String),
    #[error("omcluster must run as root: it creates namespaces, veths and cgroups")]
    NotRoot,
    #[error("cluster `{0}` is already up; remove it first with `omcluster down --name {0}`")]
    AlreadyUp(String),
    #[error("no cluster named `{0}` is up (`omcluster status --all` lists clusters)")]
    NotUp(String),
    #[error("cluster `{cluster}` has no node {node} (its nodes are 1 to {count})")]
    NoSuchNode {
        cluster: String,
        node: u16,
        count: usize,
    },
    #[error(
        "node {node} of cluster `{cluster}` is not running (its init, pid {pid}, is gone); \
             run `omcluster down --name {cluster}` and bring the cluster up again"
    )]
    NodeDown {
        cluster: String,
        node: u16,
        pid: u32,
    },
    #[error("node {node} failed to start: {reason}")]
    NodeStart { node: u16, reason: String },
    #[error("cannot enter node {node}: {reason}")]
    Enter { node: u16, reason: String },
    #[error("removing cluster `{cluster}` left things behind:\n  {}", .problems.join("\n  "))]
    Teardown {
        cluster: String,
        problems: Vec<String>,
    },
}

/// The `omcluster` binary: `$OMCLUSTER_BIN`, else next to the running executable (or one
/// directory up, where cargo puts binaries beside `deps/`), else `omcluster` on the PATH.
pub fn omcluster_bin() -> PathBuf {
    sibling_bin("omcluster", "OMCLUSTER_BIN").unwrap_or_else(|| PathBuf::from("omcluster"))
}

/// A binary of the project: `$env`, else next to the running executable (or one
/// directory up, where cargo puts binaries beside `deps/`), else on the PATH.
pub fn sibling_bin(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}
