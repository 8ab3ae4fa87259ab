//! setpe: check a cluster map, or load it into / read it from the running daemon.

use anyhow::{bail, Result};
use clap::CommandFactory;
use clap::{ArgGroup, Parser};
use om_proto::{Request, Response};
use om_tools::{ask, MapText};
use std::process::ExitCode;

/// Configure which nodes form the openMosix cluster, as openMosix's setpe(1) did.
///
/// The map maps IP addresses to node numbers (1-65535), one range per line:
///
///   FIRST-ID  HOST-OR-IP  COUNT     COUNT consecutive nodes and addresses
///
///   ID        ALT-IP      ALIAS     an extra address of node ID (gateways)
///
/// `#` starts a comment. `setpe -c` checks a map and lists every error in it (with
/// file:line:) without changing anything. `-w`, `-r` and `-off` talk to the omd daemon of
/// this node.
#[derive(Parser)]
#[command(
    version,
    group(ArgGroup::new("mode").required(true).args(["write", "read", "off", "check"])),
    after_help = "Examples:\n  setpe -c -f /etc/openmosix.map   check a map\n  setpe -w -f /etc/openmosix.map   load it into omd\n  setpe -r                         print the map omd uses\n  setpe -off                       leave the cluster"
)]
struct Args {
    /// Check the map and load it into the running daemon (-W is the same).
    #[arg(short = 'w', short_alias = 'W')]
    write: bool,
    /// Only check the map's consistency; change nothing. Exits 1 if it has errors.
    #[arg(short = 'c')]
    check: bool,
    /// Print the map the running daemon uses.
    #[arg(short = 'r')]
    read: bool,
    /// Stop this node's participation in the cluster (written `-off`).
    #[arg(long = "off")]
    off: bool,
    /// The map to read (`-`, the default, is standard input), or with -r the file to write.
    #[arg(short = 'f', value_name = "FILE", default_value = "-")]
    file: String,
    /// This node's number; with -c, the map must contain it.
    #[arg(short = 'p', value_name = "ID")]
    node: Option<u16>,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    // openMosix spelled the last mode `-off`; clap would read that as -o -f f.
    let argv = std::env::args().map(|a| if a == "-off" { "--off".to_string() } else { a });
    om_tools::finish("setpe", run(Args::parse_from(argv)))
}

fn run(args: Args) -> Result<ExitCode> {
    if args.read {
        let Response::Map { text } = ask(Request::GetMap)? else {
            bail!("omd answered -r with something else than a map");
        };
        if args.file == "-" {
            print!("{text}");
        } else {
            std::fs::write(&args.file, &text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.file))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.off {
        if let Response::Done { message } = ask(Request::Off)? {
            println!("setpe: {message}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let source = MapText::read(&args.file)?;
    let map = match source.check() {
        Ok(map) => map,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "setpe: {}: {} error(s); map not accepted",
                source.origin,
                errors.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(id) = args.node {
        if map.node(id).is_none() {
            bail!(
                "{}: node {id} (given with -p) is not in the map",
                source.origin
            );
        }
    }
    if args.write && !args.check {
        // omd checks it again (with its own resolver) and keeps the old map on error.
        let request = Request::LoadMap {
            text: source.text.clone(),
            origin: source.origin.clone(),
        };
        if let Response::Done { message } = ask(request)? {
            println!("setpe: {message}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let first = map.nodes().next().map(|n| n.id).unwrap_or_default();
    let last = map.nodes().last().map(|n| n.id).unwrap_or_default();
    let aliases: usize = map.nodes().map(|n| n.aliases.len()).sum();
    println!(
        "{}: OK: {} node(s), numbers {first} to {last}, {aliases} alias address(es)",
        source.origin,
        map.len()
    );
    Ok(ExitCode::SUCCESS)
}
