//! showmap: print the cluster map, expanded to one line per node.

use anyhow::Result;
use clap::CommandFactory;
use clap::Parser;
use om_tools::MapText;
use std::process::ExitCode;

/// Print the openMosix cluster map as a table: one line per node with its number, its
/// address and its alias addresses.
///
/// Without `-f`, the map this node's omd uses: the one it loaded, or the one it
/// discovered (`omd --discover`); when omd is not running, /etc/openmosix.map.
///
/// Ranges (`FIRST-ID ADDRESS COUNT`) are expanded, host names are resolved, and the map is
/// checked the way `setpe -c` checks it: if the map has errors they are all printed and
/// showmap exits with status 1.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  showmap                       the map in use (discovered ones too)\n  showmap -f cluster.map --json"
)]
struct Args {
    /// The map file to show (`-` reads standard input) instead of the map omd uses.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// Print JSON: {"nodes": [{"node": N, "address": "A", "aliases": [..]}, ..]}.
    #[arg(long)]
    json: bool,
}

/// The map this node's omd uses, or /etc/openmosix.map when omd is not running.
fn in_use() -> Result<MapText> {
    match om_proto::call(om_proto::Request::GetMap) {
        Ok(om_proto::Response::Map { text }) => Ok(MapText {
            origin: "<the map omd uses>".into(),
            text,
        }),
        Ok(other) => Err(om_proto::unexpected(&other).into()),
        Err(om_proto::ClientError::NotRunning { .. }) => MapText::read(om_map::DEFAULT_MAP_PATH),
        Err(e) => Err(e.into()),
    }
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    om_tools::finish("showmap", run(Args::parse()))
}

fn run(args: Args) -> Result<ExitCode> {
    let text = match &args.file {
        Some(f) => MapText::read(f)?,
        None => in_use()?,
    };
    let map = match text.check() {
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
