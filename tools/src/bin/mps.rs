//! mps: ps with a NODE column, as openMosix's mps(1).

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser};
use om_proto::{Process, Request, Response};
use om_tools::{ask, finish, print_json};
use std::process::ExitCode;

/// List this node's processes with the node each one runs on (0 = here, at home).
///
/// The list comes from omd, which also knows where migrated processes run. TIME is the
/// CPU time a process has used at home and, if it migrated, at the other nodes (the node
/// it runs at reports it about once a second); `--json` gives the part used away as
/// `away_ticks`.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  mps                all processes\n  mps -u alice       alice's processes\n  mps 1234 1240      these processes\n  mps --json         everything, for scripts"
)]
struct Args {
    /// Only the processes of this user (name or uid).
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these process ids.
    pids: Vec<i32>,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    finish("mps", run(Args::parse()))
}

fn run(args: Args) -> Result<ExitCode> {
    let Response::Processes(list) = ask(Request::Processes)? else {
        bail!("omd answered with something else than a process list");
    };
    let chosen: Vec<&Process> = list
        .processes
        .iter()
        .filter(|p| args.pids.is_empty() || args.pids.contains(&p.pid))
        .filter(|p| {
            args.user
                .as_ref()
                .is_none_or(|u| *u == p.user || *u == p.uid.to_string())
        })
        .collect();
    if args.json {
        print_json(&serde_json::json!({ "node": list.node, "processes": chosen }))?;
    } else {
        println!("  PID TTY       NODE STAT     TIME COMMAND");
        for p in &chosen {
            let secs = p.cpu_ticks / p.ticks_per_second.max(1);
            println!(
                "{:>5} {:<8} {:>5} {:<4} {:>2}:{:02}:{:02} {}",
                p.pid,
                p.tty,
                p.node,
                p.state,
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                if p.cmdline.is_empty() {
                    format!("[{}]", p.comm)
                } else {
                    p.cmdline.clone()
                }
            );
        }
    }
    let missing: Vec<String> = args
        .pids
        .iter()
        .filter(|pid| !chosen.iter().any(|p| p.pid == **pid))
        .map(|p| p.to_string())
        .collect();
    if !missing.is_empty() {
        eprintln!("mps: no such process: {}", missing.join(" "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
