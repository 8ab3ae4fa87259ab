//! omd: the openMosix node daemon. See `omd --help` and omd(8).

use clap::CommandFactory;
use clap::Parser;
use omd::cli::{Cli, Cmd};
use omd::{simbalance, simulate};
use std::process::ExitCode;

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Cli::command, "8");
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("omd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        None => omd::daemon::run(cli.run),
        Some(Cmd::Keygen { out, force }) => {
            omd::key::generate(&out, force)?;
            println!(
                "omd: new cluster key in {} (mode 0600); copy it to the same place on every node",
                out.display()
            );
            Ok(())
        }
        Some(Cmd::Simulate {
            nodes,
            seconds,
            window,
            loss,
            seed,
            json,
            balance,
            workload,
            jobs,
            work,
            speeds,
        }) => {
            if balance {
                return simulate_balance(
                    nodes, seconds, window, seed, json, workload, jobs, work, speeds,
                );
            }
            if !(0.0..1.0).contains(&loss) {
                anyhow::bail!("--loss {loss}: give a probability from 0 up to (not including) 1");
            }
            if nodes.iter().any(|&n| n < 2 || n > usize::from(u16::MAX)) {
                anyhow::bail!("--nodes: each count must be 2 to 65535 (a map's node numbers)");
            }
            let mut reports = Vec::new();
            for n in nodes {
                if !json {
                    eprintln!("omd simulate: {n} nodes, {seconds} s ...");
                }
                reports.push(simulate::run(&simulate::Params {
                    nodes: n,
                    seconds,
                    window: usize::from(window),
                    loss,
                    interval_ms: 1000,
                    latency_ms: 1,
                    seed,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", simulate::table(&reports));
            }
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn simulate_balance(
    nodes: Vec<usize>,
    seconds: u64,
    window: u16,
    seed: u64,
    json: bool,
    workload: simbalance::Workload,
    jobs: usize,
    work: f64,
    speeds: Vec<f64>,
) -> anyhow::Result<()> {
    if nodes.iter().any(|&n| n < 2 || n > usize::from(u16::MAX)) {
        anyhow::bail!("--nodes: each count must be 2 to 65535 (a map's node numbers)");
    }
    if let Some(bad) = speeds.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        anyhow::bail!("--speeds: {bad} is not a speed above 0");
    }
    if !(work.is_finite() && work > 0.0) {
        anyhow::bail!("--work {work}: give a number of seconds above 0");
    }
    let mut outcomes = Vec::new();
    for n in nodes {
        let p = simbalance::Params {
            nodes: n,
            seconds,
            window: usize::from(window),
            speeds: speeds.clone(),
            workload,
            jobs,
            work,
            mem: 4 << 30,
            bandwidth: omd::migrate::DEFAULT_BANDWIDTH,
            seed,
        };
        let js = simbalance::workload(&p);
        for how in simbalance::Placement::ALL {
            if !json {
                eprintln!(
                    "omd simulate: {n} nodes, {} jobs, {} ...",
                    js.len(),
                    how.name()
                );
            }
            outcomes.push(simbalance::run(&p, &js, how));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print!("{}", simbalance::table(&outcomes));
    }
    Ok(())
}
