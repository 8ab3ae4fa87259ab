//! showmap: print the cluster map, expanded to one line per node.

use anyhow::Result;
use clap::CommandFactory;
use clap::Parser;
use om_tools::MapText;
use std::process::ExitCode;

/// Print the openMosix cluster map as a table: one line per node with its number, its
/// address and its alias addresses.
///
/// Ranges (`FIRST-ID ADDRESS COUNT`) are expanded, host names are resolved, and the map is
/// checked the way `setpe -c` checks it: if the map has errors they are all printed and
/// showmap exits with status 1.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  showmap\n  showmap -f cluster.map --json"
)]
struct Args {
    /// The map to show (`-` reads standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = om_map::DEFAULT_MAP_PATH)]
    file: String,
    /// Print JSON: {"nodes": [{"node": N, "address": "A", "aliases": [..]}, ..]}.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    om_tools::finish("showmap", run(Args::parse()))
}

fn run(args: Args) -> Result<ExitCode> {
    let map = match MapText::read(&args.file)?.check() {
        Ok(map) => map,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "showmap: {} error(s) in the map; nothing shown",
                errors.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 3]> = map
        .nodes()
        .map(|n| {
            let aliases = if n.aliases.is_empty() {
                "-".to_string()
            } else {
                n.aliases
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            [n.id.to_string(), n.addr.to_string(), aliases]
        })
        .collect();
    let width = |i: usize, title: &str| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0, "NODE"), width(1, "ADDRESS"));
    println!("{:<w0$}  {:<w1$}  ALIASES", "NODE", "ADDRESS");
    for [id, addr, aliases] in rows {
        println!("{id:<w0$}  {addr:<w1$}  {aliases}");
    }
    Ok(ExitCode::SUCCESS)
}
