//! `omd simulate --balance`: the daemon's balancer ([`crate::balance::Balancer`] with
//! [`crate::balance::OpportunityCost`]) and gossip ([`crate::gossip::Table`]) run for up
//! to thousands of nodes on a simulated clock, over a workload of CPU-bound jobs, next to
//! the placements it replaces.
//!
//! The model: every node has one CPU of a given speed, shared equally by the jobs it runs
//! (a job of work `w` standard CPU-seconds alone on a CPU of speed `s` takes `w / s`
//! seconds). Every node measures its run queue, smooths its load as omd does
//! ([`crate::load::Smoothed`]), gossips once a second at a phase of its own to one random
//! node, and balances once a second at another phase, deciding from its own load, its
//! jobs and the freshest records of its gossip window. A moved job makes no progress
//! while its memory crosses the link (`mem / bandwidth + 0.2 s`). Placements compared:
//! - `balancer`: jobs placed at once by the balancer where they arrive (as `mosrun`
//!   without a node does), then balanced;
//! - `round-robin`: each job started at the next node in turn, never moved;
//! - `random`: each job started at a random node, never moved;
//! - `none`: each job runs where it arrives.

use crate::balance::{Balancer, Dest, NodeLoad, OpportunityCost, Proc, Snapshot};
use crate::gossip::{pick_peer, Millis, Table};
use crate::load::{raw_load, Smoothed};
use om_proto::{NodeRecord, STANDARD_SPEED};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;

/// The jobs of a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `--jobs` equal jobs of `--work` seconds, all at node 1 at once.
    Burst,
    /// Jobs of mixed lengths (70% of 0.5–4 s, 25% of 5–30 s, 5% of 30–120 s) and memory
    /// (8–512 MiB) arriving at random nodes during `--seconds`, at a rate that keeps the
    /// cluster about 70% busy.
    Mixed,
}

/// How jobs are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    Balancer,
    RoundRobin,
    Random,
    None,
}

impl Placement {
    pub const ALL: [Placement; 4] = [
        Placement::Balancer,
        Placement::RoundRobin,
        Placement::Random,
        Placement::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placement::Balancer => "balancer",
            Placement::RoundRobin => "round-robin",
            Placement::Random => "random",
            Placement::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    /// Arrivals happen during this many seconds (the mixed workload).
    pub seconds: u64,
    pub window: usize,
    /// Per-node CPU speeds relative to a standard CPU, repeated over the nodes.
    pub speeds: Vec<f64>,
    pub workload: Workload,
    /// Jobs of the burst.
    pub jobs: usize,
    /// Work of each burst job, standard CPU-seconds.
    pub work: f64,
    /// Memory of each node, bytes.
    pub mem: u64,
    /// Link bandwidth, bytes per second.
    pub bandwidth: f64,
    pub seed: u64,
}

/// One job of a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobSpec {
    /// When it starts, seconds.
    pub arrival: f64,
    /// Where it starts (index).
    pub node: usize,
    /// Standard CPU-seconds.
    pub work: f64,
    pub mem: u64,
}

/// What one simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub placement: Placement,
    pub workload: Workload,
    pub nodes: usize,
    pub jobs: usize,
    pub finished: usize,
    /// When the last job ended, seconds.
    pub makespan_s: f64,
    /// The least makespan possible: all work spread over all capacity, or the longest
    /// job alone on the fastest CPU, whichever is more (arrival times aside).
    pub ideal_s: f64,
    /// Mean of (time in the system / time alone on the fastest CPU) over the jobs.
    pub mean_slowdown: f64,
    pub migrations_per_job: f64,
    /// Wall time the simulation took, seconds.
    pub wall_s: f64,
}

const DT: f64 = 0.1;
const MIB: u64 = 1 << 20;

fn speed_of(p: &Params, i: usize) -> f64 {
    p.speeds
        .get(i % p.speeds.len().max(1))
        .copied()
        .unwrap_or(1.0)
}

/// The jobs of `p`'s workload.
pub fn workload(p: &Params) -> Vec<JobSpec> {
    let n = p.nodes.max(2);
    let mut rng = SmallRng::seed_from_u64(p.seed ^ 0x5eed);
    match p.workload {
        Workload::Burst => (0..p.jobs)
            .map(|_| JobSpec {
                arrival: 0.0,
                node: 0,
                work: p.work,
                mem: 16 * MIB,
            })
            .collect(),
        Workload::Mixed => {
            let capacity: f64 = (0..n).map(|i| speed_of(p, i)).sum();
            // Mean work of the mix below.
            let mean = 0.7 * 2.25 + 0.25 * 17.5 + 0.05 * 75.0;
            let rate = 0.7 * capacity / mean;
            let mut t = 0.0;
            let mut out = Vec::new();
            loop {
                t += -(1.0 - rng.random::<f64>()).ln() / rate;
                if t >= p.seconds as f64 {
                    break out;
                }
                let r = rng.random::<f64>();
                let work = if r < 0.7 {
                    rng.random_range(0.5..4.0)
                } else if r < 0.95 {
                    rng.random_range(5.0..30.0)
                } else {
                    rng.random_range(30.0..120.0)
                };
                out.push(JobSpec {
                    arrival: t,
                    node: rng.random_range(0..n),
                    work,
                    mem: rng.random_range(8..512) * MIB,
                });
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running(usize),
    Moving { to: usize, until: f64 },
    Done(f64),
}

#[derive(Debug, Clone)]
struct Job {
    spec: JobSpec,
    left: f64,
    state: State,
    moves: u32,
    arrived_here: f64,
}

/// What a simulated node gossips: the parts of a [`NodeRecord`] the balancer reads,
/// small enough for a table of 10,000 entries at each of 10,000 nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SimRecord {
    load: u32,
    speed: u32,
    mem_mib: u32,
}

impl SimRecord {
    fn full(self, p: &Params) -> NodeRecord {
        let mem = u64::from(self.mem_mib) * MIB;
        NodeRecord {
            load: self.load,
            speed: self.speed,
            cpus: 1,
            util: 0,
            flags: 0,
            mem,
            free: mem,
            tmem: p.mem,
        }
    }
}

struct SimNode {
    speed: f64,
    jobs: Vec<usize>,
    /// Only the balancer gossips (the other placements know nothing of the others).
    table: Option<Table<SimRecord>>,
    smoothed: Smoothed,
    queue_sum: f64,
    samples: u32,
    gossip_phase: Millis,
    balance_phase: Millis,
    balancer: Balancer,
}

impl SimNode {
    fn record(&self, p: &Params, mem_used: u64) -> SimRecord {
        SimRecord {
            load: self.smoothed.exported.round() as u32,
            speed: (self.speed * f64::from(STANDARD_SPEED)).round().max(1.0) as u32,
            mem_mib: (p.mem.saturating_sub(mem_used) / MIB) as u32,
        }
    }
}

/// Runs `jobs` on the nodes of `p` with placement `how`.
pub fn run(p: &Params, jobs: &[JobSpec], how: Placement) -> Outcome {
    let started = std::time::Instant::now();
    let n = p.nodes.max(2);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let mut nodes: Vec<SimNode> = (0..n)
        .map(|i| SimNode {
            speed: speed_of(p, i),
            jobs: Vec::new(),
            table: (how == Placement::Balancer).then(|| Table::new(n, i, p.window)),
            smoothed: Smoothed::default(),
            queue_sum: 0.0,
            samples: 0,
            gossip_phase: rng.random_range(0..1000),
            balance_phase: rng.random_range(0..1000),
            balancer: Balancer::new(Box::new(OpportunityCost::default())),
        })
        .collect();
    let mut js: Vec<Job> = jobs
        .iter()
        .map(|s| Job {
            spec: *s,
            left: s.work,
            state: State::Waiting,
            moves: 0,
            arrived_here: s.arrival,
        })
        .collect();
    let mut order: Vec<usize> = (0..js.len()).collect();
    order.sort_by(|&a, &b| js[a].spec.arrival.total_cmp(&js[b].spec.arrival));
    let mut next_arrival = 0;
    let mut rr = 0usize;
    let mut done = 0usize;
    let mut mem_used = vec![0u64; n];
    let fastest = (0..n).map(|i| speed_of(p, i)).fold(0.0, f64::max).max(1e-6);
    let limit = (p.seconds as f64 * 20.0).max(3600.0);
    let mut msg = Vec::with_capacity(p.window + 1);
    let mut step: u64 = 0;
    while done < js.len() {
        let t = step as f64 * DT;
        if t > limit {
            break;
        }
        let now: Millis = (step as i64) * (DT * 1000.0) as i64;
        // Arrivals.
        while next_arrival < order.len() && js[order[next_arrival]].spec.arrival < t + DT {
            let j = order[next_arrival];
            next_arrival += 1;
            let at = js[j].spec.node;
            let to = match how {
                Placement::None => at,
                Placement::RoundRobin => {
                    rr += 1;
                    (rr - 1) % n
                }
                Placement::Random => rng.random_range(0..n),
                Placement::Balancer => {
                    let s = snapshot(p, &nodes, &js, &mem_used, at, now);
                    match nodes[at].balancer.place(&s, js[j].spec.mem) {
                        Some(id) => usize::from(id) - 1,
                        None => at,
                    }
                }
            };
            js[j].state = State::Running(to);
            js[j].arrived_here = t;
            nodes[to].jobs.push(j);
            mem_used[to] += js[j].spec.mem;
        }
        // Progress and arrivals of moved jobs.
        for (i, node) in nodes.iter_mut().enumerate() {
            let k = node.jobs.len();
            node.queue_sum += k as f64;
            node.samples += 1;
            if k == 0 {
                continue;
            }
            let rate = node.speed / k as f64 * DT;
            node.jobs.retain(|&j| {
                js[j].left -= rate;
                if js[j].left <= 0.0 {
                    js[j].state = State::Done(t + DT);
                    mem_used[i] -= js[j].spec.mem;
                    done += 1;
                    false
                } else {
                    true
                }
            });
        }
        for (j, job) in js.iter_mut().enumerate() {
            if let State::Moving { to, until } = job.state {
                if until <= t {
                    job.state = State::Running(to);
                    job.arrived_here = t;
                    nodes[to].jobs.push(j);
                }
            }
        }
        // Once a second per node, at its phases: measure, gossip, balance.
        let in_step = |phase: Millis| {
            let ms = now % 1000;
            (ms..ms + (DT * 1000.0) as i64).contains(&phase)
        };
        for i in 0..n {
            if how == Placement::Balancer && in_step(nodes[i].gossip_phase) {
                let node = &mut nodes[i];
                let runq = node.queue_sum / f64::from(node.samples.max(1));
                (node.queue_sum, node.samples) = (0.0, 0);
                let speed = (node.speed * f64::from(STANDARD_SPEED)) as u32;
                node.smoothed.update(raw_load(runq, speed, 1));
                let rec = node.record(p, mem_used[i]);
                if let Some(table) = node.table.as_mut() {
                    table.set_own(now, rec);
                    table.message(now, &mut msg);
                }
                if let Some(peer) = pick_peer(&mut rng, n, i) {
                    if let Some(table) = nodes[peer].table.as_mut() {
                        table.merge(now, msg.iter().copied());
                    }
                }
            }
            if how == Placement::Balancer && in_step(nodes[i].balance_phase) {
                let s = snapshot(p, &nodes, &js, &mem_used, i, now);
                if s.procs.is_empty() {
                    continue;
                }
                let plan = nodes[i].balancer.decide(&s);
                let Some(m) = plan.action else { continue };
                let j = m.pid as usize;
                let to = match m.to {
                    Dest::Node(id) => usize::from(id) - 1,
                    Dest::Home => js[j].spec.node,
                };
                nodes[i].jobs.retain(|&x| x != j);
                mem_used[i] -= js[j].spec.mem;
                mem_used[to] += js[j].spec.mem;
                let secs = js[j].spec.mem as f64 / p.bandwidth.max(1.0) + 0.2;
                js[j].state = State::Moving {
                    to,
                    until: t + secs,
                };
                js[j].moves += 1;
            }
        }
        step += 1;
    }
    let mut makespan: f64 = 0.0;
    let mut slow = 0.0;
    for j in &js {
        if let State::Done(end) = j.state {
            makespan = makespan.max(end);
            slow += (end - j.spec.arrival) / (j.spec.work / fastest).max(DT);
        }
    }
    let capacity: f64 = (0..n).map(|i| speed_of(p, i)).sum();
    let work: f64 = js.iter().map(|j| j.spec.work).sum();
    let longest = js.iter().map(|j| j.spec.work).fold(0.0, f64::max);
    Outcome {
        placement: how,
        workload: p.workload,
        nodes: n,
        jobs: js.len(),
        finished: done,
        makespan_s: makespan,
        ideal_s: (work / capacity).max(longest / fastest),
        mean_slowdown: if done > 0 { slow / done as f64 } else { 0.0 },
        migrations_per_job: js.iter().map(|j| f64::from(j.moves)).sum::<f64>()
            / js.len().max(1) as f64,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// What node `i` knows and runs, as the daemon's balancer would see it.
fn snapshot(
    p: &Params,
    nodes: &[SimNode],
    js: &[Job],
    mem_used: &[u64],
    i: usize,
    now: Millis,
) -> Snapshot {
    let node = &nodes[i];
    let mut own = node.record(p, mem_used[i]);
    own.load = node.smoothed.local.round() as u32;
    let me = NodeLoad::from_record(i as u16 + 1, &own.full(p), now);
    let peers = node
        .table
        .iter()
        .flat_map(|t| {
            t.freshest().filter_map(|k| {
                let (stamp, rec) = t.get(k)?;
                Some(NodeLoad::from_record(k as u16 + 1, &rec.full(p), stamp))
            })
        })
        .collect();
    let t = now as f64 / 1000.0;
    let procs = node
        .jobs
        .iter()
        .map(|&j| {
            let job = &js[j];
            Proc {
                pid: j as i32,
                home: (job.spec.node != i).then_some(job.spec.node as u16 + 1),
                demand: 1.0,
                mem: job.spec.mem,
                age: Duration::from_secs_f64((t - job.spec.arrival).max(0.0)),
                here: Duration::from_secs_f64((t - job.arrived_here).max(0.0)),
                forwarded: 0.0,
                locked: false,
                hint: crate::balance::Hint::None,
                moves: job.moves,
            }
        })
        .collect();
    Snapshot {
        now,
        me,
        peers,
        procs,
        bandwidth: p.bandwidth,
        mem_falling: 0.0,
    }
}

/// The outcomes as the table `omd simulate --balance` prints.
pub fn table(outcomes: &[Outcome]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "WORKLOAD  NODES  PLACEMENT    JOBS   DONE   MAKESPAN  IDEAL     MAKESPAN/IDEAL  MEAN-SLOWDOWN  MIGRATIONS/JOB  WALL\n",
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<8}  {:<5}  {:<11}  {:<5}  {:<5}  {:<8}  {:<8}  {:<14.2}  {:<13.2}  {:<14.2}  {:.1}s",
            match o.workload {
                Workload::Burst => "burst",
                Workload::Mixed => "mixed",
            },
            o.nodes,
            o.placement.name(),
            o.jobs,
            o.finished,
            format!("{:.1}s", o.makespan_s),
            format!("{:.1}s", o.ideal_s),
            o.makespan_s / o.ideal_s.max(1e-9),
            o.mean_slowdown,
            o.migrations_per_job,
            o.wall_s
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(workload: Workload, nodes: usize) -> Params {
        Params {
            nodes,
            seconds: 60,
            window: 16,
            speeds: vec![1.0, 0.5, 0.5, 0.25],
            workload,
            jobs: 16,
            work: 10.0,
            mem: 4 << 30,
            bandwidth: 110e6,
            seed: 1,
        }
    }

    #[test]
    fn the_balancer_spreads_a_burst_near_the_ideal() {
        let p = params(Workload::Burst, 4);
        let jobs = workload(&p);
        let bal = run(&p, &jobs, Placement::Balancer);
        let none = run(&p, &jobs, Placement::None);
        let rr = run(&p, &jobs, Placement::RoundRobin);
        assert_eq!((bal.finished, none.finished), (16, 16));
        // All at node 1: 160 s of work on one CPU.
        assert!((none.makespan_s - 160.0).abs() < 1.0, "{none:?}");
        assert!(bal.makespan_s < 1.15 * bal.ideal_s, "{bal:?}");
        assert!(bal.makespan_s < rr.makespan_s, "{bal:?} {rr:?}");
        assert!(bal.migrations_per_job < 3.0, "{bal:?}");
    }

    #[test]
    fn the_balancer_beats_blind_placement_on_mixed_arrivals() {
        let p = params(Workload::Mixed, 32);
        let jobs = workload(&p);
        assert!(jobs.len() > 50, "{}", jobs.len());
        let bal = run(&p, &jobs, Placement::Balancer);
        let rnd = run(&p, &jobs, Placement::Random);
        let rr = run(&p, &jobs, Placement::RoundRobin);
        assert_eq!(bal.finished, jobs.len());
        assert!(bal.mean_slowdown < rnd.mean_slowdown, "{bal:?} {rnd:?}");
        assert!(bal.mean_slowdown < rr.mean_slowdown, "{bal:?} {rr:?}");
    }
}
