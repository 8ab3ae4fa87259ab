//! mtop: top with a NODE column, as openMosix's mtop(1).

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser};
use om_proto::{Processes, Request, Response};
use om_tools::{ask, finish, mib, print_json};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Show this node's busiest processes, refreshed every DELAY seconds, with the node each
/// one runs on (0 = here, at home) and this node's load, speed and memory on top.
///
/// CPU percentages are measured between two samples DELAY apart; for a migrated process
/// they count the CPU time it uses at the node it runs at, reported about once a second.
/// Stop with Ctrl-C, or give -n.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  mtop                    refresh every 2 s until Ctrl-C\n  mtop -b -n 3 -d 1       three plain-text snapshots, 1 s apart\n  mtop --json -d 0.5      one snapshot as JSON"
)]
struct Args {
    /// Seconds between two refreshes (and the sampling time of %CPU).
    #[arg(short = 'd', long, default_value_t = 2.0)]
    delay: f64,
    /// Stop after this many refreshes.
    #[arg(short = 'n', long)]
    iterations: Option<u64>,
    /// Plain text, no screen clearing (for logs and pipes).
    #[arg(short = 'b', long)]
    batch: bool,
    /// Lines of processes to show (default: all in batch mode, 20 otherwise).
    #[arg(short = 'l', long)]
    lines: Option<usize>,
    /// Print one snapshot as JSON and exit.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    pid: i32,
    user: String,
    node: u16,
    state: String,
    cpu_percent: f64,
    mem_percent: f64,
    rss: u64,
    cpu_seconds: f64,
    command: String,
}

#[derive(Serialize)]
struct Snapshot {
    node: u16,
    load: u32,
    speed: u32,
    cpus: u16,
    util: u32,
    mem: u64,
    tmem: u64,
    processes: Vec<Row>,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    finish("mtop", run(Args::parse()))
}

fn sample() -> Result<(Instant, Processes)> {
    match ask(Request::Processes)? {
        Response::Processes(p) => Ok((Instant::now(), p)),
        _ => bail!("omd answered with something else than a process list"),
    }
}

fn snapshot(before: &(Instant, Processes), after: &(Instant, Processes)) -> Snapshot {
    let wall = after.0.duration_since(before.0).as_secs_f64().max(1e-3);
    let old: HashMap<i32, u64> = before
        .1
        .processes
        .iter()
        .map(|p| (p.pid, p.cpu_ticks))
        .collect();
    let r = after.1.record;
    let mut rows: Vec<Row> = after
        .1
        .processes
        .iter()
        .map(|p| {
            let tps = p.ticks_per_second.max(1) as f64;
            let used = p
                .cpu_ticks
                .saturating_sub(*old.get(&p.pid).unwrap_or(&p.cpu_ticks));
            Row {
                pid: p.pid,
                user: p.user.clone(),
                node: p.node,
                state: p.state.clone(),
                cpu_percent: (used as f64 / tps / wall * 1000.0).round() / 10.0,
                mem_percent: if r.tmem > 0 {
                    (p.rss as f64 / r.tmem as f64 * 1000.0).round() / 10.0
                } else {
                    0.0
                },
                rss: p.rss,
                cpu_seconds: p.cpu_ticks as f64 / tps,
                command: if p.cmdline.is_empty() {
                    p.comm.clone()
                } else {
                    p.cmdline.clone()
                },
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cpu_percent
            .total_cmp(&a.cpu_percent)
            .then(a.pid.cmp(&b.pid))
    });
    Snapshot {
        node: after.1.node,
        load: r.load,
        speed: r.speed,
        cpus: r.cpus,
        util: om_proto::util_percent(r.util),
        mem: r.mem,
        tmem: r.tmem,
        processes: rows,
    }
}

fn render(s: &Snapshot, lines: Option<usize>) -> String {
    let mut out = format!(
        "node {}  load {}  speed {}  CPUs {}  util {}%  mem {} free of {}\n\n",
        s.node,
        s.load,
        s.speed,
        s.cpus,
        s.util,
        mib(s.mem),
        mib(s.tmem)
    );
    out += "  PID USER       NODE S  %CPU %MEM     TIME COMMAND\n";
    for p in s.processes.iter().take(lines.unwrap_or(usize::MAX)) {
        let t = p.cpu_seconds as u64;
        let mut cmd = p.command.clone();
        cmd.truncate(60);
        out += &format!(
            "{:>5} {:<10} {:>4} {:<1} {:>5.1} {:>4.1} {:>2}:{:02}:{:02} {}\n",
            p.pid,
            p.user,
            p.node,
            p.state,
            p.cpu_percent,
            p.mem_percent,
            t / 3600,
            t / 60 % 60,
            t % 60,
            cmd
        );
    }
    out
}

fn run(args: Args) -> Result<ExitCode> {
    if !(args.delay.is_finite() && args.delay > 0.0) {
        bail!(
            "-d {}: the delay must be a number of seconds above 0",
            args.delay
        );
    }
    let delay = Duration::from_secs_f64(args.delay);
    let mut before = sample()?;
    let mut done = 0u64;
    loop {
        std::thread::sleep(delay);
        let after = sample()?;
        let snap = snapshot(&before, &after);
        if args.json {
            print_json(&snap)?;
            return Ok(ExitCode::SUCCESS);
        }
        let lines = args.lines.or(if args.batch { None } else { Some(20) });
        let text = render(&snap, lines);
        let mut out = std::io::stdout().lock();
        if args.batch {
            writeln!(out, "{text}")?;
        } else {
            // Home the cursor and clear: one redraw per refresh, no flicker of a blank screen.
            write!(out, "\x1b[H\x1b[2J{text}")?;
        }
        out.flush()?;
        done += 1;
        if args.iterations.is_some_and(|n| done >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        before = after;
    }
}
