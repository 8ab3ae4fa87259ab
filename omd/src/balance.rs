//! The balancer's decisions, without clocks, sockets or /proc: a [`Snapshot`] of this
//! node, the processes that run here and the nodes of the gossip window goes in, a
//! [`Plan`] comes out. omd gathers the snapshot once per balancing interval and carries
//! out the plan; `omd simulate --balance` runs exactly this code on simulated nodes.
//!
//! The policy ([`OpportunityCost`]) follows MOSIX (Amir, Awerbuch, Barak, Borgstrom and
//! Keren, "An opportunity cost approach for job assignment in a scalable computing
//! cluster", 2000): the cost of a resource grows exponentially with its utilisation,
//! `BASE^u`, and a process belongs where adding it costs least. CPU utilisation is the
//! number of processes that want to run per standard CPU of capacity, so a node twice as
//! fast absorbs twice as many before it costs as much; memory utilisation is the used
//! fraction of a node's memory. On top of that:
//! - the **stability margin**: a process moves only if the cost it adds at the target is
//!   clearly below what its leaving saves here, counting its own load at the target, so
//!   the reverse move is never attractive and nothing bounces;
//! - the **migration cost**: its memory over the measured link bandwidth, weighed
//!   against its expected remaining run time (its past run time), so young processes
//!   never move and a huge one moves only for a big gain;
//! - **flood control** ([`Balancer`]): the load of a process sent away is added to the
//!   view of its target (and taken off this node's) until that node's own records show
//!   it, so a node that just became idle is not chosen by every decision at once;
//! - **I/O-bound processes** (those whose forwarded calls would take, or take, a large
//!   share of their time away from home) are kept or brought home;
//! - **memory ushering**: a node short of memory sends its largest movable process to a
//!   node with room, whatever its age.

use om_map::NodeId;
use om_proto::{flags, STANDARD_SPEED};
use std::fmt;
use std::time::Duration;

/// Milliseconds on the balancing node's clock.
pub type Millis = i64;

/// A node as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeLoad {
    pub node: NodeId,
    /// Processes that want to run, per standard CPU of capacity (a node record's load
    /// over 100).
    pub load: f64,
    /// CPU capacity in standard CPUs (CPUs times their speed over the standard speed).
    pub capacity: f64,
    /// Its number of CPUs.
    pub cpus: u16,
    /// Memory available to new processes, bytes.
    pub mem_avail: u64,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Settings ([`om_proto::flags`]).
    pub flags: u16,
    /// When this information was fresh.
    pub stamp: Millis,
}

impl NodeLoad {
    /// The balancer's view of a gossip record fresh at `stamp`.
    pub fn from_record(node: NodeId, r: &om_proto::NodeRecord, stamp: Millis) -> Self {
        Self {
            node,
            load: f64::from(r.load) / 100.0,
            capacity: capacity(r.speed, r.cpus),
            cpus: r.cpus.max(1),
            mem_avail: r.mem,
            mem_total: r.tmem,
            flags: r.flags,
            stamp,
        }
    }

    fn mem_used(&self) -> f64 {
        if self.mem_total == 0 {
            return 1.0;
        }
        1.0 - (self.mem_avail as f64 / self.mem_total as f64).min(1.0)
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// The capacity in standard CPUs of `cpus` CPUs of speed `speed`.
pub fn capacity(speed: u32, cpus: u16) -> f64 {
    (f64::from(speed) * f64::from(cpus.max(1)) / f64::from(STANDARD_SPEED)).max(0.01)
}

/// A job hint, as openMosix's `cpujob` and `iojob` give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hint {
    #[default]
    None,
    /// CPU-bound whatever its calls look like.
    Cpu,
    /// I/O-bound: keep it home.
    Io,
}

/// A process that runs at the balancing node.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    /// Its pid at this node.
    pub pid: i32,
    /// `None`: a process of this node; `Some(n)`: a guest whose home is node `n`.
    pub home: Option<NodeId>,
    /// How many CPUs it wants: the smoothed fraction of time it was running or ready to
    /// run ([`smooth`]).
    pub demand: f64,
    /// Its memory, bytes.
    pub mem: u64,
    /// How long it has run (since it started, at home).
    pub age: Duration,
    /// How long it has been at this node (a guest: since it arrived).
    pub here: Duration,
    /// The share of its time that forwarded calls take away from home: measured for a
    /// guest, estimated from its rate of read and write calls at home.
    pub forwarded: f64,
    /// Locked against automatic migration.
    pub locked: bool,
    pub hint: Hint,
    /// How many times it has moved so far.
    pub moves: u32,
}

/// Everything one decision looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub now: Millis,
    /// This node.
    pub me: NodeLoad,
    /// The other nodes that are up, as the gossip window shows them.
    pub peers: Vec<NodeLoad>,
    /// The processes that run here and are under migration control.
    pub procs: Vec<Proc>,
    /// Link bandwidth to move memory at, bytes per second.
    pub bandwidth: f64,
    /// How fast this node's available memory is falling, bytes per second (0 when it
    /// is not).
    pub mem_falling: f64,
}

/// Where a process goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A guest goes back to its home node.
    Home,
    Node(NodeId),
}

/// Why a process moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    /// The load here and at the target (processes per standard CPU).
    Load { here: f64, there: f64 },
    /// This node is short of memory, or soon will be: available and the threshold,
    /// bytes, and how fast it falls, bytes per second.
    Memory {
        avail: u64,
        below: u64,
        falling: u64,
    },
    /// Forwarded calls take this share of its time away from home.
    IoBound { share: f64 },
}

/// One move.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub pid: i32,
    pub to: Dest,
    pub why: Why,
}

/// Why a process under control did not move.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    Locked,
    /// `mosctl stay`.
    NodeStays,
    /// `mosctl lstay`, for this node's own processes.
    LocalStays,
    TooYoung {
        age: Duration,
        min: Duration,
    },
    /// It moved `moves` times and has been here `here` of the `need` it must stay.
    Settling {
        moves: u32,
        here: Duration,
        need: Duration,
    },
    /// Its calls would take this share of its time away from home.
    IoBound {
        share: f64,
    },
    /// `iojob`.
    IoHint,
    /// Moving it would take `secs`, too long for the gain over its expected run time.
    TooBig {
        mem: u64,
        secs: f64,
        gain: f64,
        remaining: Duration,
    },
    /// No node is better by the stability margin.
    NoBetterNode,
    /// Another process moves first (one per interval).
    Waiting,
    /// No other node is up or accepts guests.
    NoTarget,
}

/// A decision: at most one move, and why every other process stays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub action: Option<Move>,
    pub held: Vec<(i32, Hold)>,
}

/// A balancing policy. [`OpportunityCost`] is omd's; others can be compared with it in
/// `omd simulate --balance`.
pub trait Policy: Send {
    fn name(&self) -> &'static str;
    /// Which process (if any) to move, and where.
    fn decide(&self, s: &Snapshot) -> Plan;
    /// Where to start a new process of `mem` bytes that wants a whole CPU (`mosrun`
    /// without a node): `None` keeps it here.
    fn place(&self, s: &Snapshot, mem: u64) -> Option<NodeId>;
}

/// The smoothed value of a per-process measure after a new sample, as MOSIX smooths a
/// process's load: half of the old value and half of the new.
pub fn smooth(old: Option<f64>, sample: f64) -> f64 {
    old.map_or(sample, |o| 0.5 * o + 0.5 * sample)
}

/// MOSIX's opportunity cost policy. The fields are its tunables.
#[derive(Debug, Clone)]
pub struct OpportunityCost {
    /// The base of the exponential cost.
    pub base: f64,
    /// A move must lower the cost by at least this fraction.
    pub margin: f64,
    /// Nothing younger moves for load (openMosix: a few seconds).
    pub min_age: Duration,
    /// A process that has moved stays this long where it is before it moves for load
    /// again, twice as long after every further move.
    pub residency: Duration,
    /// Moving may take at most this share of the expected saving.
    pub cost_share: f64,
    /// A fixed cost of a move besides its memory, seconds.
    pub move_overhead: f64,
    /// A process whose forwarded calls take more than this share is kept home.
    pub io_share: f64,
    /// How long a guest must have been here before its calls are judged.
    pub io_settle: Duration,
    /// Memory ushering starts below this fraction of a node's memory available...
    pub usher_fraction: f64,
    /// ...or below this many bytes, whichever is more...
    pub usher_bytes: u64,
    /// ...or when memory falls so fast that it would be below that within this long.
    pub usher_horizon: Duration,
}

impl Default for OpportunityCost {
    fn default() -> Self {
        Self {
            base: 4.0,
            margin: 0.25,
            min_age: Duration::from_secs(3),
            residency: Duration::from_secs(20),
            cost_share: 0.5,
            move_overhead: 0.2,
            io_share: 0.3,
            io_settle: Duration::from_secs(2),
            usher_fraction: 0.1,
            usher_bytes: 32 << 20,
            usher_horizon: Duration::from_secs(3),
        }
    }
}

impl OpportunityCost {
    fn cost(&self, u: f64) -> f64 {
        self.base.powf(u.clamp(0.0, 200.0))
    }

    /// The cost of adding a process (`demand` CPUs, `mem` bytes) to `n`.
    fn add(&self, n: &NodeLoad, demand: f64, mem: u64) -> f64 {
        let (u, m) = (n.load, n.mem_used());
        let dm = mem as f64 / n.mem_total.max(1) as f64;
        self.cost(u + demand / n.capacity) - self.cost(u) + self.cost(m + dm) - self.cost(m)
    }

    /// What taking the process off `n` (which runs it) saves.
    fn remove(&self, n: &NodeLoad, demand: f64, mem: u64) -> f64 {
        let (u, m) = (n.load, n.mem_used());
        let dm = mem as f64 / n.mem_total.max(1) as f64;
        self.cost(u) - self.cost((u - demand / n.capacity).max(0.0)) + self.cost(m)
            - self.cost((m - dm).max(0.0))
    }

    /// Below how many bytes available `n` is short of memory.
    pub fn usher_below(&self, n: &NodeLoad) -> u64 {
        ((n.mem_total as f64 * self.usher_fraction) as u64).max(self.usher_bytes)
    }

    /// Nodes a process of `s.me` may go to: up, accepting guests, and for a guest its
    /// home too (which takes it back even when blocked).
    fn targets<'a>(&self, s: &'a Snapshot, p: &Proc) -> Vec<(Dest, &'a NodeLoad)> {
        s.peers
            .iter()
            .filter_map(|n| match p.home {
                Some(h) if h == n.node => Some((Dest::Home, n)),
                _ if n.has(flags::BLOCK) => None,
                _ => Some((Dest::Node(n.node), n)),
            })
            .collect()
    }

    /// The usher's move, if this node is short of memory.
    fn usher(&self, s: &Snapshot, movable: &[&Proc]) -> Option<Move> {
        let below = self.usher_below(&s.me);
        let soon = (s.mem_falling.max(0.0) * self.usher_horizon.as_secs_f64()) as u64;
        if s.me.mem_avail >= below.saturating_add(soon) || s.me.mem_total == 0 {
            return None;
        }
        let mut by_size: Vec<&&Proc> = movable.iter().filter(|p| !p.locked).collect();
        by_size.sort_by_key(|p| std::cmp::Reverse(p.mem));
        for p in by_size {
            let best = self
                .targets(s, p)
                .into_iter()
                .filter(|(_, n)| n.mem_avail > p.mem.saturating_add(self.usher_below(n)))
                .map(|(d, n)| (self.add(n, p.demand, p.mem), d))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, to)) = best {
                return Some(Move {
                    pid: p.pid,
                    to,
                    why: Why::Memory {
                        avail: s.me.mem_avail,
                        below,
                        falling: s.mem_falling.max(0.0) as u64,
                    },
                });
            }
        }
        None
    }
}

impl Policy for OpportunityCost {
    fn name(&self) -> &'static str {
        "opportunity-cost"
    }

    fn decide(&self, s: &Snapshot) -> Plan {
        let s = &normalised(s);
        let mut plan = Plan::default();
        let stays = s.me.has(flags::STAY);
        let lstay = s.me.has(flags::LSTAY);
        let me = &counted(s);
        let mut movable = Vec::new();
        for p in &s.procs {
            let hold = if p.locked {
                Some(Hold::Locked)
            } else if stays {
                Some(Hold::NodeStays)
            } else if lstay && p.home.is_none() {
                Some(Hold::LocalStays)
            } else {
                None
            };
            match hold {
                Some(h) => plan.held.push((p.pid, h)),
                None => movable.push(p),
            }
        }
        let mut snap = s.clone();
        snap.me = *me;
        if let Some(m) = self.usher(&snap, &movable) {
            plan.held.extend(
                movable
                    .iter()
                    .filter(|p| p.pid != m.pid)
                    .map(|p| (p.pid, Hold::Waiting)),
            );
            plan.action = Some(m);
            return plan;
        }
        // Guests whose calls keep them waiting for home go home.
        let io_bound = |p: &Proc| p.hint != Hint::Cpu && p.forwarded > self.io_share;
        if let Some(p) = movable
            .iter()
            .filter(|p| p.home.is_some() && p.here >= self.io_settle)
            .filter(|p| p.hint == Hint::Io || io_bound(p))
            .max_by(|a, b| a.forwarded.total_cmp(&b.forwarded))
        {
            plan.action = Some(Move {
                pid: p.pid,
                to: Dest::Home,
                why: Why::IoBound { share: p.forwarded },
            });
            plan.held.extend(
                movable
                    .iter()
                    .filter(|q| q.pid != p.pid)
                    .map(|q| (q.pid, Hold::Waiting)),
            );
            return plan;
        }
        // For load: the best (process, target) by the cost it saves.
        let mut best: Option<(f64, Move)> = None;
        for p in movable {
            if p.home.is_none() && p.hint == Hint::Io {
                plan.held.push((p.pid, Hold::IoHint));
                continue;
            }
            if p.home.is_none() && io_bound(p) {
                plan.held
                    .push((p.pid, Hold::IoBound { share: p.forwarded }));
                continue;
            }
            if p.age < self.min_age {
                plan.held.push((
                    p.pid,
                    Hold::TooYoung {
                        age: p.age,
                        min: self.min_age,
                    },
                ));
                continue;
            }
            if p.moves > 0 {
                let need = self.residency * 2u32.saturating_pow((p.moves - 1).min(8));
                if p.here < need {
                    plan.held.push((
                        p.pid,
                        Hold::Settling {
                            moves: p.moves,
                            here: p.here,
                            need,
                        },
                    ));
                    continue;
                }
            }
            let saves = self.remove(me, p.demand, p.mem);
            let targets = self.targets(&snap, p);
            if targets.is_empty() {
                plan.held.push((p.pid, Hold::NoTarget));
                continue;
            }
            let Some((adds, to, there)) = targets
                .into_iter()
                .map(|(d, n)| (self.add(n, p.demand, p.mem), d, n.load))
                .min_by(|a, b| a.0.total_cmp(&b.0))
            else {
                continue;
            };
            if saves <= 0.0 || adds > saves * (1.0 - self.margin) {
                plan.held.push((p.pid, Hold::NoBetterNode));
                continue;
            }
            let gain = 1.0 - adds / saves;
            let secs = p.mem as f64 / s.bandwidth.max(1.0) + self.move_overhead;
            // Its past run time is the estimate of what is left.
            if secs > self.cost_share * gain * p.age.as_secs_f64() {
                plan.held.push((
                    p.pid,
                    Hold::TooBig {
                        mem: p.mem,
                        secs,
                        gain,
                        remaining: p.age,
                    },
                ));
                continue;
            }
            let m = Move {
                pid: p.pid,
                to,
                why: Why::Load {
                    here: me.load,
                    there,
                },
            };
            let value = saves - adds;
            if best.as_ref().is_some_and(|(v, _)| *v >= value) {
                plan.held.push((p.pid, Hold::Waiting));
            } else if let Some((_, prev)) = best.replace((value, m)) {
                plan.held.push((prev.pid, Hold::Waiting));
            }
        }
        plan.action = best.map(|b| b.1);
        plan
    }

    fn place(&self, s: &Snapshot, mem: u64) -> Option<NodeId> {
        let s = &normalised(s);
        let here = self.add(&counted(s), 1.0, mem);
        let (cost, node) = s
            .peers
            .iter()
            .filter(|n| !n.has(flags::BLOCK) && n.mem_avail > mem)
            .map(|n| (self.add(n, 1.0, mem), n.node))
            .min_by(|a, b| a.0.total_cmp(&b.0))?;
        (cost < here * (1.0 - self.margin / 2.0)).then_some(node)
    }
}

/// The snapshot with capacities counted in CPUs of the fastest node it shows (and loads
/// accordingly), so that decisions do not depend on what a standard CPU is: a process
/// alone on one of the fastest CPUs has a CPU utilisation of 1.
fn normalised(s: &Snapshot) -> Snapshot {
    let per_cpu = |n: &NodeLoad| n.capacity / f64::from(n.cpus.max(1));
    let scale = s
        .peers
        .iter()
        .map(per_cpu)
        .fold(per_cpu(&s.me), f64::max)
        .max(1e-6);
    let mut s = s.clone();
    for n in std::iter::once(&mut s.me).chain(s.peers.iter_mut()) {
        n.capacity /= scale;
        n.load *= scale;
    }
    s
}

/// This node, running at least the processes it knows of (its own load view rises
/// slowly).
fn counted(s: &Snapshot) -> NodeLoad {
    let mut me = s.me;
    let known: f64 = s.procs.iter().map(|p| p.demand).sum();
    me.load = me.load.max(known / me.capacity);
    me
}

/// Load and memory a move has added to (or taken from) a node, until that node's own
/// records show it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reservation {
    node: NodeId,
    demand: f64,
    mem: i64,
    at: Millis,
}

/// A policy with flood control: what it moved counts at once at both ends.
pub struct Balancer {
    policy: Box<dyn Policy>,
    reserved: Vec<Reservation>,
    /// A node's record counts the move once it was fresh this long after it.
    pub settle: Millis,
}

/// A reservation is dropped after this long even if no newer record came.
pub const RESERVE_MAX: Millis = 10_000;

impl Balancer {
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Self {
            policy,
            reserved: Vec::new(),
            settle: 2_000,
        }
    }

    pub fn policy(&self) -> &dyn Policy {
        self.policy.as_ref()
    }

    /// The snapshot with the loads this node's recent moves add and take.
    fn adjusted(&mut self, s: &Snapshot) -> Snapshot {
        let settle = self.settle;
        let mut s = s.clone();
        let now = s.now;
        self.reserved.retain(|r| now - r.at < RESERVE_MAX);
        let apply = |n: &mut NodeLoad, reserved: &[Reservation]| {
            for r in reserved
                .iter()
                .filter(|r| r.node == n.node && n.stamp < r.at + settle)
            {
                n.load = (n.load + r.demand / n.capacity).max(0.0);
                n.mem_avail = (n.mem_avail as i64 - r.mem).max(0) as u64;
            }
        };
        apply(&mut s.me, &self.reserved);
        for p in &mut s.peers {
            apply(p, &self.reserved);
        }
        s
    }

    fn reserve(&mut self, now: Millis, from: NodeId, to: NodeId, demand: f64, mem: u64) {
        let mem = mem.min(i64::MAX as u64) as i64;
        self.reserved.push(Reservation {
            node: to,
            demand,
            mem,
            at: now,
        });
        self.reserved.push(Reservation {
            node: from,
            demand: -demand,
            mem: -mem,
            at: now,
        });
    }

    /// One balancing decision. The move it returns is reserved at once.
    pub fn decide(&mut self, s: &Snapshot) -> Plan {
        let adjusted = self.adjusted(s);
        let plan = self.policy.decide(&adjusted);
        if let Some(m) = &plan.action {
            if let Some(p) = s.procs.iter().find(|p| p.pid == m.pid) {
                let to = match m.to {
                    Dest::Node(n) => n,
                    Dest::Home => p.home.unwrap_or(s.me.node),
                };
                self.reserve(s.now, s.me.node, to, p.demand, p.mem);
            }
        }
        plan
    }

    /// Where to start a new process (`None`: here), reserved at once.
    pub fn place(&mut self, s: &Snapshot, mem: u64) -> Option<NodeId> {
        let adjusted = self.adjusted(s);
        let to = self.policy.place(&adjusted, mem);
        // It was not counted anywhere yet (it has only just started): it is reserved
        // where it goes, here included, so that the next placement sees it.
        self.reserved.push(Reservation {
            node: to.unwrap_or(s.me.node),
            demand: 1.0,
            mem: mem.min(i64::MAX as u64) as i64,
            at: s.now,
        });
        to
    }

    /// A move this node made without deciding it here (a request, a placement):
    /// counted like its own.
    pub fn note_move(&mut self, now: Millis, from: NodeId, to: NodeId, demand: f64, mem: u64) {
        self.reserve(now, from, to, demand, mem);
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / f64::from(1 << 20))
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Load { here, there } => write!(f, "load {here:.1} here, {there:.1} there"),
            Why::Memory {
                avail,
                below,
                falling,
            } => {
                write!(f, "short of memory: {} available", mib(*avail))?;
                if *avail < *below {
                    write!(f, ", below {}", mib(*below))
                } else {
                    write!(f, ", falling {}/s towards {}", mib(*falling), mib(*below))
                }
            }
            Why::IoBound { share } => write!(
                f,
                "I/O-bound: forwarded calls take {:.0}% of its time",
                share * 100.0
            ),
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Locked => write!(f, "locked (no automatic migration)"),
            Hold::NodeStays => write!(f, "this node stays (mosctl stay)"),
            Hold::LocalStays => write!(f, "this node's processes stay (mosctl lstay)"),
            Hold::TooYoung { age, min } => write!(
                f,
                "too young to move: ran {:.1} s of the {:.0} s needed",
                age.as_secs_f64(),
                min.as_secs_f64()
            ),
            Hold::Settling { moves, here, need } => write!(
                f,
                "it moved {moves} time(s): it stays {:.0} s where it is before it moves again ({:.0} s so far)",
                need.as_secs_f64(),
                here.as_secs_f64()
            ),
            Hold::IoBound { share } => write!(
                f,
                "I/O-bound: its calls would take about {:.0}% of its time away from home",
                share * 100.0
            ),
            Hold::IoHint => write!(f, "an I/O job (iojob): it stays home"),
            Hold::TooBig {
                mem,
                secs,
                gain,
                remaining,
            } => write!(
                f,
                "too big for the gain: {} take {secs:.1} s to move for a {:.0}% gain, over about {:.0} s left",
                mib(*mem),
                gain * 100.0,
                remaining.as_secs_f64()
            ),
            Hold::NoBetterNode => write!(f, "no node would run it clearly better"),
            Hold::Waiting => write!(f, "another process moves first (one per interval)"),
            Hold::NoTarget => write!(f, "no other node is up and accepts guests"),
        }
    }
}

/// The processes of each migration group (`group_of` gives a pid's group; 0: none) as
/// one job, as openMosix moved a `miggroup`: the group's lowest pid stands for it, with
/// the sum of the members' demand and memory, the most any forwards, the shortest time
/// any has been here, and locked if any is. The balancer then moves that one, and the
/// others follow it (`om_migrate::Migrations::carry_out`).
pub fn as_units(procs: Vec<Proc>, group_of: impl Fn(i32) -> u32) -> Vec<Proc> {
    let mut out: Vec<Proc> = Vec::with_capacity(procs.len());
    let mut unit: std::collections::HashMap<u32, usize> = Default::default();
    for p in procs {
        let g = group_of(p.pid);
        let Some(&i) = (g != 0).then(|| unit.get(&g)).flatten() else {
            if g != 0 {
                unit.insert(g, out.len());
            }
            out.push(p);
            continue;
        };
        let u = &mut out[i];
        u.pid = u.pid.min(p.pid);
        u.demand += p.demand;
        u.mem += p.mem;
        u.forwarded = u.forwarded.max(p.forwarded);
        u.here = u.here.min(p.here);
        u.age = u.age.min(p.age);
        u.locked |= p.locked;
        u.moves = u.moves.max(p.moves);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    #[test]
    fn a_group_is_one_job_with_the_sum_of_its_members() {
        let mut a = cpu_job(30, 100);
        a.forwarded = 0.2;
        let mut b = cpu_job(20, 50);
        b.locked = true;
        let procs = vec![a, cpu_job(10, 10), b, cpu_job(40, 10)];
        let groups = |pid: i32| match pid {
            20 | 30 => 7,
            _ => 0,
        };
        let units = as_units(procs, groups);
        assert_eq!(
            units.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [20, 10, 40]
        );
        let g = &units[0];
        assert_eq!(g.demand, 2.0);
        assert_eq!(g.mem, 16 << 20);
        assert_eq!(g.forwarded, 0.2);
        assert_eq!(g.age, Duration::from_secs(50));
        assert!(g.locked);
        assert_eq!(units[1].demand, 1.0);
    }

    fn node(id: NodeId, load: f64, capacity: f64) -> NodeLoad {
        NodeLoad {
            node: id,
            load,
            capacity,
            cpus: 1,
            mem_avail: 2 * G,
            mem_total: 2 * G,
            flags: 0,
            stamp: 0,
        }
    }

    fn cpu_job(pid: i32, age: u64) -> Proc {
        Proc {
            pid,
            home: None,
            demand: 1.0,
            mem: 8 << 20,
            age: Duration::from_secs(age),
            here: Duration::from_secs(age),
            forwarded: 0.0,
            locked: false,
            hint: Hint::None,
            moves: 0,
        }
    }

    fn snap(me: NodeLoad, peers: Vec<NodeLoad>, procs: Vec<Proc>) -> Snapshot {
        Snapshot {
            now: 10_000,
            me,
            peers,
            procs,
            bandwidth: 250e6,
            mem_falling: 0.0,
        }
    }

    fn policy() -> OpportunityCost {
        OpportunityCost::default()
    }

    #[test]
    fn a_loaded_node_sends_one_job_to_an_idle_one() {
        let procs = (1..=3).map(|p| cpu_job(p, 10)).collect();
        let s = snap(node(1, 3.0, 1.0), vec![node(2, 0.0, 1.0)], procs);
        let plan = policy().decide(&s);
        let m = plan.action.clone().expect("a move");
        assert_eq!(m.to, Dest::Node(2));
        assert_eq!(plan.held.len(), 2, "{plan:?}");
        assert!(plan.held.iter().all(|h| h.1 == Hold::Waiting));
    }

    #[test]
    fn balanced_equal_nodes_do_not_bounce() {
        // 2 here, 1 there: moving one would make it 1 and 2, no better.
        let procs = (1..=2).map(|p| cpu_job(p, 10)).collect();
        let s = snap(node(1, 2.0, 1.0), vec![node(2, 1.0, 1.0)], procs);
        let plan = policy().decide(&s);
        assert_eq!(plan.action, None, "{plan:?}");
        assert!(plan.held.iter().all(|h| h.1 == Hold::NoBetterNode));
    }

    #[test]
    fn a_slow_node_gets_a_job_only_when_it_is_worth_it() {
        // A quarter-speed node is no better than a share of a fast node that is more than
        // a quarter: with 4 jobs each gets 0.25 here.
        let p = policy();
        let procs = |n| (1..=n).map(|i| cpu_job(i, 10)).collect::<Vec<_>>();
        let four = snap(node(1, 4.0, 1.0), vec![node(4, 0.0, 0.25)], procs(4));
        assert_eq!(p.decide(&four).action, None);
        let five = snap(node(1, 5.0, 1.0), vec![node(4, 0.0, 0.25)], procs(5));
        assert_eq!(p.decide(&five).action.map(|m| m.to), Some(Dest::Node(4)));
        // Of an idle fast and an idle slow node, the fast one.
        let s = snap(
            node(1, 3.0, 1.0),
            vec![node(4, 0.0, 0.25), node(2, 0.0, 1.0)],
            procs(3),
        );
        assert_eq!(p.decide(&s).action.map(|m| m.to), Some(Dest::Node(2)));
    }

    #[test]
    fn what_a_move_would_make_worse_is_never_attractive_the_other_way() {
        // Whatever the loads, if A sends a job to B, B (seeing the job's load there)
        // would not send it back.
        let p = policy();
        for (la, ca, lb, cb) in [
            (3.0, 1.0, 0.0, 1.0),
            (6.0, 1.0, 0.0, 0.25),
            (2.0, 0.5, 1.0, 1.0),
            (9.0, 2.0, 1.0, 0.5),
        ] {
            let a = node(1, la, ca);
            let b = node(2, lb, cb);
            let s = snap(a, vec![b], vec![cpu_job(1, 60)]);
            if let Some(m) = p.decide(&s).action {
                assert_eq!(m.to, Dest::Node(2));
                let a_after = node(1, la - 1.0 / ca, ca);
                let b_after = node(2, lb + 1.0 / cb, cb);
                let mut job = cpu_job(1, 60);
                job.home = Some(1);
                let back = snap(b_after, vec![a_after], vec![job]);
                assert_eq!(p.decide(&back).action, None, "{la} {ca} {lb} {cb}");
            }
        }
    }

    #[test]
    fn young_locked_and_staying_processes_hold_with_reasons() {
        let p = policy();
        let mut locked = cpu_job(2, 10);
        locked.locked = true;
        let s = snap(
            node(1, 4.0, 1.0),
            vec![node(2, 0.0, 1.0)],
            vec![cpu_job(1, 1), locked],
        );
        let plan = p.decide(&s);
        assert_eq!(plan.action, None);
        assert!(matches!(plan.held[0], (2, Hold::Locked)), "{plan:?}");
        assert!(matches!(plan.held[1], (1, Hold::TooYoung { .. })));
        assert!(plan.held[1].1.to_string().contains("ran 1.0 s of the 3 s"));
        let mut stay = snap(
            node(1, 4.0, 1.0),
            vec![node(2, 0.0, 1.0)],
            vec![cpu_job(1, 10)],
        );
        stay.me.flags = flags::STAY;
        assert_eq!(p.decide(&stay).held, vec![(1, Hold::NodeStays)]);
        // lstay keeps own processes, lets guests go.
        let mut guest = cpu_job(2, 10);
        guest.home = Some(3);
        let mut l = snap(
            node(1, 4.0, 1.0),
            vec![node(2, 0.0, 1.0), node(3, 4.0, 1.0)],
            vec![cpu_job(1, 10), guest],
        );
        l.me.flags = flags::LSTAY;
        let plan = p.decide(&l);
        assert_eq!(plan.held[0], (1, Hold::LocalStays));
        assert_eq!(plan.action.map(|m| (m.pid, m.to)), Some((2, Dest::Node(2))));
    }

    #[test]
    fn a_process_that_moved_settles_before_it_moves_again() {
        let p = policy();
        let mut job = cpu_job(1, 100);
        job.moves = 1;
        job.here = Duration::from_secs(5);
        let s = snap(
            node(1, 4.0, 1.0),
            vec![node(2, 0.0, 1.0)],
            vec![job.clone()],
        );
        let plan = p.decide(&s);
        assert!(matches!(plan.held[0].1, Hold::Settling { .. }), "{plan:?}");
        job.here = Duration::from_secs(25);
        let s = snap(
            node(1, 4.0, 1.0),
            vec![node(2, 0.0, 1.0)],
            vec![job.clone()],
        );
        assert!(p.decide(&s).action.is_some());
        // Twice as long after a second move: at most two moves a minute.
        job.moves = 2;
        let s = snap(node(1, 4.0, 1.0), vec![node(2, 0.0, 1.0)], vec![job]);
        assert!(p.decide(&s).held[0].1.to_string().contains("stays 40 s"));
    }

    #[test]
    fn blocked_nodes_receive_nothing_but_home_takes_its_guests_back() {
        let p = policy();
        let mut blocked = node(2, 0.0, 1.0);
        blocked.flags = flags::BLOCK;
        let s = snap(node(1, 4.0, 1.0), vec![blocked], vec![cpu_job(1, 10)]);
        assert_eq!(p.decide(&s).held, vec![(1, Hold::NoTarget)]);
        assert_eq!(p.place(&s, 0), None);
        let mut guest = cpu_job(1, 10);
        guest.home = Some(2);
        let s = snap(node(1, 4.0, 1.0), vec![blocked], vec![guest]);
        assert_eq!(p.decide(&s).action.map(|m| m.to), Some(Dest::Home));
    }

    #[test]
    fn a_huge_process_moves_only_when_the_gain_pays_for_it() {
        let p = policy();
        let mut big = cpu_job(1, 5);
        big.mem = 4 * G;
        let mut me = node(1, 3.0, 1.0);
        me.mem_total = 16 * G;
        me.mem_avail = 8 * G;
        let mut there = node(2, 0.0, 1.0);
        there.mem_total = 16 * G;
        there.mem_avail = 16 * G;
        let s = snap(me, vec![there], vec![big.clone()]);
        let plan = p.decide(&s);
        assert!(matches!(plan.held[0].1, Hold::TooBig { .. }), "{plan:?}");
        big.age = Duration::from_secs(120);
        let s = snap(me, vec![there], vec![big]);
        assert!(p.decide(&s).action.is_some());
    }

    #[test]
    fn io_bound_processes_stay_or_go_home() {
        let p = policy();
        let mut io = cpu_job(1, 10);
        io.forwarded = 0.8;
        let s = snap(node(1, 4.0, 1.0), vec![node(2, 0.0, 1.0)], vec![io.clone()]);
        assert!(matches!(p.decide(&s).held[0].1, Hold::IoBound { .. }));
        // The same as a guest: home, even though home is loaded.
        io.home = Some(2);
        let s = snap(node(1, 0.5, 1.0), vec![node(2, 4.0, 1.0)], vec![io.clone()]);
        let m = p.decide(&s).action.unwrap();
        assert_eq!(m.to, Dest::Home);
        assert!(m.why.to_string().contains("80%"));
        // cpujob overrides the measure.
        io.hint = Hint::Cpu;
        let s = snap(node(1, 0.5, 1.0), vec![node(2, 4.0, 1.0)], vec![io]);
        assert_eq!(p.decide(&s).action, None);
    }

    #[test]
    fn a_node_short_of_memory_ushers_its_largest_process_to_room() {
        let p = policy();
        let mut me = node(1, 1.0, 1.0);
        me.mem_avail = 20 << 20;
        let mut small = cpu_job(1, 0);
        small.mem = 10 << 20;
        let mut big = cpu_job(2, 0);
        big.mem = 900 << 20;
        let mut full = node(2, 0.0, 1.0);
        full.mem_avail = 500 << 20;
        let roomy = node(3, 2.0, 1.0);
        let s = snap(me, vec![full, roomy], vec![small, big.clone()]);
        let m = p.decide(&s).action.unwrap();
        assert_eq!(
            (m.pid, m.to),
            (2, Dest::Node(3)),
            "young, but memory comes first"
        );
        assert!(matches!(m.why, Why::Memory { .. }));
        // With room yet, but falling fast: before it is short.
        me.mem_avail = 300 << 20;
        let mut s = snap(me, vec![full, roomy], vec![big]);
        assert_eq!(p.decide(&s).action, None);
        s.mem_falling = 100e6;
        let m = p.decide(&s).action.unwrap();
        assert!(m.why.to_string().contains("falling"), "{}", m.why);
    }

    #[test]
    fn flood_control_spreads_successive_decisions() {
        let mut b = Balancer::new(Box::new(policy()));
        let peers = vec![node(2, 0.0, 1.0), node(3, 0.0, 1.0), node(4, 0.0, 1.0)];
        let mut s = snap(
            node(1, 6.0, 1.0),
            peers,
            (1..=6).map(|p| cpu_job(p, 10)).collect(),
        );
        let mut went = Vec::new();
        for i in 0..3 {
            s.now = 10_000 + i * 1000;
            let m = b.decide(&s).action.unwrap();
            s.procs.retain(|p| p.pid != m.pid);
            went.push(m.to);
        }
        went.sort_by_key(|d| format!("{d:?}"));
        assert_eq!(went, vec![Dest::Node(2), Dest::Node(3), Dest::Node(4)]);
        // Placement reserves too: three new jobs at an equal cluster go to three nodes.
        let mut b = Balancer::new(Box::new(policy()));
        let peers = vec![node(2, 0.0, 1.0), node(3, 0.0, 1.0)];
        let s = snap(node(1, 1.0, 1.0), peers, vec![]);
        let placed: Vec<_> = (0..3).map(|_| b.place(&s, 0)).collect();
        assert!(
            placed.contains(&Some(2)) && placed.contains(&Some(3)),
            "{placed:?}"
        );
    }

    #[test]
    fn a_reservation_ends_when_the_target_reports_after_it() {
        let mut b = Balancer::new(Box::new(policy()));
        b.note_move(1000, 1, 2, 1.0, 0);
        let mut s = snap(node(1, 1.0, 1.0), vec![node(2, 0.0, 1.0)], vec![]);
        s.now = 1500;
        s.peers[0].stamp = 1200;
        assert!((b.adjusted(&s).peers[0].load - 1.0).abs() < 1e-9);
        s.peers[0].stamp = 3100;
        assert_eq!(b.adjusted(&s).peers[0].load, 0.0);
        assert_eq!(smooth(None, 1.0), 1.0);
        assert_eq!(smooth(Some(1.0), 0.0), 0.5);
    }
}
