//! Wiring of om-migrate into omd: the migrations of this node learn the cluster from the
//! gossip state and the settings ([`NodeCluster`]), and place processes through the
//! balancer. Everything about moving a process is om-migrate's.

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

use om_map::NodeId;
use om_proto::Setting;

use crate::balancer::Balancing;
use crate::node::Node;

pub use om_migrate::{
    owner, Cluster, GuestIds, GuestProc, HomeProc, MigrateError, Migrations, Outcome,
    DEFAULT_BANDWIDTH,
};

/// The cluster as this omd sees it: its gossip state and settings, and its balancer.
pub struct NodeCluster {
    node: Arc<Mutex<Node>>,
    balancing: Arc<Balancing>,
}

impl NodeCluster {
    fn with<T>(&self, f: impl FnOnce(&Node) -> T) -> T {
        f(&self.node.lock().expect("node lock"))
    }
}

impl Cluster for NodeCluster {
    fn in_map(&self, n: NodeId) -> bool {
        self.with(|nd| nd.members().contains(&n))
    }
    fn is_up(&self, n: NodeId) -> bool {
        self.with(|nd| nd.is_up(n))
    }
    fn up_count(&self) -> usize {
        self.with(|nd| nd.up_nodes().len())
    }
    fn addr_of(&self, n: NodeId) -> Option<IpAddr> {
        self.with(|nd| nd.addr_of(n))
    }
    fn knows(&self, ip: IpAddr) -> bool {
        self.with(|nd| nd.member_at(ip).is_some())
    }
    fn speaks_from(&self, n: NodeId, ip: IpAddr) -> bool {
        self.with(|nd| nd.speaks_from(n, ip))
    }
    fn blocked(&self) -> bool {
        self.with(|nd| nd.setting(Setting::Block))
    }
    fn mem_available(&self) -> u64 {
        self.with(|nd| nd.own().mem)
    }
    fn place(&self, m: &Migrations, pid: i32) -> Option<NodeId> {
        crate::balancer::place(&self.balancing, m, pid)
    }
}

/// The migrations of `node` (guests running as ids of `guest_ids`, every process of
/// `users` under migration control) and its balancer.
pub fn migrations(
    node: Arc<Mutex<Node>>,
    guest_ids: GuestIds,
    users: Vec<u32>,
) -> (Arc<Migrations>, Arc<Balancing>) {
    let (me, port, key) = {
        let n = node.lock().expect("node lock");
        (n.cfg.node, n.cfg.port, n.cfg.key.clone())
    };
    let balancing = Arc::new(Balancing::new(node.clone()));
    let cluster = NodeCluster {
        node,
        balancing: balancing.clone(),
    };
    let m = Migrations::new(Box::new(cluster), me, port, key, guest_ids);
    *m.users.lock().expect("users lock") = users;
    (m, balancing)
}

/// [`migrations`], accepting migrations on `listener` and balancing.
pub fn start(
    node: Arc<Mutex<Node>>,
    guest_ids: GuestIds,
    users: Vec<u32>,
    listener: TcpListener,
) -> (Arc<Migrations>, Arc<Balancing>) {
    let (m, b) = migrations(node, guest_ids, users);
    m.listen(listener);
    crate::balancer::start(b.clone(), m.clone());
    (m, b)
}
