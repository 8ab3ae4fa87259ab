//! The cluster network: one bridge in a namespace of its own, one veth per node.
//!
//! ```text
//!   netns omc-NAME.br:   br0 ── veth1 ── veth2 ── ... (no address, no route)
//!                               │        │
//!   netns omc-NAME.n1:   eth0 198.18.0.1/24      lo
//!   netns omc-NAME.n2:            eth0 198.18.0.2/24  lo
//! ```
//! Every cluster has its own bridge namespace, so clusters never see each other and all
//! can use 198.18.0.0/24 (a range reserved for benchmarking networks). No node has a
//! default route: only the other nodes of its cluster are reachable. The host's own
//! network namespace is never changed.

use crate::Error;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace omcluster creates.
pub const NETNS_PREFIX: &str = "omc-";

/// Address of node `i` (1-based).
pub fn node_addr(i: u16) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, i as u8)
}

/// The network of the nodes, in CIDR notation.
pub const SUBNET: &str = "198.18.0.0/24";

pub fn bridge_ns(cluster: &str) -> String {
    format!("{NETNS_PREFIX}{cluster}.br")
}

pub fn node_ns(cluster: &str, i: u16) -> String {
    format!("{NETNS_PREFIX}{cluster}.n{i}")
}

/// Runs `ip ARGS`, with its stderr in the error.
pub fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Net(format!("cannot run `ip` (is iproute2 installed?): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Net(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates the bridge namespace and its bridge.
pub fn create_bridge(cluster: &str) -> Result<(), Error> {
    let br = bridge_ns(cluster);
    ip(&["netns", "add", &br])?;
    ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &br, "link", "set", "br0", "up"])
}

/// Creates node `i`'s namespace, wires it to the bridge and gives it its address.
pub fn create_node(cluster: &str, i: u16) -> Result<(), Error> {
    let (br, ns) = (bridge_ns(cluster), node_ns(cluster, i));
    let veth = format!("veth{i}");
    let addr = format!("{}/24", node_addr(i));
    ip(&["netns", "add", &ns])?;
    ip(&[
        "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    ip(&["-n", &br, "link", "set", &veth, "master", "br0", "up"])?;
    ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])
}

/// Named namespaces of a cluster that exist now.
pub fn cluster_namespaces(cluster: &str) -> Vec<String> {
    let prefix = format!("{NETNS_PREFIX}{cluster}.");
    list_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Names of the clusters that have at least one namespace.
pub fn cluster_names() -> Vec<String> {
    list_namespaces()
        .iter()
        .filter_map(|n| {
            n.strip_prefix(NETNS_PREFIX)?
                .rsplit_once('.')
                .map(|(c, _)| c.to_string())
        })
        .collect()
}

fn list_namespaces() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Deletes the cluster's namespaces (the veths and the bridge go with them).
pub fn remove_cluster(cluster: &str) -> Vec<Error> {
    cluster_namespaces(cluster)
        .into_iter()
        .filter_map(|ns| {
            ip(&["netns", "delete", &ns])
                .err()
                .filter(|_| Path::new(NETNS_DIR).join(&ns).exists())
        })
        .collect()
}
