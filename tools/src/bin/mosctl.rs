//! mosctl: look at and set this node's part in the cluster, as openMosix's mosctl(1).

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser, Subcommand};
use om_proto::{Field, NodeView, Request, Response, Setting, Status};
use om_tools::{ask, finish, mib, print_json};
use std::process::ExitCode;

/// openMosix system administration: node status, load, speed and memory, and the node's
/// settings.
///
/// The get* commands print one number for this node, or for node NODE as this node knows
/// it (its information comes by gossip and may be a few seconds old). Settings need root;
/// stay, lstay and block take effect on migration decisions, quiet stops this node from
/// sending its load to others.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  mosctl status             every node as this node sees it\n  mosctl getload 3          the load of node 3\n  mosctl isup 2 && echo up  exit status 0 if node 2 is up\n  mosctl block              accept no guest processes\n  mosctl setspeed 8000      override this node's speed (0 = calibrated)\n  mosctl group 7 4711 4712  processes 4711 and 4712 move together\n  mosctl group 7            the processes of group 7 and where they run"
)]
struct Args {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// This node's settings and counters and every node of the map (with NODE: that
    /// node's status word only: up or down, and its settings).
    Status { node: Option<u16> },
    /// Print up or down; exit status 0 if up, 1 if down.
    Isup { node: Option<u16> },
    /// Load, in hundredths of a standard CPU (100 = one standard CPU kept busy).
    Getload { node: Option<u16> },
    /// Speed of one CPU (10000 = a standard CPU).
    Getspeed { node: Option<u16> },
    /// Memory available to new processes, in bytes.
    Getmem { node: Option<u16> },
    /// Raw free memory, in bytes.
    Getfree { node: Option<u16> },
    /// CPU utilisation, in percent of the node's capacity.
    Getutil { node: Option<u16> },
    /// Which node a number, address or host name is (default: this node).
    Whois { query: Option<String> },
    /// Override this node's speed; 0 returns to the calibrated speed.
    Setspeed { speed: u32 },
    /// No automatic migration of processes away from this node.
    Stay,
    /// Undo stay.
    Nostay,
    /// No automatic migration of this node's own processes away.
    Lstay,
    /// Undo lstay.
    Nolstay,
    /// Accept no guest processes from other nodes.
    Block,
    /// Undo block.
    Noblock,
    /// Stop sending this node's load to other nodes.
    Quiet,
    /// Undo quiet.
    Noquiet,
    /// Where process PID of this node runs (0 = here, its home).
    Where { pid: i32 },
    /// Send every guest (process of another node running here) home, and block the node
    /// so that none comes back (`mosctl noblock` accepts guests again), as MOSIX does.
    Expel,
    /// Bring every process of this node that runs elsewhere home.
    Bring,
    /// Put processes of this node in migration group GROUP (0: out of any group), as
    /// openMosix's /proc/PID/miggroup: the processes of a group move together. Moving
    /// one (`migrate`, `goto`, the balancer) moves the others to the same node, one
    /// after the other; the balancer weighs a group as one job (the sum of its CPU
    /// demand and memory), and other nodes' balancers leave its processes where their
    /// home put them. Without PIDs, lists the group's processes and where they run.
    Group { group: u32, pids: Vec<i32> },
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    finish("mosctl", run(Args::parse()))
}

fn node_view(node: Option<u16>) -> Result<NodeView> {
    match ask(Request::Node { node })? {
        Response::Node(v) => Ok(v),
        r => Err(om_proto::unexpected(&r).into()),
    }
}

fn get(node: Option<u16>, field: Field, json: bool) -> Result<ExitCode> {
    let v = node_view(node)?;
    if json {
        print_json(
            &serde_json::json!({ "node": v.node, field.name(): field.format(&v), "up": v.up }),
        )?;
    } else {
        println!("{}", field.format(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn set(setting: Setting, on: bool) -> Result<ExitCode> {
    changed(ask(Request::Set { setting, on })?)
}

fn changed(r: Response) -> Result<ExitCode> {
    match r {
        Response::Done { message } => {
            println!("mosctl: {message}");
            Ok(ExitCode::SUCCESS)
        }
        r => Err(om_proto::unexpected(&r).into()),
    }
}

fn run(args: Args) -> Result<ExitCode> {
    let json = args.json;
    match args.cmd {
        Cmd::Status { node: Some(n) } => get(Some(n), Field::Status, json),
        Cmd::Status { node: None } => {
            let Response::Status(s) = ask(Request::Status)? else {
                bail!("omd answered status with something else");
            };
            if json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Isup { node } => {
            let v = node_view(node)?;
            if json {
                print_json(&serde_json::json!({ "node": v.node, "up": v.up }))?;
            } else {
                println!("{}", if v.up { "up" } else { "down" });
            }
            Ok(if v.up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Getload { node } => get(node, Field::Load, json),
        Cmd::Getspeed { node } => get(node, Field::Speed, json),
        Cmd::Getmem { node } => get(node, Field::Mem, json),
        Cmd::Getfree { node } => get(node, Field::Free, json),
        Cmd::Getutil { node } => get(node, Field::Util, json),
        Cmd::Whois { query } => {
            let query = match query {
                Some(q) => q,
                None => node_view(None)?.node.to_string(),
            };
            let Response::Whois(w) = ask(Request::Whois { query })? else {
                bail!("omd answered whois with something else");
            };
            if json {
                print_json(&w)?;
            } else {
                let mut line = format!("node {}: {}", w.node, w.addr);
                if let Some(h) = &w.hostname {
                    line += &format!(" ({h})");
                }
                if !w.aliases.is_empty() {
                    line += &format!(", aliases {}", w.aliases.join(" "));
                }
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Setspeed { speed } => changed(ask(Request::SetSpeed { speed })?),
        Cmd::Stay => set(Setting::Stay, true),
        Cmd::Nostay => set(Setting::Stay, false),
        Cmd::Lstay => set(Setting::Lstay, true),
        Cmd::Nolstay => set(Setting::Lstay, false),
        Cmd::Block => set(Setting::Block, true),
        Cmd::Noblock => set(Setting::Block, false),
        Cmd::Quiet => set(Setting::Quiet, true),
        Cmd::Noquiet => set(Setting::Quiet, false),
        Cmd::Where { pid } => {
            let Response::Proc(p) = ask(Request::Proc { pid })? else {
                bail!("omd answered with something else than a process's state");
            };
            if args.json {
                print_json(&p)?;
            } else {
                println!("{}", p.node);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Group { group, pids } if pids.is_empty() => {
            let Response::Controlled(c) = ask(Request::Controlled)? else {
                bail!("omd answered with something else than its processes");
            };
            let members: Vec<_> = c.processes.iter().filter(|p| p.group == group).collect();
            if args.json {
                print_json(&members)?;
            } else {
                for p in members {
                    println!("{} {}", p.pid, p.node);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Group { group, pids } => {
            for pid in pids {
                changed(ask(Request::Group { pid, group })?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Expel => changed(ask(Request::Expel)?),
        Cmd::Bring => changed(ask(Request::Bring)?),
    }
}

fn print_status(s: &Status) {
    let settings: Vec<&str> = s.settings.iter().map(|x| x.name()).collect();
    println!(
        "This is node {}{}. Settings: {}. Speed {}{}; local load {}.",
        s.node,
        if s.participating {
            ""
        } else {
            " (not participating: setpe -off)"
        },
        if settings.is_empty() {
            "none".to_string()
        } else {
            settings.join(", ")
        },
        s.nodes
            .iter()
            .find(|n| n.me)
            .and_then(|n| n.record)
            .map_or(0, |r| r.speed),
        if s.speed_override {
            " (set by setspeed)"
        } else {
            " (calibrated)"
        },
        s.local_load
    );
    let c = &s.counters;
    println!(
        "Gossip: one message every {} ms, window {}, down after {} ms. Sent {} ({} failed), \
         received {}, accepted {}, dropped {} (bad tag {}, malformed {}, replayed {}, \
         unknown node {}).",
        s.gossip_interval_ms,
        s.window,
        s.down_after_ms,
        c.sent,
        c.send_errors,
        c.received,
        c.accepted,
        c.dropped(),
        c.bad_tag,
        c.malformed,
        c.replayed,
        c.unknown_node
    );
    if c.discovered + c.misplaced > 0 {
        println!(
            "Discovery: {} node(s) found by their announcements; {} announcement(s) refused \
             (sent from an address they do not name, or for a number or address another \
             node holds).",
            c.discovered, c.misplaced
        );
    }
    if let Some(l) = &s.links {
        println!(
            "Migration links: {} accepted, {} refused (not from a node of the map {}, too many \
             handshakes at once {}, failed handshake {}, node at the wrong address {}, stray \
             page links {}).",
            l.accepted,
            l.refused(),
            l.not_in_map,
            l.busy,
            l.bad_handshake,
            l.wrong_node,
            l.stray_pages
        );
    }
    if let Some(b) = &s.balancer {
        println!(
            "Balancer: {} every {} ms, {} process(es) to watch here. Automatic moves: {} out \
             ({} for memory, {} failed), {} in; {} arriving now.",
            b.policy,
            b.interval_ms,
            b.candidates,
            b.moved_out,
            b.ushered,
            b.failed,
            b.moved_in,
            b.arriving
        );
        if let Some(last) = &b.last {
            println!("Last automatic move: {last}.");
        }
    }
    println!();
    println!(
        "NODE   ADDRESS          STATUS       LOAD   SPEED  CPUS  UTIL   MEM      TMEM     AGE"
    );
    for n in &s.nodes {
        let known = n.record.is_some();
        println!(
            "{:<5}{} {:<16} {:<12} {:<6} {:<6} {:<5} {:<6} {:<8} {:<8} {}",
            n.node,
            if n.me { "*" } else { " " },
            n.addr,
            Field::Status.format(n),
            if known {
                Field::Load.format(n)
            } else {
                "-".into()
            },
            if known {
                Field::Speed.format(n)
            } else {
                "-".into()
            },
            if known {
                Field::Cpus.format(n)
            } else {
                "-".into()
            },
            if known {
                format!("{}%", Field::Util.format(n))
            } else {
                "-".into()
            },
            n.record.map_or("-".into(), |r| mib(r.mem)),
            n.record.map_or("-".into(), |r| mib(r.tmem)),
            n.age_ms
                .map_or("never".into(), |a| format!("{:.1}s", a as f64 / 1000.0)),
        );
    }
}
