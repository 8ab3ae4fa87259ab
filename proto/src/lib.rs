//! `om-proto`: what the user commands and omd say to each other.
//!
//! The tools (`mosctl`, `setpe`, `mps`, `mtop`, later `migrate`, `mosrun`, `mosmon`) are
//! thin clients of the node daemon. They connect to its Unix control socket, send ONE
//! [`Request`] as a line of JSON, and read ONE [`Response`] line back. The daemon learns
//! who is asking from the socket's peer credentials (SO_PEERCRED), never from the request,
//! so a request cannot claim to come from root.
//!
//! The protocol is versioned by [`PROTOCOL_VERSION`]: every request carries it and a
//! daemon answers a request of another version with [`ErrorKind::Version`].

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node number, as in the cluster map (1..=65535).
pub type NodeId = u16;

/// Bumped whenever a request or reply changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where omd listens for the tools; `OM_CONTROL_SOCKET` overrides it.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/omd/control.sock";

/// The longest request or reply line either side accepts (a map of thousands of nodes,
/// or the process list of a busy node, fits easily).
pub const MAX_LINE: usize = 16 << 20;

/// The control socket path in use: `$OM_CONTROL_SOCKET`, else the default.
pub fn control_socket() -> PathBuf {
    std::env::var_os("OM_CONTROL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET))
}

/// One line from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
}

/// What a tool can ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// This node's settings and counters, and every node of the map as this node sees it.
    Status,
    /// One node as this node sees it (`None` = this node).
    Node { node: Option<NodeId> },
    /// Resolve a node number, address or host name against the map in use.
    Whois { query: String },
    /// Override this node's speed (root only). 0 returns to the calibrated speed.
    SetSpeed { speed: u32 },
    /// Turn one of this node's settings on or off (root only).
    Set { setting: Setting, on: bool },
    /// The map in use, as text.
    GetMap,
    /// Replace the map (root only); the daemon checks it first and keeps the old one if
    /// it has errors or no longer contains this node. Also resumes participation after
    /// `Off`.
    LoadMap { text: String, origin: String },
    /// Stop this node's participation in the cluster (root only): no gossip is sent or
    /// accepted until a map is loaded again.
    Off,
    /// The processes of this node, with where each one runs.
    Processes,
    /// Move process `pid` of this node (its owner or root). With `wait`, the answer comes
    /// when it has arrived or failed.
    /// `eager` copies all its memory before it runs there (the default is lazy: it runs
    /// at once and its pages follow on demand).
    Migrate {
        pid: i32,
        to: MigrateTo,
        wait: bool,
        #[serde(default)]
        eager: bool,
    },
    /// Send every guest running here home (root only).
    Expel,
    /// Bring every process of this node home (root only).
    Bring,
    /// The migration state of process `pid` of this node (the `<root>/<pid>/` files).
    Proc { pid: i32 },
    /// Lock process `pid` against automatic migration, or unlock it (its owner or root).
    /// A locked process still moves when asked to by `migrate`.
    Lock { pid: i32, on: bool },
    /// Tell the balancer what kind of job process `pid` is (openMosix's `cpujob` and
    /// `iojob`; its owner or root). This also puts it under migration control.
    Hint { pid: i32, job: JobKind },
    /// The processes under migration control at this node (started by mosrun, locked,
    /// or moved at least once), and the guests of other nodes running here.
    Controlled,
    /// Put process `pid` of this node in migration group `group` (0: take it out; its
    /// owner or root), as openMosix's `/proc/PID/miggroup`: the processes of a group
    /// move together, and the balancer moves them as one. This also puts it under
    /// migration control.
    Group { pid: i32, group: u32 },
}

/// What the balancer is told of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Judged by what it does (its CPU use and its calls).
    #[default]
    Any,
    /// CPU-bound: may move whatever its calls look like (`cpujob`, `mosrun -c`).
    Cpu,
    /// I/O-bound: stays home (`iojob`, `mosrun -i`).
    Io,
}

/// Where `migrate` sends a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateTo {
    /// Its home node.
    Home,
    /// This node number.
    Node(NodeId),
    /// The best node, by load and speed.
    Balance,
}

/// A target that is not `home`, `0`, `balance` or a node number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a node number, `home` or `balance`")]
pub struct BadTarget(pub String);

impl std::str::FromStr for MigrateTo {
    type Err = BadTarget;

    /// `home` (or `0`), `balance`, or a node number: what `migrate` and a process's
    /// `goto` file take.
    fn from_str(s: &str) -> Result<Self, BadTarget> {
        Ok(match s {
            "home" | "0" => MigrateTo::Home,
            "balance" => MigrateTo::Balance,
            n => MigrateTo::Node(n.parse().map_err(|_| BadTarget(n.to_string()))?),
        })
    }
}

/// The per-node settings of `mosctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// No automatic migration of any process away from this node.
    Stay,
    /// No automatic migration of this node's own processes away.
    Lstay,
    /// No guest process may arrive.
    Block,
    /// Do not send load information to other nodes.
    Quiet,
}

impl Setting {
    pub const ALL: [Setting; 4] = [
        Setting::Stay,
        Setting::Lstay,
        Setting::Block,
        Setting::Quiet,
    ];

    /// The name used by `mosctl` and the admin files.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Stay => "stay",
            Setting::Lstay => "lstay",
            Setting::Block => "block",
            Setting::Quiet => "quiet",
        }
    }

    /// The flag bit of this setting in a [`NodeRecord`].
    pub fn flag(self) -> u16 {
        match self {
            Setting::Stay => flags::STAY,
            Setting::Lstay => flags::LSTAY,
            Setting::Block => flags::BLOCK,
            Setting::Quiet => flags::QUIET,
        }
    }
}

/// Bits of [`NodeRecord::flags`].
pub mod flags {
    pub const STAY: u16 = 1;
    pub const LSTAY: u16 = 2;
    pub const BLOCK: u16 = 4;
    pub const QUIET: u16 = 8;
}

/// What a node says about itself in gossip: the numbers `mosctl get*` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Load, in hundredths of a standard CPU: 100 means the node's run queue would keep
    /// one standard CPU (speed [`STANDARD_SPEED`]) fully busy.
    pub load: u32,
    /// Speed of one of its CPUs, where [`STANDARD_SPEED`] is a standard CPU.
    pub speed: u32,
    /// Number of CPUs it may use.
    pub cpus: u16,
    /// CPU utilisation over the last second, in hundredths of a percent of its capacity.
    pub util: u16,
    /// [`flags`] bits.
    pub flags: u16,
    /// Memory available to new processes, in bytes (`mosctl getmem`).
    pub mem: u64,
    /// Raw free memory, in bytes: not even used as cache (`mosctl getfree`).
    pub free: u64,
    /// Total memory, in bytes.
    pub tmem: u64,
}

/// A [`NodeRecord::util`] (hundredths of a percent) as a whole percentage, rounded.
pub fn util_percent(util: u16) -> u32 {
    (u32::from(util) + 50) / 100
}

/// The speed of a standard CPU.
pub const STANDARD_SPEED: u32 = 10_000;

/// One node as seen from the node that answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: NodeId,
    pub addr: String,
    /// True for the answering node itself.
    pub me: bool,
    /// True when a record of it younger than the down time is known.
    pub up: bool,
    /// Age of the freshest record known, in milliseconds.
    pub age_ms: Option<u64>,
    /// That record, if any was ever received.
    pub record: Option<NodeRecord>,
}

/// The per-node numbers, named as in openMosix's `/proc/hpc/nodes/<N>/` and printed the
/// same way by `mosctl get*` and the /proc-style files, so that both always agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Load,
    Speed,
    /// Memory available to new processes.
    Mem,
    /// Raw free memory.
    Free,
    Tmem,
    Util,
    Status,
    Cpus,
}

impl Field {
    /// The files of `nodes/<N>/`.
    pub const FILES: [Field; 7] = [
        Field::Load,
        Field::Speed,
        Field::Mem,
        Field::Tmem,
        Field::Util,
        Field::Status,
        Field::Cpus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Load => "load",
            Field::Speed => "speed",
            Field::Mem => "mem",
            Field::Free => "free",
            Field::Tmem => "tmem",
            Field::Util => "util",
            Field::Status => "status",
            Field::Cpus => "CPUs",
        }
    }

    /// The value as text, without a newline. A node never heard of shows 0s.
    pub fn format(self, v: &NodeView) -> String {
        let r = v.record.unwrap_or_default();
        match self {
            Field::Load => r.load.to_string(),
            Field::Speed => r.speed.to_string(),
            Field::Mem => r.mem.to_string(),
            Field::Free => r.free.to_string(),
            Field::Tmem => r.tmem.to_string(),
            Field::Util => util_percent(r.util).to_string(),
            Field::Cpus => r.cpus.to_string(),
            Field::Status => {
                let mut s = String::from(if v.up { "up" } else { "down" });
                for set in Setting::ALL {
                    if v.up && r.flags & set.flag() != 0 {
                        s.push(' ');
                        s.push_str(set.name());
                    }
                }
                s
            }
        }
    }
}

/// Gossip packets received and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    pub accepted: u64,
    /// Dropped: the authentication tag did not match (wrong key, or altered).
    pub bad_tag: u64,
    /// Dropped: wrong size, magic or version, or impossible contents.
    pub malformed: u64,
    /// Dropped: a sequence number already seen from that sender.
    pub replayed: u64,
    /// Dropped: from or about a node that is not in the map.
    pub unknown_node: u64,
    /// Discovery (`omd --discover`): nodes added to the map by their announcements.
    #[serde(default)]
    pub discovered: u64,
    /// Discovery, dropped: an announcement sent from an address other than the one it
    /// names, or for a node number another address holds.
    #[serde(default)]
    pub misplaced: u64,
}

impl Counters {
    /// All packets dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.bad_tag + self.malformed + self.replayed + self.unknown_node + self.misplaced
    }
}

/// The answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node's number.
    pub node: NodeId,
    /// False after `setpe -off`.
    pub participating: bool,
    /// The settings that are on.
    pub settings: Vec<Setting>,
    /// The speed was set by `mosctl setspeed` rather than calibrated.
    pub speed_override: bool,
    /// The calibrated speed.
    pub calibrated_speed: u32,
    /// The load this node uses for its own decisions (rises slowly, drops at once);
    /// the exported one is in its record.
    pub local_load: u32,
    pub gossip_interval_ms: u64,
    pub down_after_ms: u64,
    pub window: usize,
    pub counters: Counters,
    pub nodes: Vec<NodeView>,
    /// The balancer, when migration runs in this omd.
    #[serde(default)]
    pub balancer: Option<BalancerStatus>,
    /// The migration port's links, when migration runs in this omd.
    #[serde(default)]
    pub links: Option<LinkCounters>,
}

/// What became of the connections to this node's migration port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkCounters {
    /// Links that passed the handshake.
    pub accepted: u64,
    /// Dropped before the handshake: from an address no node of the map has.
    pub not_in_map: u64,
    /// Dropped before the handshake: too many handshakes under way (from that address,
    /// or in all).
    pub busy: u64,
    /// Dropped: the handshake failed (no key, another version, too slow, garbage).
    pub bad_handshake: u64,
    /// Dropped after the handshake: the node it said it was speaks from elsewhere.
    pub wrong_node: u64,
    /// Page links that named no migration offered to their node, or came too late.
    pub stray_pages: u64,
}

impl LinkCounters {
    /// All links dropped, for any reason.
    pub fn refused(&self) -> u64 {
        self.not_in_map + self.busy + self.bad_handshake + self.wrong_node + self.stray_pages
    }
}

/// What `mosctl status` shows of the balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BalancerStatus {
    /// The policy's name.
    pub policy: String,
    /// Milliseconds between two decisions.
    pub interval_ms: u64,
    /// Processes under migration control that run here now (own and guests).
    pub candidates: usize,
    /// Automatic moves away from this node that succeeded.
    pub moved_out: u64,
    /// Automatic moves that failed.
    pub failed: u64,
    /// Processes other nodes' balancers sent here.
    pub moved_in: u64,
    /// Of the moves out, how many relieved a node short of memory.
    pub ushered: u64,
    /// The last automatic move, as logged.
    pub last: Option<String>,
    /// Guests currently arriving (at most [`MAX_ARRIVING`] at a time).
    pub arriving: usize,
}

/// How many migrations a node accepts at the same time.
pub const MAX_ARRIVING: usize = 2;

/// The answer to [`Request::Whois`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whois {
    pub node: NodeId,
    pub addr: String,
    pub aliases: Vec<String>,
    /// Host names that resolve to one of its addresses (from /etc/hosts or DNS).
    pub hostname: Option<String>,
}

/// One process, as `mps` and `mtop` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub user: String,
    /// ps's state letter (R, S, D, T, Z, ...).
    pub state: String,
    /// Controlling terminal, e.g. `pts/0`, or `?`.
    pub tty: String,
    /// User plus system CPU time, in clock ticks: at home and, for a process that
    /// migrated, at the other nodes too.
    pub cpu_ticks: u64,
    /// Of `cpu_ticks`, those used at other nodes (reported by the node it runs at about
    /// once a second).
    #[serde(default)]
    pub away_ticks: u64,
    /// Clock ticks per second, to turn `cpu_ticks` into seconds.
    pub ticks_per_second: u64,
    /// Resident memory in bytes.
    pub rss: u64,
    pub nice: i64,
    pub threads: i64,
    pub comm: String,
    pub cmdline: String,
    /// Where it runs: 0 = here (its home), else the node number it migrated to.
    pub node: NodeId,
}

/// The answer to [`Request::Processes`]: the node's own record too, so that `mtop`'s
/// header comes from the same snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processes {
    pub node: NodeId,
    pub record: NodeRecord,
    pub processes: Vec<Process>,
}

/// The migration state of one process, as `<root>/<pid>/{where,lock,nmigs,cantmove}`
/// show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcState {
    pub pid: i32,
    /// Where it runs: 0 = here (its home), else the node number.
    pub node: NodeId,
    /// Locked against automatic migration.
    pub lock: bool,
    /// How many times it moved (away or back).
    pub nmigs: u32,
    /// Why it cannot move now, or why its last move failed; empty if nothing stops it.
    pub cantmove: String,
    /// Its migration group (0: none).
    #[serde(default)]
    pub group: u32,
}

/// A process of another node running here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestState {
    /// Its pid at this node.
    pub pid: i32,
    /// Its home node.
    pub from: NodeId,
    /// Its pid at home.
    pub home_pid: i32,
    pub comm: String,
}

/// The answer to [`Request::Controlled`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Controlled {
    pub processes: Vec<ProcState>,
    pub guests: Vec<GuestState>,
}

/// Why the daemon refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request needs root, or must come from the process's owner.
    PermissionDenied,
    /// Not a node of the map, not a known host, not a process.
    NotFound,
    /// The request's contents are wrong (a map with errors, a bad value).
    Invalid,
    /// Not a request this daemon understands.
    Version,
}

/// One line from the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Status(Box<Status>),
    Node(NodeView),
    Whois(Whois),
    Map {
        text: String,
    },
    Processes(Processes),
    Proc(ProcState),
    Controlled(Controlled),
    /// A change was made; the message says what.
    Done {
        message: String,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// What can go wrong talking to omd.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "omd is not running on this node (cannot connect to {}: {source}); start it with \
         `systemctl start omd` or `omd --foreground`",
        .path.display()
    )]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to omd at {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("omd sent a reply this tool cannot read: {0}")]
    Protocol(String),
    #[error("omd refused: {message}")]
    Refused { kind: ErrorKind, message: String },
}

/// How long a tool waits for omd's answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `migrate --wait` waits: omd gives a process 60 s to come home first and
/// 120 s to arrive.
pub const MIGRATE_WAIT_TIMEOUT: Duration = Duration::from_secs(200);

/// Sends one request to the omd listening at `path` and returns its answer. A refusal
/// by the daemon is returned as [`ClientError::Refused`].
pub fn call_at(path: &Path, request: Request) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::NotRunning {
        path: path.to_path_buf(),
        source,
    })?;
    let patience = match request {
        Request::Migrate { wait: true, .. } => MIGRATE_WAIT_TIMEOUT,
        _ => CLIENT_TIMEOUT,
    };
    stream.set_read_timeout(Some(patience)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_string(&Envelope {
        version: PROTOCOL_VERSION,
        request,
    })
    .map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_LINE as u64))
        .read_line(&mut reply)
        .map_err(io)?;
    if reply.is_empty() {
        return Err(ClientError::Protocol(
            "it closed the connection without answering".into(),
        ));
    }
    match serde_json::from_str(&reply).map_err(|e| ClientError::Protocol(e.to_string()))? {
        Response::Error { kind, message } => Err(ClientError::Refused { kind, message }),
        r => Ok(r),
    }
}

/// [`call_at`] the socket named by [`control_socket`].
pub fn call(request: Request) -> Result<Response, ClientError> {
    call_at(&control_socket(), request)
}

/// The error for a reply of the wrong kind (a daemon of another build).
pub fn unexpected(reply: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

#[cfg(test)]
mod target_tests {
    use super::{BadTarget, MigrateTo};

    #[test]
    fn targets_are_parsed_once_for_every_tool() {
        assert_eq!("home".parse(), Ok(MigrateTo::Home));
        assert_eq!("0".parse(), Ok(MigrateTo::Home));
        assert_eq!("balance".parse(), Ok(MigrateTo::Balance));
        assert_eq!("3".parse(), Ok(MigrateTo::Node(3)));
        let bad: Result<MigrateTo, _> = "node7".parse();
        assert_eq!(bad, Err(BadTarget("node7".into())));
        assert_eq!(
            bad.unwrap_err().to_string(),
            "`node7` is not a node number, `home` or `balance`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_json_lines() {
        let reqs = [
            Request::Status,
            Request::Node { node: Some(3) },
            Request::Set {
                setting: Setting::Block,
                on: true,
            },
            Request::LoadMap {
                text: "1 10.0.0.1 2\n".into(),
                origin: "x".into(),
            },
        ];
        for r in reqs {
            let line = serde_json::to_string(&Envelope {
                version: PROTOCOL_VERSION,
                request: r.clone(),
            })
            .unwrap();
            assert!(!line.contains('\n'));
            let back: Envelope = serde_json::from_str(&line).unwrap();
            assert_eq!(back.request, r);
        }
        let e = Response::Error {
            kind: ErrorKind::PermissionDenied,
            message: "no".into(),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"reply":"error","kind":"permission_denied","message":"no"}"#
        );
    }

    #[test]
    fn a_missing_daemon_is_named_with_its_socket() {
        let dir = std::env::temp_dir().join(format!("om-proto-none-{}", std::process::id()));
        let err = call_at(&dir.join("control.sock"), Request::Status).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("omd is not running on this node"),
            "{text}"
        );
        assert!(text.contains("control.sock"), "{text}");
    }
}
