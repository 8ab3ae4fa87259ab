//! omd's balancer task: once per balancing interval (the gossip interval, at a random
//! phase of its own) it measures the processes that run here, builds a
//! [`balance::Snapshot`] from them and the gossip window, asks the policy
//! ([`balance::Balancer`]) and carries out what it decided: at most one move.
//!
//! Candidates are the processes under migration control that run at this node (started
//! by mosrun, locked or hinted through the tools, their descendants) and the guests of
//! other nodes. A process's demand is the share of time its threads were running or
//! waiting for a CPU (`/proc/PID/task/*/schedstat`), smoothed as MOSIX smooths it. How
//! I/O-bound it is: for a guest, the share of time it waited for forwarded calls; for a
//! process at home, its rate of read and write calls (`/proc/PID/io`) times what one
//! forwarded call costs ([`FORWARD_COST`]).

use crate::balance::{self, Balancer, Dest, Hint, NodeLoad, OpportunityCost, Proc, Snapshot, Why};
use crate::migrate::Migrations;
use crate::node::Node;
use om_map::NodeId;
use om_proto::JobKind;
use om_proto::MigrateTo;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The balancer of a node: its policy (with flood control), the node whose gossip it
/// reads, and what it did.
pub struct Balancing {
    node: Arc<Mutex<Node>>,
    policy: Mutex<Balancer>,
    moved_out: AtomicU64,
    failed: AtomicU64,
    ushered: AtomicU64,
    last: Mutex<Option<String>>,
    candidates: AtomicUsize,
}

impl Balancing {
    /// The balancer of `node`, with the default policy.
    pub fn new(node: Arc<Mutex<Node>>) -> Self {
        Self {
            node,
            policy: Mutex::new(Balancer::new(Box::new(OpportunityCost::default()))),
            moved_out: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ushered: AtomicU64::new(0),
            last: Mutex::new(None),
            candidates: AtomicUsize::new(0),
        }
    }

    /// The balancer's state for `mosctl status` (with the arrivals `m` counted).
    pub fn status(&self, m: &Migrations, interval: Duration) -> om_proto::BalancerStatus {
        om_proto::BalancerStatus {
            policy: self
                .policy
                .lock()
                .expect("policy lock")
                .policy()
                .name()
                .into(),
            interval_ms: interval.as_millis() as u64,
            candidates: self.candidates.load(Ordering::Relaxed),
            moved_out: self.moved_out.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            moved_in: m.auto_arrivals(),
            ushered: self.ushered.load(Ordering::Relaxed),
            last: self.last.lock().expect("last lock").clone(),
            arriving: m.arriving(),
        }
    }
}

/// What one forwarded call costs a process away from home (two link round trips; see
/// `mig-bench`: 165 µs for `getppid()` over the omcluster link).
pub const FORWARD_COST: Duration = Duration::from_micros(150);

/// The balancing interval for a gossip interval.
pub fn interval(gossip: Duration) -> Duration {
    gossip.clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// The last measurement of one process.
#[derive(Debug, Clone, Copy)]
struct Track {
    start: u64,
    at: Instant,
    runnable: Duration,
    rw_calls: u64,
    waited: Duration,
    demand: Option<f64>,
    forwarded: Option<f64>,
}

/// Measurements between decisions, keyed by pid here.
#[derive(Default)]
struct Tracks(HashMap<i32, Track>);

impl Tracks {
    /// Updates `pid`'s measures and returns (demand, forwarded share).
    fn update(
        &mut self,
        pid: i32,
        u: &crate::procs::Usage,
        waited: Option<Duration>,
    ) -> (f64, f64) {
        let now = Instant::now();
        let fresh = Track {
            start: u.start,
            at: now,
            runnable: u.runnable,
            rw_calls: u.rw_calls,
            waited: waited.unwrap_or_default(),
            demand: None,
            forwarded: None,
        };
        let t = self.0.entry(pid).or_insert(fresh);
        if t.start != u.start {
            *t = fresh;
        }
        let wall = now.duration_since(t.at).as_secs_f64();
        if wall >= 0.1 {
            let demand =
                (u.runnable.saturating_sub(t.runnable).as_secs_f64() / wall).clamp(0.0, 64.0);
            let forwarded = match waited {
                Some(w) => w.saturating_sub(t.waited).as_secs_f64() / wall,
                None => {
                    u.rw_calls.saturating_sub(t.rw_calls) as f64 / wall * FORWARD_COST.as_secs_f64()
                }
            }
            .clamp(0.0, 1.0);
            t.demand = Some(balance::smooth(t.demand, demand));
            t.forwarded = Some(balance::smooth(t.forwarded, forwarded));
            t.at = now;
            t.runnable = u.runnable;
            t.rw_calls = u.rw_calls;
            t.waited = waited.unwrap_or_default();
        }
        (t.demand.unwrap_or(0.0), t.forwarded.unwrap_or(0.0))
    }

    fn keep(&mut self, pids: &[i32]) {
        self.0.retain(|p, _| pids.contains(p));
    }
}

fn hint(job: JobKind) -> Hint {
    match job {
        JobKind::Any => Hint::None,
        JobKind::Cpu => Hint::Cpu,
        JobKind::Io => Hint::Io,
    }
}

/// The time, this node and the nodes it sees up, as the balancer sees them.
fn nodes(b: &Balancing) -> (balance::Millis, NodeLoad, Vec<NodeLoad>) {
    let n = b.node.lock().expect("node lock");
    let now = n.now();
    let own = n.own();
    let me_id = n.cfg.node;
    let mut me = NodeLoad::from_record(me_id, &own, now);
    me.load = f64::from(n.local_load()) / 100.0;
    let peers = n
        .up_nodes()
        .into_iter()
        .filter(|&id| id != me_id)
        .filter_map(|id| {
            let v = n.view(id)?;
            let r = v.record?;
            let stamp = now - v.age_ms.unwrap_or(0) as i64;
            Some(NodeLoad::from_record(id, &r, stamp))
        })
        .collect();
    (now, me, peers)
}

/// The snapshot of one decision, measuring every candidate.
fn snapshot(b: &Balancing, m: &Migrations, tracks: &mut Tracks) -> Snapshot {
    let (now, me, peers) = nodes(b);
    let mut procs = Vec::new();
    for (pid, h) in m.at_home() {
        let Some(u) = crate::procs::usage(pid) else {
            continue;
        };
        if om_ckpt::check_movable(pid).is_err() {
            continue; // `cantmove` says why
        }
        let (demand, forwarded) = tracks.update(pid, &u, None);
        procs.push(Proc {
            pid,
            home: None,
            demand,
            mem: u.rss,
            age: u.age,
            here: h.home_since.map_or(u.age, |t| t.elapsed().min(u.age)),
            forwarded,
            locked: h.lock,
            hint: hint(h.job),
            moves: h.nmigs,
        });
    }
    for g in m.guests() {
        let Some(u) = crate::procs::usage(g.pid) else {
            continue;
        };
        let (_, waited) = g.stats.get();
        let (demand, forwarded) = tracks.update(g.pid, &u, Some(waited));
        let here = g.arrived.elapsed();
        procs.push(Proc {
            pid: g.pid,
            home: Some(g.home),
            demand,
            mem: u.rss.max(g.bytes),
            age: g.age + here,
            here,
            forwarded,
            locked: g.locked,
            hint: hint(g.job),
            moves: g.moves,
        });
    }
    let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
    tracks.keep(&pids);
    // A migration group at home is one job.
    let groups: std::collections::HashMap<i32, u32> = m
        .at_home()
        .into_iter()
        .filter(|(_, h)| h.group != 0)
        .map(|(pid, h)| (pid, h.group))
        .collect();
    let procs = balance::as_units(procs, |pid| groups.get(&pid).copied().unwrap_or(0));
    Snapshot {
        now,
        me,
        peers,
        procs,
        bandwidth: m.mean_bandwidth(),
        mem_falling: 0.0,
    }
}

/// How fast a node's available memory falls, from one reading to the next.
#[derive(Default)]
struct MemTrend {
    last: Option<(Instant, u64)>,
    falling: f64,
}

impl MemTrend {
    fn update(&mut self, avail: u64) -> f64 {
        let now = Instant::now();
        if let Some((at, was)) = self.last {
            let secs = now.duration_since(at).as_secs_f64();
            // The record changes once a second: an unchanged one is no news.
            if secs >= 0.2 && avail != was {
                let rate = (was as f64 - avail as f64) / secs;
                // Rising memory resets the trend at once; a fall is smoothed a little.
                self.falling = if rate <= 0.0 {
                    0.0
                } else {
                    0.3 * self.falling + 0.7 * rate
                };
                self.last = Some((now, avail));
            }
        } else {
            self.last = Some((now, avail));
        }
        self.falling
    }
}

/// Where to start process `pid` (`mosrun` without a node): `None` keeps it here.
pub fn place(b: &Balancing, m: &Migrations, pid: i32) -> Option<NodeId> {
    let (now, me, peers) = nodes(b);
    let s = Snapshot {
        now,
        me,
        peers,
        procs: Vec::new(),
        bandwidth: m.mean_bandwidth(),
        mem_falling: 0.0,
    };
    let mem = crate::procs::usage(pid).map_or(0, |u| u.rss);
    let to = b.policy.lock().expect("policy lock").place(&s, mem);
    let load = |n: NodeId| s.peers.iter().find(|p| p.node == n).map_or(0.0, |p| p.load);
    match to {
        Some(n) => tracing::info!(
            "balancer: placing pid {pid} at node {n}: load {:.1} here, {:.1} there",
            s.me.load,
            load(n)
        ),
        None => tracing::debug!("balancer: pid {pid} starts here"),
    }
    to
}

/// Starts balancer `b` of migrations `m` in a thread of its own.
pub fn start(b: Arc<Balancing>, m: Arc<Migrations>) {
    let _ = std::thread::Builder::new()
        .name("om-balance".into())
        .spawn(move || run(&b, m));
}

fn run(b: &Arc<Balancing>, m: Arc<Migrations>) {
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    let every = interval(b.node.lock().expect("node lock").cfg.interval);
    std::thread::sleep(every.mul_f64(rng.random::<f64>()));
    let mut tracks = Tracks::default();
    let mut trend = MemTrend::default();
    let moving = Arc::new(AtomicBool::new(false));
    loop {
        // A random part of a tenth of the interval keeps nodes from deciding in step.
        std::thread::sleep(every.mul_f64(0.95 + 0.1 * rng.random::<f64>()));
        let mut s = snapshot(b, &m, &mut tracks);
        s.mem_falling = trend.update(s.me.mem_avail);
        b.candidates.store(s.procs.len(), Ordering::Relaxed);
        if s.procs.is_empty() || moving.load(Ordering::SeqCst) {
            continue;
        }
        let plan = b.policy.lock().expect("policy lock").decide(&s);
        for (pid, hold) in &plan.held {
            m.set_held(*pid, hold.to_string());
        }
        let Some(mv) = plan.action else { continue };
        let Some(p) = s.procs.iter().find(|p| p.pid == mv.pid).cloned() else {
            continue;
        };
        m.set_held(p.pid, String::new());
        moving.store(true, Ordering::SeqCst);
        let (b2, m2, moving2) = (b.clone(), m.clone(), moving.clone());
        let _ = std::thread::Builder::new()
            .name(format!("om-auto-{}", p.pid))
            .spawn(move || {
                carry_out(&b2, &m2, &p, mv.to, mv.why);
                moving2.store(false, Ordering::SeqCst);
            });
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1 << 20)
}

/// Carries out one decided move, and counts and logs it.
fn carry_out(b: &Balancing, m: &Arc<Migrations>, p: &Proc, to: Dest, why: Why) {
    let whose = match p.home {
        None => format!("pid {}", p.pid),
        Some(h) => format!("guest {} of node {h}", p.pid),
    };
    let dest = match (to, p.home) {
        (Dest::Home, Some(h)) => format!("home (node {h})"),
        (Dest::Home, None) => "home".into(),
        (Dest::Node(n), _) => format!("node {n}"),
    };
    let line = format!(
        "{whose} to {dest}: {why}, {:.0} MiB, ran {:.0} s",
        mib(p.mem),
        p.age.as_secs_f64()
    );
    let result = match (to, p.home) {
        (Dest::Node(n), None) => m
            .carry_out(p.pid, MigrateTo::Node(n), false, true)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        (Dest::Home, _) => {
            if m.send_guest_home(p.pid) {
                Ok(())
            } else {
                Err("it is no longer here".into())
            }
        }
        (Dest::Node(n), Some(_)) => m
            .send_guest_on(p.pid, n)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => {
            tracing::info!("balancer: {line}");
            b.moved_out.fetch_add(1, Ordering::Relaxed);
            if matches!(why, Why::Memory { .. }) {
                b.ushered.fetch_add(1, Ordering::Relaxed);
            }
            *b.last.lock().expect("last lock") = Some(line);
        }
        Err(e) => {
            tracing::info!("balancer: {line}: failed: {e}");
            b.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
