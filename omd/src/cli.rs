//! omd's command line (also used to generate its man page and completions).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The openMosix node daemon.
///
/// One omd runs on every node. It reads the cluster map, finds which node it is from
/// its addresses, and measures its load (run queue normalised by speed, smoothed as
/// MOSIX does), speed, memory and CPU use every second. Once per interval it sends ONE
/// authenticated UDP message to ONE randomly chosen node: its own record and the
/// freshest records it knows. A node not heard of for --down-after seconds is shown as
/// down, and up again as soon as it is heard.
///
/// Once per interval it also balances: it measures the processes under migration
/// control that run here (started by mosrun, and their children) and the guests of other
/// nodes, and may move one of them where it runs clearly better (MOSIX's opportunity
/// cost over CPU and memory, with a stability margin, a migration cost weighed against
/// the process's past run time, flood control, memory ushering before the OOM killer,
/// and I/O-bound processes kept or brought home). Every automatic move is logged with
/// its reason; `mosctl status` counts them; /run/hpc/PID/cantmove says why a process
/// stays; `mosctl stay`, `lstay`, `block`, `expel` and a process's `lock` hold it.
///
/// Processes move over TCP on the omd port, encrypted and authenticated with keys that
/// each link derives afresh from the cluster key (a Noise handshake). Before the
/// handshake the port admits only addresses of the map, 8 handshakes at a time from one
/// address and 64 in all, each within 10 s; `mosctl status` counts the links it refused.
///
/// The tools (mosctl, setpe, mps, mtop) talk to it over a Unix socket; the same
/// information is served as files under /run/hpc (nodes/<N>/load, admin/block, ...).
///
/// Without --foreground, omd starts in the background and returns once it is ready
/// (or prints why it could not start).
#[derive(Parser, Debug)]
#[command(
    name = "omd",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  omd keygen                      make /etc/omd/cluster.key (copy it to every node)\n  omd --foreground                run in the foreground, logging to standard error\n  omd --node 3 --down-after 5     run as node 3; nodes silent for 5 s are down\n  omd simulate --nodes 10000 --seconds 60\n\nFiles:\n  /etc/openmosix.map   the cluster map (see setpe(1))\n  /etc/omd/cluster.key the cluster key, readable by root only\n  /run/omd/control.sock  the tools' socket\n  /run/hpc             the /proc-style tree (FUSE)\n  /dev/hpc, /proc/hpc  the same tree, when the omhpc kernel module is loaded"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Make a new cluster key (32 random bytes, mode 0600). Every node needs the same one.
    Keygen {
        /// Where to write it.
        #[arg(long, short = 'o', default_value = crate::key::DEFAULT_KEY_PATH)]
        out: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Run the gossip code for many nodes on a simulated clock and network and print how
    /// fresh the information at each node is; with --balance, run the balancer too over a
    /// workload of CPU-bound jobs and compare it with round-robin, random and no
    /// placement (makespan, mean slowdown, migrations per job).
    Simulate {
        /// Number of nodes; a comma-separated list runs one simulation each
        /// (e.g. 16,256,2048,10000).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<usize>,
        /// Simulated seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Records sent besides the sender's own (1 to 31).
        #[arg(long, default_value_t = DEFAULT_WINDOW, value_parser = clap::value_parser!(u16).range(1..=31))]
        window: u16,
        /// Probability that a message is lost (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Seed of the random choices (the same seed gives the same run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Simulate jobs and the balancer (the same decision code omd runs).
        #[arg(long)]
        balance: bool,
        /// The jobs, with --balance.
        #[arg(long, value_enum, default_value_t = crate::simbalance::Workload::Mixed)]
        workload: crate::simbalance::Workload,
        /// Jobs of the burst workload.
        #[arg(long, default_value_t = 16)]
        jobs: usize,
        /// Work of each burst job, in seconds of a standard CPU.
        #[arg(long, default_value_t = 10.0)]
        work: f64,
        /// CPU speeds of the nodes relative to a standard CPU, repeated over the nodes.
        #[arg(long, value_delimiter = ',', default_value = "1,0.5,0.5,0.25")]
        speeds: Vec<f64>,
    },
}

/// Default number of records a message carries besides the sender's own.
pub const DEFAULT_WINDOW: u16 = 16;
/// Default port of the gossip (UDP) and the migration link (TCP): openMosix's 723, a
/// privileged port, so that no local user can take it while omd is stopped.
pub const DEFAULT_PORT: u16 = 723;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Stay in the foreground and log to standard error (for systemd and debugging).
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// The cluster map.
    #[arg(long, default_value = om_map::DEFAULT_MAP_PATH, value_name = "PATH")]
    pub map: PathBuf,
    /// The cluster key (see `omd keygen`).
    #[arg(long, default_value = crate::key::DEFAULT_KEY_PATH, value_name = "PATH")]
    pub key: PathBuf,
    /// This node's number, if it cannot be found from this machine's addresses.
    #[arg(long, value_name = "N")]
    pub node: Option<u16>,
    /// Port of the gossip (UDP) and the migration link (TCP), the same on every node. Keep
    /// it below 1024: a local user could take a higher one while omd is stopped.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Seconds between two gossip messages.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
    /// A node not heard of for this many seconds is shown as down.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub down_after: f64,
    /// Records each message carries besides the sender's own (1 to 31).
    #[arg(long, default_value_t = DEFAULT_WINDOW, value_parser = clap::value_parser!(u16).range(1..=31))]
    pub window: u16,
    /// Use this speed instead of calibrating (as `mosctl setspeed` does later).
    #[arg(long)]
    pub speed: Option<u32>,
    /// The tools' control socket.
    #[arg(long, env = "OM_CONTROL_SOCKET", default_value = om_proto::DEFAULT_CONTROL_SOCKET, value_name = "PATH")]
    pub control_socket: PathBuf,
    /// Where to mount the /proc-style tree over FUSE, when the omhpc kernel module's
    /// device is absent.
    #[arg(long, default_value = crate::hpcfs::DEFAULT_ROOT, value_name = "DIR")]
    pub hpc_root: PathBuf,
    /// The omhpc kernel module's device: when it exists, omd serves the tree at
    /// /proc/hpc through it and does not mount FUSE.
    #[arg(long, default_value = crate::hpcdev::DEFAULT_DEVICE, value_name = "PATH")]
    pub hpc_device: PathBuf,
    /// Serve no /proc-style tree at all.
    #[arg(long)]
    pub no_hpc: bool,
    /// User and group ids guests (processes of other nodes running here) run as, FIRST-LAST:
    /// each guest takes one no other guest and no process of this node holds, so nothing
    /// here can signal or trace it (one id: every guest shares it). Guests touch nothing
    /// here; every file they open is opened at their home.
    #[arg(long, default_value_t = om_migrate::GuestIds::DEFAULT, value_name = "FIRST-LAST")]
    pub guest_ids: om_migrate::GuestIds,
    /// Find the other nodes without a map, as openMosix's omdiscd did: announce this
    /// node to the multicast group 239.255.72.3 on the gossip port every two intervals,
    /// authenticated with the cluster key, and add every node announced there to the map
    /// in use (`showmap` shows it). ADDRESS is this node's address on the cluster
    /// network (IPv4); without it, the machine's only IPv4 address that is neither
    /// loopback nor link-local. The node number is `--node N`, or else the address's low
    /// 16 bits (198.18.0.3 is node 3). The map file is not read.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1)]
    pub discover: Option<Option<std::net::Ipv4Addr>>,
    /// Serve Prometheus metrics at http://ADDR/metrics: a port (bound to 127.0.0.1) or
    /// an address with a port (0.0.0.0:9723 for every interface). Off unless given.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve omview, the web view of the cluster, at http://ADDR/: a port (bound to
    /// 127.0.0.1) or an address with a port. Moving a process from the page needs the
    /// token omd writes to --view-token at start (root only). Off unless given.
    #[arg(long, value_name = "ADDR", value_parser = crate::http::parse_addr)]
    pub view: Option<std::net::SocketAddr>,
    /// Where `--view` writes its token (mode 0600), new at every start.
    #[arg(long, default_value = "/run/omd/view.token", value_name = "FILE")]
    pub view_token: PathBuf,
    /// Balance every process of these users too (user names or uids, comma-separated),
    /// not only those under migration control, as openMosix's kernel balanced every
    /// process. Processes of root are never taken in this way.
    #[arg(long, value_delimiter = ',', value_name = "USERS")]
    pub balance_users: Vec<String>,
    /// Log file when running in the background.
    #[arg(long, default_value = "/var/log/omd.log", value_name = "FILE")]
    pub log: PathBuf,
    /// Where to write the daemon's pid.
    #[arg(long, default_value = "/run/omd/omd.pid", value_name = "FILE")]
    pub pidfile: PathBuf,
    /// Set by omd itself when it starts its background copy.
    #[arg(long, hide = true)]
    pub background_child: bool,
}
