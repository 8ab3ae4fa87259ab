//! omcluster: run a cluster of openMosix nodes on this machine.

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use nix::unistd::Pid;
use om_sys::foreground::{end_like, Foreground};
use omcluster::spec::format_mem;
use omcluster::{cgroup::Cgroups, node, ClusterSpec, ClusterState, Error, NodeState};
use std::process::{Command, ExitCode};

/// A cluster of openMosix nodes on one Linux machine, for trying the system and testing it.
///
/// Each node is a set of namespaces: its own network (a veth on a bridge that lives in a
/// namespace of its own, address 198.18.0.N/24, nothing else reachable), its own /tmp,
/// /run and /etc (with the node's /etc/openmosix.map), its own host name (nodeN), its own
/// processes (a pid namespace), and a cgroup with a CPU quota and a memory limit. The host's
/// network is never touched. Needs root.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  omcluster up --nodes 4 --cpu 1,0.5,0.5,0.25 --mem 1G\n  omcluster exec 2 -- hostname\n  omcluster exec 1 -- ping -c1 198.18.0.3\n  omcluster status\n  omcluster down"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the nodes of a cluster (removing leftovers of a crashed earlier one).
    Up {
        /// Number of nodes (1 to 254).
        #[arg(long, short = 'n')]
        nodes: usize,
        /// CPU share of each node, in CPUs: one value for all nodes or one per node
        /// (e.g. 1,0.5,0.25). Default 1.
        #[arg(long, value_name = "LIST")]
        cpu: Option<String>,
        /// Memory limit of each node (K, M, G suffixes): one value for all nodes or one per
        /// node (e.g. 2G,512M). Default 1G.
        #[arg(long, value_name = "LIST")]
        mem: Option<String>,
        #[command(flatten)]
        name: NameArg,
        /// Print the cluster as JSON.
        #[arg(long)]
        json: bool,
        /// Do not start omd in the nodes (by default every node runs one, with a new
        /// cluster key; omd is looked for in $OMD_BIN, next to omcluster, then on the PATH).
        #[arg(long)]
        no_omd: bool,
        /// An extra argument for every omd (repeat for more), e.g. --omd-arg=--down-after=3.
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        omd_arg: Vec<String>,
        /// Give every node files of its own, as separate machines have: an overlay of
        /// its own on /home, /root, /var/tmp, /opt, /usr/local, /srv and the current
        /// directory. What is there when the cluster comes up every node sees; what a
        /// node writes there only that node sees. (/tmp, /run and /etc are always
        /// private; everything else, /usr included, is the host's and shared.)
        #[arg(long)]
        private_fs: bool,
        /// With --private-fs: keep DIR shared by all nodes, like an NFS home (repeat
        /// for more).
        #[arg(long, value_name = "DIR", requires = "private_fs")]
        share: Vec<std::path::PathBuf>,
        /// Give the nodes no /etc/openmosix.map, for omds that find each other with
        /// --omd-arg=--discover.
        #[arg(long)]
        no_map: bool,
    },
    /// Run a command inside a node (its namespaces and its cgroup). Exits with the
    /// command's status.
    Exec {
        #[command(flatten)]
        name: NameArg,
        /// The node number (1 to N).
        node: u16,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// List the nodes of a cluster: address, CPU share, memory, processes, CPU time used.
    Status {
        #[command(flatten)]
        name: NameArg,
        /// List every cluster on this machine instead.
        #[arg(long, conflicts_with = "json")]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a cluster: its processes, namespaces, veths, bridge, cgroups and files.
    Down {
        #[command(flatten)]
        name: NameArg,
        /// Remove every cluster on this machine.
        #[arg(long)]
        all: bool,
    },
    #[command(name = node::INIT_ARG, hide = true)]
    NodeInit { cluster: String, node: u16 },
    #[command(name = node::PID1_ARG, hide = true)]
    NodePid1 { cluster: String, node: u16 },
}

#[derive(clap::Args)]
struct NameArg {
    /// Name of the cluster.
    #[arg(long, env = "OMCLUSTER_NAME", default_value = "omc")]
    name: String,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Cli::command, "1");
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omcluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Up {
            nodes,
            cpu,
            mem,
            name,
            json,
            no_omd,
            omd_arg,
            private_fs,
            share,
            no_map,
        } => {
            let mut spec = ClusterSpec::new(&name.name, nodes, cpu.as_deref(), mem.as_deref())?;
            spec.map = !no_map;
            if private_fs {
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                let share = share
                    .iter()
                    .map(|d| {
                        std::fs::canonicalize(d).with_context(|| format!("--share {}", d.display()))
                    })
                    .collect::<Result<_>>()?;
                spec.fs = omcluster::spec::FsSpec::private(Some(&cwd), share);
            }
            if !no_omd {
                let bin = omcluster::sibling_bin("omd", "OMD_BIN").context(
                    "omd was not found ($OMD_BIN, next to omcluster, or on the PATH); \
                     build it (cargo build) or give --no-omd",
                )?;
                spec.daemon = Some(omcluster::DaemonSpec { bin, args: omd_arg });
            }
            let bin = std::env::current_exe().context("cannot find the omcluster binary")?;
            let state = omcluster::up(&spec, &bin)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&state)?);
            } else {
                println!(
                    "cluster {}: {} node(s) up on {} ({})",
                    state.name,
                    state.nodes.len(),
                    omcluster::net::SUBNET,
                    Cgroups::detect()?.describe()
                );
                print_nodes(&state.nodes, None);
                println!(
                    "\nRun a command in a node with `omcluster exec --name {0} NODE -- CMD`; \
                     remove the cluster with `omcluster down --name {0}`.",
                    state.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { name, node, cmd } => exec(&name.name, node, &cmd),
        Cmd::Status { name, all, json } => {
            if all {
                for n in omcluster::cluster_names() {
                    println!("{n}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let status = omcluster::status(&name.name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let nodes: Vec<NodeState> = status.iter().map(|s| s.node.clone()).collect();
                print_nodes(&nodes, Some(&status));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { name, all } => {
            let names = if all {
                omcluster::cluster_names()
            } else {
                vec![name.name]
            };
            for n in names {
                let removed = omcluster::down(&n)?;
                if removed.is_empty() {
                    println!("cluster {n}: nothing to remove");
                } else {
                    println!(
                        "cluster {n}: removed {} process(es), {} network namespace(s), {} cgroup(s)",
                        removed.processes, removed.namespaces, removed.cgroups
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::NodeInit { cluster, node } => {
            node::init(&cluster, node)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::NodePid1 { node, .. } => {
            node::pid1(node)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_nodes(nodes: &[NodeState], status: Option<&[omcluster::NodeStatus]>) {
    print!("NODE  HOST    ADDRESS       CPU   MEM     INIT-PID");
    if status.is_some() {
        print!("  STATE    PROCS  CPU-TIME  MEM-USED");
    }
    println!();
    for (i, n) in nodes.iter().enumerate() {
        print!(
            "{:<4}  {:<6}  {:<12}  {:<4}  {:<6}  {:<8}",
            n.node,
            n.hostname,
            n.addr,
            format!("{:.2}", n.spec.cpu),
            format_mem(n.spec.mem),
            n.init_pid
        );
        if let Some(s) = status.and_then(|s| s.get(i)) {
            print!(
                "  {:<7}  {:<5}  {:<8}  {}",
                if s.running { "running" } else { "DOWN" },
                s.processes,
                s.cpu_seconds.map_or("-".into(), |c| format!("{c:.2}s")),
                s.mem_used.map_or("-".into(), format_mem)
            );
        }
        println!();
    }
}

/// `omcluster exec`: enter the node, run the command there, pass on signals, and end
/// the way the command ended (same exit code, or death by the same signal).
fn exec(name: &str, node: u16, cmd: &[String]) -> Result<ExitCode> {
    omcluster::cluster::require_root()?;
    let state = ClusterState::load(name)?.ok_or_else(|| Error::NotUp(name.to_string()))?;
    let n = state.node(node)?;
    node::enter(&Cgroups::detect()?, name, n)?;

    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .spawn()
        .with_context(|| format!("cannot run `{}` in node {node}", cmd[0]))?;
    // Block only after the spawn: a child inherits its parent's signal mask.
    let foreground = Foreground::block().context("cannot block signals")?;
    let status = foreground
        .wait(Pid::from_raw(child.id() as i32))
        .with_context(|| format!("waiting for `{}`", cmd[0]))?;
    Ok(end_like(status))
}
