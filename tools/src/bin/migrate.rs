//! migrate: move a process to another node, as openMosix's migrate(1).

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser};
use om_proto::{MigrateTo, Request, Response};
use om_tools::{ask, finish, print_json};
use std::process::ExitCode;

/// Move process PID to node NODE, back home, or to the best node.
///
/// Like openMosix's migrate, the request is asynchronous: it returns once omd has taken
/// it. With --wait it returns when the process has arrived and prints where it runs, or
/// why it could not move (the process then runs on where it was, unharmed).
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  migrate 1234 3          move 1234 to node 3\n  migrate 1234 home       bring it back\n  migrate 1234 balance    to the least loaded node\n  migrate --wait 1234 2   wait and report where it runs"
)]
struct Args {
    /// Wait for the outcome and print it.
    #[arg(short, long)]
    wait: bool,
    /// Copy all its memory before it runs at the target (the default is lazy: it runs
    /// there at once and its pages follow on first touch and in the background; it never
    /// runs on with zeros in place of pages that cannot be fetched: touching one kills it
    /// with SIGBUS).
    #[arg(long)]
    eager: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// The process (of this node).
    pid: i32,
    /// A node number, `home` (or 0), or `balance`.
    target: String,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    finish("migrate", run(Args::parse()))
}

fn run(args: Args) -> Result<ExitCode> {
    let to: MigrateTo = args.target.parse()?;
    let reply = ask(Request::Migrate {
        pid: args.pid,
        to,
        wait: args.wait,
        eager: args.eager,
    })?;
    let Response::Done { message } = reply else {
        bail!("omd answered with something unexpected");
    };
    if args.json {
        print_json(&serde_json::json!({ "pid": args.pid, "message": message }))?;
    } else {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}
