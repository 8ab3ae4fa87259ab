//! balance-bench: what the balancer achieves, measured in a 4-node omcluster whose nodes
//! have 1, 0.5, 0.5 and 0.25 of a CPU, next to the simulator's figures for the same jobs.
//!
//! 1. A burst: `--jobs` equal CPU-bound jobs (tests/testprogs/balance/spin) started at
//!    once at node 1 with plain `mosrun` (the balancer), with `mosrun -h` (all at node 1)
//!    and with `mosrun -j2-4` (random placement). Makespan, against the ideal: all their
//!    work over the capacity the four nodes showed, measured in the same run by one job
//!    alone at each node, all four at once.
//! 2. Mixed jobs: `--mixed` jobs of 1 to 16 units arriving at random nodes over
//!    `--spread` seconds, placed by the balancer (plain `mosrun`), at random
//!    (`mosrun -j1-4`), round-robin (`mosrun -N`, N in turn) and not at all
//!    (`mosrun -h`). Mean slowdown: time from start to end over the time it takes alone
//!    on the fastest node.
//!
//! Each figure is the median of `--runs` runs. Build the workspace in release mode
//! first, then run as root: `cargo build --release && target/release/balance-bench`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use omcluster::harness::TestCluster;
use omcluster::ClusterSpec;
use omd::simbalance::{self, JobSpec, Placement, Workload};

/// Measure the balancer in a 4-node omcluster.
#[derive(Parser)]
struct Args {
    /// Runs of each measurement (the median is shown).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Jobs of the burst.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Work of each burst job, in seconds of a standard CPU (spin's units).
    #[arg(long, default_value_t = 6.0)]
    work: f64,
    /// Jobs of the mixed workload.
    #[arg(long, default_value_t = 20)]
    mixed: usize,
    /// Seconds over which the mixed jobs arrive.
    #[arg(long, default_value_t = 30.0)]
    spread: f64,
    /// Seed of the mixed workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const NODES: u16 = 4;
const CPUS: [f64; 4] = [1.0, 0.5, 0.5, 0.25];

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("balance-bench: {e:#}");
        std::process::exit(1);
    }
}

mod common;

struct Bench {
    c: TestCluster,
    spin: String,
    tools: common::Tools,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

impl Bench {
    fn tool(&self, name: &str) -> String {
        self.tools.tool(name)
    }

    /// Runs `script` in `node` and returns its standard output, failing if it fails.
    fn sh(&self, node: u16, script: &str) -> Result<String> {
        let o = self.c.sh(node, script);
        if !o.status.success() {
            bail!(
                "node {node}: {script}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Each node's rate (work units per second) with one job alone at each, all at once.
    fn rates(&self, work: f64) -> Result<Vec<f64>> {
        let times: Vec<Result<f64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..=NODES)
                .map(|n| {
                    s.spawn(move || {
                        let t = Instant::now();
                        self.sh(n, &format!("{} {work} > /dev/null", self.spin))?;
                        Ok(t.elapsed().as_secs_f64())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("a thread failed")))
                .collect()
        });
        times.into_iter().map(|t| t.map(|t| work / t)).collect()
    }

    /// Makespan of `jobs` jobs of `work` started at once at node 1 with `mosrun OPTS`.
    fn burst(&self, opts: &str, jobs: usize, work: f64) -> Result<f64> {
        let mosrun = self.tool("mosrun");
        let t = Instant::now();
        self.sh(
            1,
            &format!(
                "for j in $(seq {jobs}); do {mosrun} {opts} {} {work} > /dev/null & done; wait",
                self.spin
            ),
        )?;
        let took = t.elapsed().as_secs_f64();
        self.settle()?;
        Ok(took)
    }

    /// Waits until no guest is left anywhere (the next measurement starts clean).
    fn settle(&self) -> Result<()> {
        let t = Instant::now();
        loop {
            let mut busy = false;
            for n in 1..=NODES {
                busy |= !self.sh(n, "ls /run/hpc/remote")?.trim().is_empty();
            }
            if !busy {
                // Let the loads the jobs left decay, as at the start.
                std::thread::sleep(Duration::from_secs(8));
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("guests still running a minute after the jobs ended");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Mean slowdown of the mixed `jobs`, placed by `opts(job index, its node)`.
    fn mixed(
        &self,
        jobs: &[JobSpec],
        opts: impl Fn(usize, u16) -> String + Sync,
        fastest: f64,
    ) -> Result<f64> {
        let mosrun = self.tool("mosrun");
        let t0 = Instant::now();
        let lines: Vec<Result<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..=NODES)
                .map(|n| {
                    let script: String = jobs
                        .iter()
                        .enumerate()
                        .filter(|(_, j)| j.node + 1 == usize::from(n))
                        .map(|(k, j)| {
                            format!(
                                "(sleep {:.3}; {mosrun} {} {} {:.3} > /dev/null; echo \"{k} $(date +%s.%N)\") & ",
                                j.arrival,
                                opts(k, n),
                                self.spin,
                                j.work
                            )
                        })
                        .collect();
                    let script = format!("{script} wait");
                    s.spawn(move || self.sh(n, &script))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("a thread failed")))
                .collect()
        });
        // The shells started together with t0 (give or take the exec).
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64()
            - t0.elapsed().as_secs_f64();
        let mut sum = 0.0;
        let mut count = 0;
        for out in lines {
            for l in out?.lines() {
                let mut it = l.split_whitespace();
                let (Some(k), Some(end)) = (it.next(), it.next()) else {
                    continue;
                };
                let (k, end): (usize, f64) = (k.parse()?, end.parse()?);
                let j = &jobs[k];
                sum += (end - start - j.arrival) / (j.work / fastest);
                count += 1;
            }
        }
        if count != jobs.len() {
            bail!("{count} of {} mixed jobs reported their end", jobs.len());
        }
        self.settle()?;
        Ok(sum / count as f64)
    }
}

/// `mosrun`'s options for job `k` arriving at node `n`.
type Opts = dyn Fn(usize, u16) -> String + Sync;

/// The mixed workload: `n` jobs of 1, 2, 4, 8 or 16 units at random nodes over `spread`.
fn mixed_jobs(n: usize, spread: f64, seed: u64) -> Vec<JobSpec> {
    // A small xorshift: the same seed gives the same jobs.
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut jobs: Vec<JobSpec> = (0..n)
        .map(|_| JobSpec {
            arrival: next() * spread,
            node: (next() * f64::from(NODES)) as usize % usize::from(NODES),
            work: [1.0, 2.0, 4.0, 8.0, 16.0][(next() * 5.0) as usize % 5],
            mem: 16 << 20,
        })
        .collect();
    jobs.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
    jobs
}

fn run(args: Args) -> Result<()> {
    let (tools, omcluster) = common::Tools::find()?;
    let spin = common::compile("balance-bench", "../tests/testprogs/balance/spin.c", "spin")?;
    eprintln!(
        "balance-bench: bringing up 4 nodes of 1, 0.5, 0.5 and 0.25 CPU (tools from {})",
        tools.0.display()
    );
    let spec = ClusterSpec::new("balbench", usize::from(NODES), Some("1,0.5,0.5,0.25"), None)?;
    let c = common::cluster(spec, &tools, &omcluster)?;
    let b = Bench {
        c,
        spin: spin.display().to_string(),
        tools,
    };

    // 1. The burst.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); usize::from(NODES)];
    let kinds = [
        ("balancer (plain mosrun)", ""),
        ("all at node 1 (mosrun -h)", "-h"),
        ("random (mosrun -j2-4)", "-j2-4"),
    ];
    let mut spans: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for r in 0..args.runs {
        eprintln!("balance-bench: run {} of {}: capacity", r + 1, args.runs);
        for (i, rate) in b.rates(args.work)?.into_iter().enumerate() {
            rates[i].push(rate);
        }
        for (k, (name, opts)) in kinds.iter().enumerate() {
            eprintln!(
                "balance-bench: run {} of {}: burst, {name}",
                r + 1,
                args.runs
            );
            spans[k].push(b.burst(opts, args.jobs, args.work)?);
        }
    }
    let rate: Vec<f64> = rates.into_iter().map(median).collect();
    let capacity: f64 = rate.iter().sum();
    let ideal = args.jobs as f64 * args.work / capacity;
    let fastest = rate.iter().copied().fold(0.0, f64::max);

    let sim_params = |workload, jobs| simbalance::Params {
        nodes: usize::from(NODES),
        seconds: args.spread.ceil() as u64,
        window: 16,
        speeds: rate.clone(),
        workload,
        jobs,
        work: args.work,
        mem: 1 << 30,
        bandwidth: omd::migrate::DEFAULT_BANDWIDTH,
        seed: args.seed,
    };
    let burst_params = sim_params(Workload::Burst, args.jobs);
    let burst_jobs = simbalance::workload(&burst_params);
    let sim = |how| simbalance::run(&burst_params, &burst_jobs, how).makespan_s;

    println!(
        "\nBurst: {} jobs of {} units at node 1; nodes of {:?} CPU; median of {} runs",
        args.jobs, args.work, CPUS, args.runs
    );
    println!(
        "Capacity measured in the same runs (one job alone at each node, all at once): {} units/s = {capacity:.2} units/s",
        rate.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    println!("PLACEMENT                   MAKESPAN  x IDEAL  SIMULATOR");
    let sims = [
        sim(Placement::Balancer),
        sim(Placement::None),
        sim(Placement::Random),
    ];
    for (k, (name, _)) in kinds.iter().enumerate() {
        let m = median(spans[k].clone());
        println!(
            "{name:<26}  {:<8}  {:<7.2}  {:.1} s",
            format!("{m:.1} s"),
            m / ideal,
            sims[k]
        );
    }
    println!(
        "{:<26}  {:<8}  {:<7.2}  {:.1} s",
        "ideal (work / capacity)",
        format!("{ideal:.1} s"),
        1.0,
        ideal
    );

    // 2. Mixed jobs arriving over time.
    let jobs = mixed_jobs(args.mixed, args.spread, args.seed);
    let places: [(&str, Placement, Box<Opts>); 4] = [
        (
            "balancer (plain mosrun)",
            Placement::Balancer,
            Box::new(|_, _| String::new()),
        ),
        (
            "random (mosrun -j1-4)",
            Placement::Random,
            Box::new(|_, _| "-j1-4".into()),
        ),
        (
            "round-robin (mosrun -N)",
            Placement::RoundRobin,
            Box::new(|k, at| {
                let n = (k % usize::from(NODES)) as u16 + 1;
                if n == at {
                    "-h".into()
                } else {
                    format!("-{n}")
                }
            }),
        ),
        (
            "none (mosrun -h)",
            Placement::None,
            Box::new(|_, _| "-h".into()),
        ),
    ];
    let mut slow: Vec<Vec<f64>> = vec![Vec::new(); places.len()];
    for r in 0..args.runs {
        for (k, (name, _, opts)) in places.iter().enumerate() {
            eprintln!(
                "balance-bench: run {} of {}: mixed, {name}",
                r + 1,
                args.runs
            );
            slow[k].push(b.mixed(&jobs, opts, fastest)?);
        }
    }
    let mixed_params = sim_params(Workload::Mixed, 0);
    println!(
        "\nMixed: {} jobs of 1-16 units arriving at random nodes over {} s; median of {} runs",
        jobs.len(),
        args.spread,
        args.runs
    );
    println!("PLACEMENT                   MEAN SLOWDOWN  SIMULATOR");
    for (k, (name, how, _)) in places.iter().enumerate() {
        let s = simbalance::run(&mixed_params, &jobs, *how);
        println!(
            "{name:<26}  {:<13.2}  {:.2}",
            median(slow[k].clone()),
            s.mean_slowdown
        );
    }
    Ok(())
}
