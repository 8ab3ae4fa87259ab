//! `om-map`: the openMosix cluster map.
//!
//! The map (`/etc/openmosix.map`) says which machines form the cluster and which node
//! number each one has. Its format is the one openMosix's `setpe(1)` defined:
//!
//! ```text
//! # FIRST-ID  HOST-OR-IP    COUNT    COUNT consecutive nodes from FIRST-ID,
//! 1           198.18.0.1    4        with consecutive addresses (IPv4 or IPv6)
//! 10          node10.lan    1        a host name is resolved when the map is loaded
//! # ID        ALT-IP        ALIAS    an extra address of an existing node (gateways)
//! 1           10.1.0.1      ALIAS
//! ```
//!
//! `#` starts a comment anywhere on a line; blank lines and any amount of whitespace are
//! fine. Node numbers are 1..=65535. [`parse`] checks the whole text and returns every
//! problem it finds, each with `file:line:` and the offending text, so a user can fix a
//! map in one pass.

mod addr;
mod error;
mod parse;
mod resolve;

pub use error::{ErrorKind, LoadError, MapError, MapErrors};
pub use parse::parse;
pub use resolve::{NoResolver, Resolver, SystemResolver};

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// A node number: 1..=65535 (0 is never a valid node).
pub type NodeId = u16;

/// The default location of the cluster map.
pub const DEFAULT_MAP_PATH: &str = "/etc/openmosix.map";

/// One node of the expanded map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The node's number.
    #[serde(rename = "node")]
    pub id: NodeId,
    /// The node's main address (the one other nodes talk to).
    #[serde(rename = "address")]
    pub addr: IpAddr,
    /// Extra addresses the node may send from (`ALIAS` lines), in map order.
    pub aliases: Vec<IpAddr>,
}

/// A validated, expanded cluster map: every node with its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ClusterMap {
    #[serde(serialize_with = "serialize_nodes")]
    nodes: BTreeMap<NodeId, Node>,
}

fn serialize_nodes<S: serde::Serializer>(
    nodes: &BTreeMap<NodeId, Node>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(nodes.values())
}

impl ClusterMap {
    /// Builds a map from an expanded table, checking the same rules as the parser
    /// (unique numbers, unique addresses, at least one node, no node 0).
    pub fn from_nodes(nodes: impl IntoIterator<Item = Node>) -> Result<Self, MapErrors> {
        parse(&Self::render(nodes.into_iter()), "<table>", &NoResolver)
    }

    /// Reads and checks a map file, resolving host names with the system resolver.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(parse(&text, &path.display().to_string(), &SystemResolver)?)
    }

    /// All nodes, by increasing node number.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Node> {
        self.nodes.values()
    }

    /// The node with this number, if the map has it.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Number of nodes in the map.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the map has no nodes (a parsed map never is).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node that owns `addr`, as its main address or as an alias.
    pub fn node_by_addr(&self, addr: IpAddr) -> Option<NodeId> {
        self.nodes
            .values()
            .find(|n| n.addr == addr || n.aliases.contains(&addr))
            .map(|n| n.id)
    }

    /// The map as text in the openMosix format, with runs of consecutive nodes and
    /// addresses folded into ranges. Parsing the text gives back an equal map.
    pub fn to_map_text(&self) -> String {
        Self::render(self.nodes.values().cloned())
    }

    fn render(nodes: impl Iterator<Item = Node>) -> String {
        let mut nodes: Vec<Node> = nodes.collect();
        nodes.sort_by_key(|n| n.id);
        let mut out = String::from("# openMosix cluster map\n# FIRST-ID  ADDRESS  COUNT\n");
        let mut i = 0;
        while i < nodes.len() {
            let first = &nodes[i];
            let mut count = 1usize;
            while let Some(next) = nodes.get(i + count) {
                let prev = &nodes[i + count - 1];
                let consecutive_id = u32::from(next.id) == u32::from(prev.id) + 1;
                if !consecutive_id || addr::offset(prev.addr, 1) != Some(next.addr) {
                    break;
                }
                count += 1;
            }
            let _ = writeln!(out, "{} {} {}", first.id, first.addr, count);
            i += count;
        }
        if nodes.iter().any(|n| !n.aliases.is_empty()) {
            out.push_str("# ID  ALT-ADDRESS  ALIAS\n");
            for n in &nodes {
                for a in &n.aliases {
                    let _ = writeln!(out, "{} {} ALIAS", n.id, a);
                }
            }
        }
        out
    }
}
