//! One node's view of the cluster and its settings: the state the gossip tasks, the
//! control socket and the /proc-style tree all work on (behind one mutex).

use crate::gossip::{self, Millis, Table};
use crate::wire::{self, Key, Packet, WireRecord, PACKET_LEN};
use om_map::{ClusterMap, NodeId, SystemResolver};
use om_proto::{
    Counters, ErrorKind, NodeRecord, NodeView, Request, Response, Setting, Status, Whois,
};
use rand::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How the daemon was configured.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeId,
    pub port: u16,
    pub interval: Duration,
    pub down_after: Duration,
    pub window: usize,
    pub key: Key,
}

/// Why a received datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("{0}")]
    Decode(#[from] wire::DecodeError),
    #[error("sequence {seq} from node {node} is not newer than {last}: a replay")]
    Replayed { node: NodeId, seq: u64, last: u64 },
    #[error("from node {0}, which is not in the map (or not from its address)")]
    UnknownNode(NodeId),
    #[error("this node is not participating (setpe -off)")]
    Off,
    #[error("an announcement of node {node} at {claimed} sent from {from}")]
    Misplaced {
        node: NodeId,
        claimed: IpAddr,
        from: IpAddr,
    },
    #[error("an announcement of node {node} at {claimed}, which is up at {held}")]
    Taken {
        node: NodeId,
        claimed: IpAddr,
        held: IpAddr,
    },
    #[error("an announcement of node {node} at {addr}, the address of node {by}")]
    AddressHeld {
        node: NodeId,
        addr: IpAddr,
        by: NodeId,
    },
}

/// What an accepted datagram brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Records newer than what was known, this many.
    Records(usize),
    /// A node the map did not have, now in it (`omd --discover`).
    Discovered { node: NodeId, addr: IpAddr },
}

/// The node number discovery gives a node at `addr` when none is given: openMosix's
/// `omdiscd` rule, the low 16 bits of its IPv4 address (10.0.1.7 is node 263).
pub fn node_from_addr(addr: IpAddr) -> Result<NodeId, String> {
    match addr {
        IpAddr::V4(v4) => {
            let [_, _, a, b] = v4.octets();
            match u16::from_be_bytes([a, b]) {
                0 => Err(format!(
                    "{addr} gives node number 0 (its low 16 bits); give the node number with --node N"
                )),
                n => Ok(n),
            }
        }
        IpAddr::V6(_) => Err(format!(
            "{addr} is an IPv6 address; give the node number with --node N"
        )),
    }
}

/// Finds which node of `map` this machine is, from its addresses.
pub fn own_node(map: &ClusterMap, addrs: &[IpAddr]) -> Result<NodeId, String> {
    let mut found: Vec<NodeId> = addrs.iter().filter_map(|a| map.node_by_addr(*a)).collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "none of this machine's addresses ({}) is in the map; give the node number \
             with --node N",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "this machine's addresses belong to several nodes of the map ({many:?}); give \
             the node number with --node N"
        )),
    }
}

/// The daemon's state.
pub struct Node {
    pub cfg: Config,
    map: ClusterMap,
    map_origin: String,
    members: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    table: Table<NodeRecord>,
    flags: u16,
    speed_override: Option<u32>,
    calibrated: u32,
    local_load: u32,
    counters: Counters,
    last_seq: HashMap<NodeId, u64>,
    seq: u64,
    participating: bool,
    start: Instant,
    scratch: Vec<(usize, Millis, NodeRecord)>,
    /// `omd --discover`: this node's address on the cluster network, and the last
    /// announcement sequence number taken from each node.
    discovery: Option<(IpAddr, HashMap<NodeId, u64>)>,
}

impl Node {
    /// `cfg.node` must be in `map`.
    pub fn new(cfg: Config, map: ClusterMap, map_origin: String, calibrated: u32) -> Self {
        // Sequence numbers survive a restart by starting from the wall clock: a
        // restarted omd's packets are newer than anything it sent before.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let mut n = Self {
            table: Table::new(1, 0, cfg.window),
            cfg,
            map: map.clone(),
            map_origin,
            members: Vec::new(),
            index: HashMap::new(),
            flags: 0,
            speed_override: None,
            calibrated,
            local_load: 0,
            counters: Counters::default(),
            last_seq: HashMap::new(),
            seq,
            participating: true,
            start: Instant::now(),
            scratch: Vec::new(),
            discovery: None,
        };
        n.install_map(map);
        n
    }

    fn install_map(&mut self, map: ClusterMap) {
        let members: Vec<NodeId> = map.nodes().map(|n| n.id).collect();
        let index: HashMap<NodeId, usize> =
            members.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let mut table = Table::new(members.len(), index[&self.cfg.node], self.cfg.window);
        // Keep what is known about nodes that stay.
        for (&id, &new) in &index {
            if let Some((stamp, rec)) = self.index.get(&id).and_then(|&i| self.table.get(i)) {
                if id == self.cfg.node {
                    table.set_own(stamp, rec);
                } else {
                    table.offer(new, stamp, rec);
                }
            }
        }
        self.members = members;
        self.index = index;
        self.table = table;
        self.map = map;
        self.last_seq.retain(|id, _| self.index.contains_key(id));
    }

    /// Turns discovery on: this node is at `addr` on the cluster network, announces
    /// itself there ([`Node::announcement`]) and takes in others' announcements.
    pub fn discover(&mut self, addr: IpAddr) {
        self.discovery = Some((addr.to_canonical(), HashMap::new()));
    }

    /// This interval's announcement of this node, when discovering (and neither quiet
    /// nor off).
    pub fn announcement(&mut self) -> Option<[u8; wire::ANNOUNCE_LEN]> {
        let addr = self.discovery.as_ref()?.0;
        if !self.participating || self.flags & Setting::Quiet.flag() != 0 {
            return None;
        }
        self.seq += 1;
        let a = wire::Announcement {
            sender: self.cfg.node,
            seq: self.seq,
            addr,
            port: self.cfg.port,
            record: self.own(),
        };
        Some(wire::encode_announcement(&self.cfg.key, &a))
    }

    /// Takes in an announcement from `from`: a node not in the map joins it at the
    /// address it names, if that is where it speaks from and no other node has it.
    fn announced(&mut self, from: IpAddr, buf: &[u8]) -> Result<Heard, Dropped> {
        let from = from.to_canonical();
        let a = wire::decode_announcement(&self.cfg.key, buf)?;
        let Some((_, last)) = &self.discovery else {
            return Err(Dropped::UnknownNode(a.sender));
        };
        if a.addr != from || a.sender == self.cfg.node {
            return Err(Dropped::Misplaced {
                node: a.sender,
                claimed: a.addr,
                from,
            });
        }
        let seen = last.get(&a.sender).copied().unwrap_or(0);
        if a.seq <= seen {
            return Err(Dropped::Replayed {
                node: a.sender,
                seq: a.seq,
                last: seen,
            });
        }
        let held = self.map.node(a.sender).map(|n| n.addr);
        let heard = match held {
            Some(held) if held == a.addr => Heard::Records(0),
            // A node up at another address keeps it; one that went silent may come
            // back at a new one (a new lease).
            Some(held) if self.is_up(a.sender) => {
                return Err(Dropped::Taken {
                    node: a.sender,
                    claimed: a.addr,
                    held,
                })
            }
            _ => {
                if let Some(other) = self.map.node_by_addr(a.addr) {
                    return Err(Dropped::AddressHeld {
                        node: a.sender,
                        addr: a.addr,
                        by: other,
                    });
                }
                let mut nodes: Vec<om_map::Node> = self
                    .map
                    .nodes()
                    .filter(|n| n.id != a.sender)
                    .cloned()
                    .collect();
                nodes.push(om_map::Node {
                    id: a.sender,
                    addr: a.addr,
                    aliases: Vec::new(),
                });
                let map = ClusterMap::from_nodes(nodes).map_err(|_| Dropped::AddressHeld {
                    node: a.sender,
                    addr: a.addr,
                    by: a.sender,
                })?;
                self.install_map(map);
                self.counters.discovered += 1;
                Heard::Discovered {
                    node: a.sender,
                    addr: a.addr,
                }
            }
        };
        if let Some((_, last)) = &mut self.discovery {
            last.insert(a.sender, a.seq);
        }
        let fresh = self
            .table
            .offer(self.index[&a.sender], self.now(), a.record);
        Ok(match heard {
            Heard::Records(_) => Heard::Records(usize::from(fresh)),
            d => d,
        })
    }

    /// Milliseconds since the daemon started.
    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// The speed in use: `mosctl setspeed`'s, else the calibrated one.
    pub fn speed(&self) -> u32 {
        self.speed_override.unwrap_or(self.calibrated)
    }

    pub fn flags(&self) -> u16 {
        self.flags
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The speed measured now (it follows a CPU quota that changes).
    pub fn set_calibrated(&mut self, speed: u32) {
        self.calibrated = speed;
    }

    /// The nodes seen as up now.
    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|&id| self.is_up(id))
            .collect()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        if !self.participating {
            return false;
        }
        id == self.cfg.node
            || self.index.get(&id).is_some_and(|&i| {
                let down_after = self.cfg.down_after.as_millis() as Millis;
                self.table.is_up(i, self.now(), down_after)
            })
    }

    /// The load this node uses for its own decisions (hundredths).
    pub fn local_load(&self) -> u32 {
        self.local_load
    }

    /// The load this node uses for its own decisions.
    pub fn set_local_load(&mut self, load: u32) {
        self.local_load = load;
    }

    /// Records this node's freshly measured state.
    pub fn set_measured(&mut self, mut rec: NodeRecord) {
        rec.flags = self.flags;
        let now = self.now();
        self.table.set_own(now, rec);
    }

    /// This node's latest record.
    pub fn own(&self) -> NodeRecord {
        self.table
            .get(self.table.me())
            .map(|(_, r)| r)
            .unwrap_or_default()
    }

    pub fn addr_of(&self, id: NodeId) -> Option<IpAddr> {
        self.map.node(id).map(|n| n.addr)
    }

    /// Whether `from` is an address of node `id` in the map (its address or an alias):
    /// what a node says it is must match where it speaks from.
    pub fn speaks_from(&self, id: NodeId, from: IpAddr) -> bool {
        let from = from.to_canonical();
        self.map
            .node(id)
            .is_some_and(|n| n.addr == from || n.aliases.contains(&from))
    }

    /// The node whose address (or alias) `ip` is, if any.
    pub fn member_at(&self, ip: IpAddr) -> Option<NodeId> {
        let ip = ip.to_canonical();
        self.members
            .iter()
            .copied()
            .find(|&id| self.speaks_from(id, ip))
    }

    /// The packet to send this interval and where to, or `None` (alone in the map,
    /// quiet, or off).
    pub fn outgoing(&mut self, rng: &mut impl Rng) -> Option<(SocketAddr, [u8; PACKET_LEN])> {
        if !self.participating || self.flags & Setting::Quiet.flag() != 0 {
            return None;
        }
        let peer = gossip::pick_peer(rng, self.members.len(), self.table.me())?;
        let now = self.now();
        let mut scratch = std::mem::take(&mut self.scratch);
        self.table.message(now, &mut scratch);
        let records = scratch
            .iter()
            .map(|&(i, age, record)| WireRecord {
                node: self.members[i],
                age_ms: age.clamp(0, i64::from(wire::MAX_AGE_MS)) as u32,
                record,
            })
            .collect();
        self.scratch = scratch;
        self.seq += 1;
        let packet = Packet {
            sender: self.cfg.node,
            seq: self.seq,
            records,
        };
        let dest = self.members[peer];
        let to = SocketAddr::new(self.addr_of(dest)?, self.cfg.port);
        Some((to, wire::encode(&self.cfg.key, &packet, dest)))
    }

    pub fn note_sent(&mut self, ok: bool) {
        if ok {
            self.counters.sent += 1;
        } else {
            self.counters.send_errors += 1;
        }
    }

    /// Takes in one datagram from `from`: a gossip packet, or a discovery announcement.
    /// Says what it brought; every drop is counted.
    pub fn incoming(&mut self, from: IpAddr, buf: &[u8]) -> Result<Heard, Dropped> {
        self.counters.received += 1;
        let r = if !self.participating {
            Err(Dropped::Off)
        } else if buf.len() == wire::ANNOUNCE_LEN {
            self.announced(from, buf)
        } else {
            self.check(from, buf).map(Heard::Records)
        };
        match &r {
            Ok(_) => self.counters.accepted += 1,
            Err(Dropped::Decode(e)) if e.is_tag() => self.counters.bad_tag += 1,
            Err(Dropped::Decode(_)) => self.counters.malformed += 1,
            Err(Dropped::Replayed { .. }) => self.counters.replayed += 1,
            Err(Dropped::UnknownNode(_)) => self.counters.unknown_node += 1,
            Err(
                Dropped::Misplaced { .. } | Dropped::Taken { .. } | Dropped::AddressHeld { .. },
            ) => self.counters.misplaced += 1,
            Err(Dropped::Off) => {}
        }
        r
    }

    fn check(&mut self, from: IpAddr, buf: &[u8]) -> Result<usize, Dropped> {
        let p = wire::decode(&self.cfg.key, buf, self.cfg.node)?;
        if p.sender == self.cfg.node || !self.speaks_from(p.sender, from) {
            return Err(Dropped::UnknownNode(p.sender));
        }
        let last = self.last_seq.get(&p.sender).copied().unwrap_or(0);
        if p.seq <= last {
            return Err(Dropped::Replayed {
                node: p.sender,
                seq: p.seq,
                last,
            });
        }
        if let Some(bad) = p.records.iter().find(|r| !self.index.contains_key(&r.node)) {
            return Err(Dropped::UnknownNode(bad.node));
        }
        self.last_seq.insert(p.sender, p.seq);
        let now = self.now();
        let recs: Vec<_> = p
            .records
            .iter()
            .map(|r| (self.index[&r.node], i64::from(r.age_ms), r.record))
            .collect();
        Ok(self.table.merge(now, recs))
    }

    /// One node as this node sees it.
    pub fn view(&self, id: NodeId) -> Option<NodeView> {
        let &i = self.index.get(&id)?;
        let now = self.now();
        Some(NodeView {
            node: id,
            addr: self.addr_of(id).map(|a| a.to_string()).unwrap_or_default(),
            me: id == self.cfg.node,
            up: self.is_up(id),
            age_ms: self.table.age(i, now).map(|a| a as u64),
            record: self.table.get(i).map(|(_, r)| r),
        })
    }

    pub fn status(&self) -> Status {
        Status {
            node: self.cfg.node,
            participating: self.participating,
            settings: Setting::ALL
                .into_iter()
                .filter(|s| self.flags & s.flag() != 0)
                .collect(),
            speed_override: self.speed_override.is_some(),
            calibrated_speed: self.calibrated,
            local_load: self.local_load,
            gossip_interval_ms: self.cfg.interval.as_millis() as u64,
            down_after_ms: self.cfg.down_after.as_millis() as u64,
            window: self.cfg.window,
            counters: self.counters,
            nodes: self
                .members
                .iter()
                .filter_map(|&id| self.view(id))
                .collect(),
            balancer: None,
            links: None,
        }
    }

    /// The node numbers of the map in use.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    pub fn map_text(&self) -> String {
        format!(
            "# in use by omd on node {}, loaded from {}\n{}",
            self.cfg.node,
            self.map_origin,
            self.map.to_map_text()
        )
    }

    /// Turns a setting on or off; says what changed.
    pub fn set(&mut self, s: Setting, on: bool) -> String {
        if on {
            self.flags |= s.flag();
        } else {
            self.flags &= !s.flag();
        }
        let flags = self.flags;
        self.update_own(|r| r.flags = flags);
        format!("{} {}", s.name(), if on { "on" } else { "off" })
    }

    /// Changes this node's own record at once (a setting shows without waiting for the
    /// next measurement).
    fn update_own(&mut self, change: impl FnOnce(&mut NodeRecord)) {
        let mut own = self.own();
        change(&mut own);
        let stamp = self.table.get(self.table.me()).map_or(self.now(), |g| g.0);
        self.table.set_own(stamp, own);
    }

    pub fn setting(&self, s: Setting) -> bool {
        self.flags & s.flag() != 0
    }

    /// `mosctl setspeed`: 0 returns to the calibrated speed.
    pub fn set_speed(&mut self, speed: u32) -> String {
        self.speed_override = (speed != 0).then_some(speed);
        let speed = self.speed();
        self.update_own(|r| r.speed = speed);
        format!("speed {speed}")
    }

    /// Checks a new map and takes it; the old one stays on any error.
    pub fn load_map(&mut self, text: &str, origin: &str) -> Result<String, String> {
        let map = om_map::parse(text, origin, &SystemResolver).map_err(|e| {
            format!(
                "{e}\n{origin}: {} error(s); the map in use is unchanged",
                e.len()
            )
        })?;
        if map.node(self.cfg.node).is_none() {
            return Err(format!(
                "{origin}: this node ({}) is not in the new map; the map in use is unchanged",
                self.cfg.node
            ));
        }
        let n = map.len();
        self.install_map(map);
        self.map_origin = origin.to_string();
        let was_off = !self.participating;
        self.participating = true;
        Ok(format!(
            "map of {n} node(s) from {origin} in use{}",
            if was_off {
                "; this node participates again"
            } else {
                ""
            }
        ))
    }

    /// `setpe -off`.
    pub fn off(&mut self) -> String {
        self.participating = false;
        format!(
            "node {} no longer participates (load a map with setpe -w to rejoin)",
            self.cfg.node
        )
    }

    pub fn participating(&self) -> bool {
        self.participating
    }

    fn whois(&self, query: &str) -> Result<Whois, String> {
        let q = query.trim();
        let id = if let Ok(id) = q.parse::<NodeId>() {
            self.map.node(id).map(|n| n.id)
        } else if let Ok(ip) = q.parse::<IpAddr>() {
            self.map.node_by_addr(ip)
        } else {
            use std::net::ToSocketAddrs;
            (q, 0)
                .to_socket_addrs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|sa| self.map.node_by_addr(sa.ip()))
        };
        let node = id
            .and_then(|id| self.map.node(id))
            .ok_or_else(|| format!("`{q}` is not a node of the map in use"))?;
        Ok(Whois {
            node: node.id,
            addr: node.addr.to_string(),
            aliases: node.aliases.iter().map(|a| a.to_string()).collect(),
            hostname: hostname_of(node.addr),
        })
    }

    /// Answers a request from a user with uid `uid` (the process list is answered by
    /// the caller, which must not hold the lock while reading /proc).
    pub fn handle(&mut self, req: Request, uid: u32) -> Response {
        let needs_root = matches!(
            req,
            Request::SetSpeed { .. } | Request::Set { .. } | Request::LoadMap { .. } | Request::Off
        );
        if needs_root && uid != 0 {
            return err(
                ErrorKind::PermissionDenied,
                format!("changing node settings needs root (you are uid {uid})"),
            );
        }
        match req {
            Request::Status => Response::Status(Box::new(self.status())),
            Request::Node { node } => {
                let id = node.unwrap_or(self.cfg.node);
                match self.view(id) {
                    Some(v) => Response::Node(v),
                    None => err(ErrorKind::NotFound, format!("node {id} is not in the map")),
                }
            }
            Request::Whois { query } => match self.whois(&query) {
                Ok(w) => Response::Whois(w),
                Err(m) => err(ErrorKind::NotFound, m),
            },
            Request::SetSpeed { speed } => done(self.set_speed(speed)),
            Request::Set { setting, on } => done(self.set(setting, on)),
            Request::GetMap => Response::Map {
                text: self.map_text(),
            },
            Request::LoadMap { text, origin } => match self.load_map(&text, &origin) {
                Ok(m) => done(m),
                Err(m) => err(ErrorKind::Invalid, m),
            },
            Request::Off => done(self.off()),
            Request::Processes
            | Request::Migrate { .. }
            | Request::Expel
            | Request::Bring
            | Request::Proc { .. }
            | Request::Lock { .. }
            | Request::Hint { .. }
            | Request::Group { .. }
            | Request::Controlled => err(ErrorKind::Invalid, "answered elsewhere".into()),
        }
    }
}

fn done(message: String) -> Response {
    Response::Done { message }
}

fn err(kind: ErrorKind, message: String) -> Response {
    Response::Error { kind, message }
}

/// The first name /etc/hosts gives `addr`.
fn hostname_of(addr: IpAddr) -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|l| {
        let l = l.split('#').next()?;
        let mut it = l.split_whitespace();
        let a: IpAddr = it.next()?.parse().ok()?;
        (a == addr).then(|| it.next().map(str::to_string)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use om_map::NoResolver;
    use rand::{rngs::SmallRng, SeedableRng};

    fn node(id: NodeId, key: u8) -> Node {
        node_with(
            id,
            key,
            om_map::parse("1 10.0.0.1 3\n", "test", &NoResolver).unwrap(),
        )
    }

    fn node_with(id: NodeId, key: u8, map: ClusterMap) -> Node {
        let cfg = Config {
            node: id,
            port: 723,
            interval: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
            window: 4,
            key: Key([key; 32]),
        };
        let mut n = Node::new(cfg, map, "test".into(), 10_000);
        n.set_measured(NodeRecord {
            load: u32::from(id) * 100,
            speed: 10_000,
            cpus: 1,
            tmem: 1000,
            ..Default::default()
        });
        n
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    /// A node alone in its map, discovering at 10.0.0.ID.
    fn discovering(id: NodeId, key: u8) -> Node {
        let map = ClusterMap::from_nodes([om_map::Node {
            id,
            addr: ip(id as u8),
            aliases: vec![],
        }])
        .unwrap();
        let mut n = node_with(id, key, map);
        n.discover(ip(id as u8));
        n
    }

    #[test]
    fn discovery_adds_announced_nodes_and_refuses_liars() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (mut a, mut b) = (discovering(1, 1), discovering(2, 1));
        assert_eq!(a.members(), &[1]);
        assert!(a.outgoing(&mut rng).is_none(), "alone: no gossip");
        let hello = b.announcement().unwrap();
        assert_eq!(
            a.incoming(ip(2), &hello),
            Ok(Heard::Discovered {
                node: 2,
                addr: ip(2)
            })
        );
        assert_eq!(a.members(), &[1, 2]);
        assert!(a.is_up(2));
        assert_eq!(a.view(2).unwrap().record.unwrap().load, 200);
        // Now they gossip: b learns of a from a's first packet once a is in its map.
        assert_eq!(
            b.incoming(ip(1), &a.announcement().unwrap()),
            Ok(Heard::Discovered {
                node: 1,
                addr: ip(1)
            })
        );
        let (to, pkt) = a.outgoing(&mut rng).unwrap();
        assert_eq!(to.ip(), ip(2));
        assert!(b.incoming(ip(1), &pkt).is_ok());
        // The same announcement again is a replay; a later one only refreshes.
        assert!(matches!(
            a.incoming(ip(2), &hello),
            Err(Dropped::Replayed { .. })
        ));
        assert!(matches!(
            a.incoming(ip(2), &b.announcement().unwrap()),
            Ok(Heard::Records(_))
        ));

        // Sent from an address it does not name (captured and sent again elsewhere).
        let mut c = discovering(3, 1);
        let from_c = c.announcement().unwrap();
        assert!(matches!(
            a.incoming(ip(9), &from_c),
            Err(Dropped::Misplaced { .. })
        ));
        // Node 2's number from another address while node 2 is up.
        let mut liar = discovering(2, 1);
        liar.discover(ip(7));
        assert!(matches!(
            a.incoming(ip(7), &liar.announcement().unwrap()),
            Err(Dropped::Taken { node: 2, .. })
        ));
        // Node 2's address under another number.
        let mut thief = discovering(5, 1);
        thief.discover(ip(2));
        assert!(matches!(
            a.incoming(ip(2), &thief.announcement().unwrap()),
            Err(Dropped::AddressHeld { node: 5, by: 2, .. })
        ));
        // Another key.
        let mut stranger = discovering(6, 9);
        assert!(matches!(
            a.incoming(ip(6), &stranger.announcement().unwrap()),
            Err(Dropped::Decode(_))
        ));
        assert_eq!(a.members(), &[1, 2]);
        let k = a.counters();
        assert_eq!(
            (k.discovered, k.misplaced, k.bad_tag, k.replayed),
            (1, 3, 1, 1)
        );
        // A node that does not discover takes no announcement.
        let mut mapped = node(1, 1);
        assert!(matches!(
            mapped.incoming(ip(3), &from_c),
            Err(Dropped::UnknownNode(3))
        ));
        assert!(mapped.announcement().is_none());
    }

    #[test]
    fn discovery_numbers_come_from_the_low_bits_of_the_address() {
        assert_eq!(node_from_addr("198.18.0.3".parse().unwrap()), Ok(3));
        assert_eq!(node_from_addr("10.0.1.7".parse().unwrap()), Ok(263));
        assert!(node_from_addr("10.0.0.0".parse().unwrap())
            .unwrap_err()
            .contains("--node"));
        assert!(node_from_addr("fd00::1".parse().unwrap()).is_err());
    }

    #[test]
    fn gossip_between_two_nodes_and_counters() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut a = node(1, 1);
        let mut b = node(2, 1);
        let (to, pkt) = a.outgoing(&mut rng).unwrap();
        assert_eq!(to.port(), 723);
        assert_ne!(to.ip(), ip(1));
        assert_eq!(b.incoming(ip(1), &pkt), Ok(Heard::Records(1)));
        let v = b.view(1).unwrap();
        assert!(v.up);
        assert_eq!(v.record.unwrap().load, 100);
        // The same packet again is a replay.
        assert!(matches!(
            b.incoming(ip(1), &pkt),
            Err(Dropped::Replayed { .. })
        ));
        // From the wrong address: not trusted.
        let (_, pkt2) = a.outgoing(&mut rng).unwrap();
        assert_eq!(b.incoming(ip(3), &pkt2), Err(Dropped::UnknownNode(1)));
        // Another cluster's key.
        let mut other = node(1, 2);
        let (_, bad) = other.outgoing(&mut rng).unwrap();
        assert!(b.incoming(ip(1), &bad).is_err());
        assert!(b.incoming(ip(1), &bad[..10]).is_err());
        let c = b.counters();
        assert_eq!(
            (
                c.received,
                c.accepted,
                c.replayed,
                c.unknown_node,
                c.bad_tag,
                c.malformed
            ),
            (5, 1, 1, 1, 1, 1)
        );
        assert!(!b.view(3).unwrap().up, "never heard of");
    }

    #[test]
    fn settings_need_root_and_show_in_the_record() {
        let mut a = node(1, 1);
        let r = a.handle(
            Request::Set {
                setting: Setting::Block,
                on: true,
            },
            1000,
        );
        assert!(matches!(
            r,
            Response::Error {
                kind: ErrorKind::PermissionDenied,
                ..
            }
        ));
        assert!(!a.setting(Setting::Block));
        a.handle(
            Request::Set {
                setting: Setting::Block,
                on: true,
            },
            0,
        );
        assert!(a.setting(Setting::Block));
        assert_eq!(a.own().flags, Setting::Block.flag());
        a.handle(Request::SetSpeed { speed: 1234 }, 0);
        assert_eq!(a.speed(), 1234);
        a.handle(Request::SetSpeed { speed: 0 }, 0);
        assert_eq!(a.speed(), 10_000);
    }

    #[test]
    fn quiet_and_off_nodes_send_nothing() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut a = node(1, 1);
        a.set(Setting::Quiet, true);
        assert!(a.outgoing(&mut rng).is_none());
        a.set(Setting::Quiet, false);
        a.off();
        assert!(a.outgoing(&mut rng).is_none());
        assert!(!a.view(1).unwrap().up);
        assert!(a.load_map("1 10.0.0.1 2\n", "new").is_ok());
        assert!(a.outgoing(&mut rng).is_some());
        assert_eq!(a.members(), &[1, 2]);
    }

    #[test]
    fn a_map_without_this_node_or_with_errors_is_refused() {
        let mut a = node(3, 1);
        let e = a.load_map("1 10.0.0.1 2\n", "small").unwrap_err();
        assert!(e.contains("this node (3) is not in the new map"), "{e}");
        let e = a.load_map("1 10.0.0.1 x\n", "bad").unwrap_err();
        assert!(e.contains("bad:1"), "{e}");
        assert_eq!(a.members(), &[1, 2, 3]);
    }

    #[test]
    fn own_node_from_addresses() {
        let map = om_map::parse("1 10.0.0.1 3\n", "t", &NoResolver).unwrap();
        assert_eq!(own_node(&map, &[ip(9), ip(2)]), Ok(2));
        assert!(own_node(&map, &[ip(9)]).unwrap_err().contains("--node N"));
        assert!(own_node(&map, &[ip(1), ip(2)]).is_err());
    }
}
