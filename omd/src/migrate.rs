//! Migration between omds: the home side captures a process, offers it to the target,
//! serves its pages and runs its deputy; the target side checks the offer, restores the
//! process as a confined guest and supervises it. Both ends run in their own threads
//! (ptrace and seccomp work is blocking and per-thread), outside the async runtime.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use om_ckpt::pages::read_for_peer;
use om_ckpt::{capture_with, PageError, PageSource, Paging, ProcessMemory};
use om_map::NodeId;
use om_proto::MigrateTo;
use om_proto::{JobKind, Setting};
use om_remote::deputy::{leaving_home, IntoDeputy};
use om_remote::guest::Guest;
use om_remote::relay::{
    run_home, run_remote_counting, CallStats, Command, HomeEnd, Link, Msg, Progress, RemoteEnd,
};

use crate::balance::{Balancer, OpportunityCost};

use crate::node::Node;
use om_migrate::admit::{Startup, Startups, Throttle};
use om_migrate::{Conn, LinkError, Setup};

/// Why a migration could not be asked for or did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("no process {pid} at node {node}")]
    NoProcess { pid: i32, node: NodeId },
    #[error("permission denied: process {pid} belongs to uid {owner}; only its owner or root may move it")]
    NotOwner { pid: i32, owner: u32 },
    #[error("permission denied: process {pid} runs with privileges its owner lacks ({why}); only root may move it")]
    Privileged { pid: i32, why: String },
    #[error("node {0} is not in the cluster map")]
    NotInMap(NodeId),
    #[error("node {0} is down")]
    Down(NodeId),
    #[error("no other node is up")]
    NoNodeUp,
    #[error("process {0} is still being moved after 60 s; try again")]
    Busy(i32),
    #[error("cannot start the migration: {0}")]
    Thread(#[source] std::io::Error),
    #[error("no outcome for process {0} within 120 s")]
    NoOutcome(i32),
    #[error("process {pid} did not come home: {how}")]
    DidNotComeHome { pid: i32, how: String },
    #[error(
        "process {pid} is not home yet after 60 s; it still runs at {at} and may come home later"
    )]
    NotHomeYet { pid: i32, at: String },
    #[error("process {pid} cannot move: {reason}")]
    Capture { pid: i32, reason: String },
    #[error("node {0} has no address in the map")]
    NoAddress(NodeId),
    #[error("cannot reach node {node} ({addr}): {source}")]
    Unreachable {
        node: NodeId,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} refused the link: {source}")]
    LinkRefused {
        node: NodeId,
        #[source]
        source: LinkError,
    },
    #[error("link to node {node} failed: {source}")]
    Link {
        node: NodeId,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} refused: {why}")]
    Refused { node: NodeId, why: String },
    #[error("node {0} did not answer the offer")]
    NoAnswer(NodeId),
    #[error("memory of {pid}: {source}")]
    Memory {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node} could not start it: {why}")]
    CouldNotStart { node: NodeId, why: String },
    #[error("node {0} did not start it")]
    NotStarted(NodeId),
    #[error("process {pid} runs at node {at}, not at node {asker}")]
    NotThere { pid: i32, at: NodeId, asker: NodeId },
    #[error("process {0} is locked against automatic migration")]
    Locked(i32),
}

impl MigrateError {
    /// The kind of error the tools are told.
    pub fn kind(&self) -> om_proto::ErrorKind {
        match self {
            MigrateError::NoProcess { .. } => om_proto::ErrorKind::NotFound,
            MigrateError::NotOwner { .. } | MigrateError::Privileged { .. } => {
                om_proto::ErrorKind::PermissionDenied
            }
            _ => om_proto::ErrorKind::Invalid,
        }
    }
}

/// What a migration request answers.
pub type Outcome = Result<String, MigrateError>;

/// Starts accepting migrations on `listener`, and the balancer; returns this omd's
/// migrations, for the servers that answer requests about them.
pub fn start(
    node: Arc<Mutex<Node>>,
    guest_ids: (u32, u32),
    users: Vec<u32>,
    listener: TcpListener,
) -> Arc<Migrations> {
    let m = Migrations::new(node, guest_ids);
    *m.users.lock().expect("users lock") = users;
    m.listen(listener);
    crate::balancer::start(m.clone());
    m
}

/// A process of this node that is (or was) under migration.
#[derive(Debug, Clone, Default)]
pub struct HomeProc {
    /// Where it runs (0 = home).
    pub node: NodeId,
    /// How many times it moved.
    pub nmigs: u32,
    /// The last reason it could not move, if any.
    pub cantmove: String,
    /// A migration is under way.
    pub busy: bool,
    /// Locked against automatic migration (`mosrun -L`, `<root>/<pid>/lock`).
    pub lock: bool,
    /// CPU time it used at other nodes on trips that are over.
    pub away_cpu: Duration,
    /// CPU time it has used at the node it runs at now, on this trip, as last reported.
    pub trip_cpu: Duration,
    /// What kind of job it is said to be (`mosrun -c`/`-i`).
    pub job: JobKind,
    /// Why the balancer did not move it at its last decision.
    pub held: String,
    /// When it last came home, if it has been away.
    pub home_since: Option<Instant>,
    /// Its start time (clock ticks after boot), which tells it from a later process that
    /// got the same pid.
    start: u64,
    tx: Option<Sender<Command>>,
}

/// The start time of process `pid`, if it exists.
fn start_time(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .map(|s| s.starttime)
        .ok()
}

/// Puts the descendants of every process under migration control under control too, as
/// MOSIX does (the compilers `mosrun make -j4` starts, the commands of a shell script),
/// each locked or not as its nearest controlled ancestor is. Guests are not walked:
/// processes a guest forks come home first.
fn adopt_descendants(home: &mut HashMap<i32, HomeProc>) {
    let Ok(all) = procfs::process::all_processes() else {
        return;
    };
    let parents: HashMap<i32, (i32, u64)> = all
        .flatten()
        .filter_map(|p| p.stat().ok())
        .map(|s| (s.pid, (s.ppid, s.starttime)))
        .collect();
    for (&pid, &(_, start)) in &parents {
        if home.contains_key(&pid) {
            continue;
        }
        // The nearest controlled ancestor (a chain never loops: pids are a tree).
        let mut at = pid;
        let mut lock = None;
        for _ in 0..64 {
            let Some(&(ppid, _)) = parents.get(&at) else {
                break;
            };
            if ppid <= 1 {
                break;
            }
            if let Some(e) = home.get(&ppid) {
                lock = Some(e.lock);
                break;
            }
            at = ppid;
        }
        if let Some(lock) = lock {
            home.insert(
                pid,
                HomeProc {
                    lock,
                    start,
                    ..HomeProc::default()
                },
            );
        }
    }
}

/// Forgets the processes of `home` that ended, takes in those of `users` (see
/// [`adopt_users`]) and the descendants of all.
fn refresh(home: &mut HashMap<i32, HomeProc>, users: &[u32], guest_uid: u32) {
    home.retain(|&pid, e| start_time(pid) == Some(e.start));
    adopt_users(home, users, guest_uid);
    adopt_descendants(home);
}

/// Puts every process of the users `users` under migration control (`--balance-users`),
/// except guests (which run as `guest_uid`).
fn adopt_users(home: &mut HashMap<i32, HomeProc>, users: &[u32], guest_uid: u32) {
    if users.is_empty() {
        return;
    }
    let Ok(all) = procfs::process::all_processes() else {
        return;
    };
    for p in all.flatten() {
        if home.contains_key(&p.pid) {
            continue;
        }
        let (Ok(status), Ok(stat)) = (p.status(), p.stat()) else {
            continue;
        };
        if users.contains(&status.ruid) && status.ruid != guest_uid {
            home.insert(
                p.pid,
                HomeProc {
                    start: stat.starttime,
                    ..HomeProc::default()
                },
            );
        }
    }
}

/// The entry of `pid` in `home`, made afresh if there is none or it belonged to an
/// earlier process with the same pid.
fn entry(home: &mut HashMap<i32, HomeProc>, pid: i32) -> &mut HomeProc {
    let start = start_time(pid).unwrap_or(0);
    let e = home.entry(pid).or_default();
    if e.start != start {
        *e = HomeProc {
            start,
            ..HomeProc::default()
        };
    }
    e
}

/// A guest running here.
#[derive(Debug, Clone)]
pub struct GuestProc {
    /// Its home node.
    pub home: NodeId,
    /// Its pid at home.
    pub home_pid: i32,
    /// Its pid here.
    pub pid: i32,
    /// Its name.
    pub comm: String,
    /// Its forwarded calls.
    pub stats: Arc<CallStats>,
    /// When it arrived here.
    pub arrived: Instant,
    /// How long it had run when it arrived.
    pub age: Duration,
    /// The memory it brought, bytes.
    pub bytes: u64,
    /// Locked at home against automatic migration.
    pub locked: bool,
    pub job: JobKind,
    /// How many times it has moved, its move here included.
    pub moves: u32,
    tx: Sender<Command>,
}

/// This node's migrations.
pub struct Migrations {
    node: Arc<Mutex<Node>>,
    me: NodeId,
    port: u16,
    key: om_wire::Key,
    guest_ids: (u32, u32),
    home: Mutex<HashMap<i32, HomeProc>>,
    guests: Mutex<HashMap<u64, GuestProc>>,
    /// Accepted offers waiting for their page link, by migration id.
    pages: Mutex<HashMap<u64, PageLink>>,
    /// What became of links to the migration port.
    links: LinkStats,
    /// Handshakes under way.
    startups: Startups,
    /// Log lines about dropped links.
    drop_log: Throttle,
    /// How processes that were away ended (kept until a waiting request reads it).
    ended: Mutex<HashMap<i32, String>>,
    /// The balancer's policy and flood control.
    pub(crate) balancer: Mutex<Balancer>,
    /// What the balancer did.
    pub(crate) auto: AutoCounters,
    /// The measured link bandwidth to each node, bytes per second.
    bandwidth: Mutex<HashMap<NodeId, f64>>,
    /// Guests arriving now.
    arriving: AtomicUsize,
    /// Users all of whose processes are under migration control (`--balance-users`).
    pub(crate) users: Mutex<Vec<u32>>,
}

/// An accepted offer's page link: offered by node `home` at `since`, and once it came,
/// the connection.
struct PageLink {
    home: NodeId,
    since: Instant,
    conn: Option<Conn>,
}

/// How long an accepted offer waits for its page link.
const PAGE_LINK_WAIT: Duration = Duration::from_secs(10);

/// Counts of what became of links to the migration port, for `mosctl status`.
#[derive(Debug, Default)]
struct LinkStats {
    accepted: AtomicU64,
    not_in_map: AtomicU64,
    busy: AtomicU64,
    bad_handshake: AtomicU64,
    wrong_node: AtomicU64,
    stray_pages: AtomicU64,
}

impl LinkStats {
    fn get(&self) -> om_proto::LinkCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        om_proto::LinkCounters {
            accepted: l(&self.accepted),
            not_in_map: l(&self.not_in_map),
            busy: l(&self.busy),
            bad_handshake: l(&self.bad_handshake),
            wrong_node: l(&self.wrong_node),
            stray_pages: l(&self.stray_pages),
        }
    }
}

/// Counts of automatic moves, for `mosctl status`.
#[derive(Debug, Default)]
pub(crate) struct AutoCounters {
    pub moved_out: AtomicU64,
    pub failed: AtomicU64,
    pub moved_in: AtomicU64,
    pub ushered: AtomicU64,
    pub last: Mutex<Option<String>>,
    pub candidates: AtomicUsize,
}

/// The bandwidth assumed before a migration measured one: a gigabit link.
pub const DEFAULT_BANDWIDTH: f64 = 110e6;

/// What became of a process asked to come home.
enum Homecoming {
    Home,
    /// It ended on the way (how, if known).
    Ended(Option<String>),
    TimedOut,
}

struct TcpLink(Conn);

impl Link for TcpLink {
    fn send(&self, m: &Msg) -> std::io::Result<()> {
        self.0.send(m)
    }
    fn recv(&self, timeout: Option<Duration>) -> std::io::Result<Option<Msg>> {
        self.0.recv(timeout)
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.0.fd())
    }
}

/// The home's pages, read over the second connection.
struct RemotePages(Conn);

impl PageSource for RemotePages {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), PageError> {
        let io = |source| PageError::Io { addr, source };
        self.0
            .send(&Setup::Read {
                addr,
                len: buf.len() as u64,
            })
            .map_err(io)?;
        match self
            .0
            .recv::<Setup>(Some(Duration::from_secs(30)))
            .map_err(io)?
        {
            Some(Setup::Bytes(b)) if b.len() == buf.len() => {
                buf.copy_from_slice(&b);
                Ok(())
            }
            _ => Err(io(std::io::Error::other("the home node did not send them"))),
        }
    }
    fn reads_any_address(&self) -> bool {
        true
    }
}

/// The CPU flags of this machine (`/proc/cpuinfo`), read once.
fn cpu_flags() -> &'static [String] {
    static FLAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, f)| f.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    })
}

/// What a process with `status` may do that its owner (its real uid) may not: another
/// effective, saved or filesystem uid or gid (a setuid or setgid program), or
/// capabilities (for an owner other than root). None for an ordinary process.
fn privileged(status: &procfs::process::Status) -> Option<String> {
    let s = status;
    if let Some(u) = [s.euid, s.suid, s.fuid].into_iter().find(|&u| u != s.ruid) {
        return Some(format!("user id {u}, owner {}", s.ruid));
    }
    if let Some(g) = [s.egid, s.sgid, s.fgid].into_iter().find(|&g| g != s.rgid) {
        return Some(format!("group id {g}, owner's {}", s.rgid));
    }
    (s.ruid != 0 && (s.capeff != 0 || s.capprm != 0))
        .then(|| format!("capabilities {:#x}", s.capeff | s.capprm))
}

/// The real user id of process `pid`, its owner.
pub(crate) fn owner(pid: i32) -> Option<u32> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map(|s| s.ruid)
        .ok()
}

impl Migrations {
    /// Migration state for `node`, guests running as `guest_ids` (uid, gid).
    pub fn new(node: Arc<Mutex<Node>>, guest_ids: (u32, u32)) -> Arc<Self> {
        let (me, port, key) = {
            let n = node.lock().expect("node lock");
            (n.cfg.node, n.cfg.port, n.cfg.key.clone())
        };
        Arc::new(Self {
            node,
            me,
            port,
            key,
            guest_ids,
            home: Mutex::new(HashMap::new()),
            guests: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            links: LinkStats::default(),
            startups: Startups::default(),
            drop_log: Throttle::new(10, Duration::from_secs(60)),
            ended: Mutex::new(HashMap::new()),
            balancer: Mutex::new(Balancer::new(Box::new(OpportunityCost::default()))),
            auto: AutoCounters::default(),
            bandwidth: Mutex::new(HashMap::new()),
            arriving: AtomicUsize::new(0),
            users: Mutex::new(Vec::new()),
        })
    }

    /// The node's state.
    pub(crate) fn node(&self) -> &Mutex<Node> {
        &self.node
    }

    /// Where `pid` (a process of this node) runs: 0 = here.
    pub fn where_is(&self, pid: i32) -> NodeId {
        self.state(pid).map_or(0, |h| h.node)
    }

    /// Where process `pid`, started at `start` (clock ticks after boot), runs (0 = here),
    /// and the CPU time it has used at other nodes.
    pub fn where_and_away_cpu(&self, pid: i32, start: u64) -> (NodeId, Duration) {
        self.state_at(pid, start)
            .map_or((0, Duration::ZERO), |h| (h.node, h.away_cpu + h.trip_cpu))
    }

    /// Migration state of `pid`, if it is under migration control (it moved or tried
    /// to, or was locked or started by mosrun).
    pub fn state(&self, pid: i32) -> Option<HomeProc> {
        self.state_at(pid, start_time(pid)?)
    }

    /// [`Migrations::state`] of `pid`, whose start time is `start`.
    fn state_at(&self, pid: i32, start: u64) -> Option<HomeProc> {
        let h = self.home.lock().expect("home lock");
        h.get(&pid).filter(|e| e.start == start).cloned()
    }

    /// What `<root>/<pid>/` shows of process `pid` of this node; `None` if there is no
    /// such process.
    pub fn proc_state(&self, pid: i32) -> Option<om_proto::ProcState> {
        let h = self.state_at(pid, start_time(pid)?).unwrap_or_default();
        let cantmove = if h.node != 0 || h.busy {
            String::new()
        } else {
            match om_ckpt::check_movable(pid) {
                Err(om_ckpt::CaptureError::Refused { reason, .. }) => reason.to_string(),
                Err(e) => e.to_string(),
                Ok(()) if h.cantmove.is_empty() => h.held.clone(),
                Ok(()) => h.cantmove.clone(),
            }
        };
        Some(om_proto::ProcState {
            pid,
            node: h.node,
            lock: h.lock,
            nmigs: h.nmigs,
            cantmove,
        })
    }

    /// Locks or unlocks `pid` against automatic migration, for user `uid`; this also
    /// puts it under migration control.
    pub fn set_lock(&self, pid: i32, on: bool, uid: u32) -> Outcome {
        self.may_move(pid, uid)?;
        entry(&mut self.home.lock().expect("home lock"), pid).lock = on;
        Ok(format!(
            "process {pid} {}",
            if on { "locked" } else { "unlocked" }
        ))
    }

    /// Tells the balancer what kind of job `pid` is, for user `uid`; this also puts it
    /// under migration control.
    pub fn set_hint(&self, pid: i32, job: JobKind, uid: u32) -> Outcome {
        self.may_move(pid, uid)?;
        entry(&mut self.home.lock().expect("home lock"), pid).job = job;
        Ok(format!(
            "process {pid} is {}",
            match job {
                JobKind::Any => "judged by what it does",
                JobKind::Cpu => "a CPU job",
                JobKind::Io => "an I/O job: it stays home",
            }
        ))
    }

    /// Processes of this node under migration control that run here and are not being
    /// moved, with their state (those that ended are forgotten).
    pub(crate) fn at_home(&self) -> Vec<(i32, HomeProc)> {
        let users = self.users.lock().expect("users lock").clone();
        let mut h = self.home.lock().expect("home lock");
        refresh(&mut h, &users, self.guest_ids.0);
        h.iter()
            .filter(|(_, e)| e.node == 0 && !e.busy)
            .map(|(&pid, e)| (pid, e.clone()))
            .collect()
    }

    /// Notes why the balancer left `pid` where it is.
    pub(crate) fn set_held(&self, pid: i32, why: String) {
        if let Some(e) = self.home.lock().expect("home lock").get_mut(&pid) {
            e.held = why;
        }
    }

    /// The mean bandwidth over the nodes measured, for a decision about any of them.
    pub fn mean_bandwidth(&self) -> f64 {
        let b = self.bandwidth.lock().expect("bandwidth lock");
        if b.is_empty() {
            DEFAULT_BANDWIDTH
        } else {
            b.values().sum::<f64>() / b.len() as f64
        }
    }

    fn measured_bandwidth(&self, to: NodeId, bytes: u64, took: Duration) {
        if bytes < 1 << 20 || took.is_zero() {
            return;
        }
        let sample = bytes as f64 / took.as_secs_f64();
        let mut b = self.bandwidth.lock().expect("bandwidth lock");
        let e = b.entry(to).or_insert(sample);
        *e = 0.5 * *e + 0.5 * sample;
    }

    /// The balancer's state for `mosctl status`.
    pub fn balancer_status(&self, interval: Duration) -> om_proto::BalancerStatus {
        let a = &self.auto;
        om_proto::BalancerStatus {
            policy: self
                .balancer
                .lock()
                .expect("balancer lock")
                .policy()
                .name()
                .into(),
            interval_ms: interval.as_millis() as u64,
            candidates: a.candidates.load(Ordering::Relaxed),
            moved_out: a.moved_out.load(Ordering::Relaxed),
            failed: a.failed.load(Ordering::Relaxed),
            moved_in: a.moved_in.load(Ordering::Relaxed),
            ushered: a.ushered.load(Ordering::Relaxed),
            last: a.last.lock().expect("last lock").clone(),
            arriving: self.arriving.load(Ordering::Relaxed),
        }
    }

    /// Sends guest `pid` (its pid here) home.
    pub(crate) fn send_guest_home(&self, pid: i32) -> bool {
        let g = self.guests.lock().expect("guests lock");
        g.values()
            .find(|g| g.pid == pid)
            .is_some_and(|g| g.tx.send(Command::ComeHome).is_ok())
    }

    /// Asks the home of guest `pid` (its pid here) to send it on to node `to`.
    pub(crate) fn send_guest_on(&self, pid: i32, to: NodeId) -> Outcome {
        let Some(g) = self.guests().into_iter().find(|g| g.pid == pid) else {
            return Err(MigrateError::NoProcess { pid, node: self.me });
        };
        let conn = self.connect(g.home)?;
        let io = |source| MigrateError::Link {
            node: g.home,
            source,
        };
        conn.send(&Setup::MoveOn {
            pid: g.home_pid,
            to,
        })
        .map_err(io)?;
        match conn
            .recv::<Setup>(Some(Duration::from_secs(10)))
            .map_err(io)?
        {
            Some(Setup::Accept(_)) => Ok(format!(
                "process {} of node {} goes on to node {to}",
                g.home_pid, g.home
            )),
            Some(Setup::Refuse(why)) => Err(MigrateError::Refused { node: g.home, why }),
            _ => Err(MigrateError::NoAnswer(g.home)),
        }
    }

    /// A balancer elsewhere asks to send `pid`, which runs at node `from`, on to `to`.
    fn move_on(self: &Arc<Self>, pid: i32, from: NodeId, to: NodeId) -> Result<(), MigrateError> {
        let h = self
            .state(pid)
            .ok_or(MigrateError::NoProcess { pid, node: self.me })?;
        if h.node != from {
            return Err(MigrateError::NotThere {
                pid,
                at: h.node,
                asker: from,
            });
        }
        if h.lock {
            return Err(MigrateError::Locked(pid));
        }
        let target = if to == self.me {
            MigrateTo::Home
        } else {
            MigrateTo::Node(to)
        };
        self.carry_out_in_background(pid, target, false, true)
    }

    /// [`Migrations::carry_out`] in a thread of its own; a failure is logged (and shows
    /// in `cantmove`).
    fn carry_out_in_background(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        eager: bool,
        auto: bool,
    ) -> Result<(), MigrateError> {
        let me = self.clone();
        std::thread::Builder::new()
            .name(format!("om-move-{pid}"))
            .spawn(move || {
                if let Err(why) = me.carry_out(pid, target, eager, auto) {
                    tracing::info!(pid, "migration failed: {why}");
                }
            })
            .map(|_| ())
            .map_err(MigrateError::Thread)
    }

    /// Every process under migration control (forgetting those that ended) and every
    /// guest running here.
    pub fn controlled(&self) -> om_proto::Controlled {
        let pids: Vec<i32> = {
            let mut h = self.home.lock().expect("home lock");
            refresh(&mut h, &[], self.guest_ids.0);
            h.keys().copied().collect()
        };
        let mut processes: Vec<_> = pids
            .into_iter()
            .filter_map(|p| self.proc_state(p))
            .collect();
        processes.sort_by_key(|p| p.pid);
        let mut guests: Vec<_> = self
            .guests()
            .into_iter()
            .map(|g| om_proto::GuestState {
                pid: g.pid,
                from: g.home,
                home_pid: g.home_pid,
                comm: g.comm,
            })
            .collect();
        guests.sort_by_key(|g| g.pid);
        om_proto::Controlled { processes, guests }
    }

    /// Checks that user `uid` may move process `pid`.
    fn may_move(&self, pid: i32, uid: u32) -> Result<(), MigrateError> {
        let Some(own) = owner(pid) else {
            return Err(MigrateError::NoProcess { pid, node: self.me });
        };
        if uid != 0 && uid != own {
            return Err(MigrateError::NotOwner { pid, owner: own });
        }
        // A setuid program (or one with capabilities) acts with more than its owner may:
        // away, its forwarded calls would still run with those privileges at home.
        if uid != 0 {
            let status = procfs::process::Process::new(pid).and_then(|p| p.status());
            if let Some(why) = status.ok().and_then(|s| privileged(&s)) {
                return Err(MigrateError::Privileged { pid, why });
            }
        }
        Ok(())
    }

    /// The guests running here.
    pub fn guests(&self) -> Vec<GuestProc> {
        self.guests
            .lock()
            .expect("guests lock")
            .values()
            .cloned()
            .collect()
    }

    /// Sends every guest home (`mosctl expel`).
    pub fn expel(&self) -> usize {
        let g = self.guests.lock().expect("guests lock");
        for p in g.values() {
            let _ = p.tx.send(Command::ComeHome);
        }
        g.len()
    }

    /// Brings every process of this node home (`mosctl bring`).
    pub fn bring(&self) -> usize {
        let h = self.home.lock().expect("home lock");
        let mut n = 0;
        for p in h.values() {
            if let Some(tx) = &p.tx {
                let _ = tx.send(Command::ComeHome);
                n += 1;
            }
        }
        n
    }

    /// Kills every process of this node that runs elsewhere (omd is stopping: their
    /// deputies end with it).
    pub fn shutdown(&self) {
        for (pid, p) in self.home.lock().expect("home lock").iter() {
            if p.node != 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    fn wait_home(&self, pid: i32, secs: u64) -> Homecoming {
        let end = Instant::now() + Duration::from_secs(secs);
        let how = || self.ended.lock().expect("ended lock").remove(&pid);
        while Instant::now() < end {
            match self.state(pid) {
                Some(h) if h.node != 0 => {}
                Some(_) => return Homecoming::Home,
                None => return Homecoming::Ended(how()),
            }
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Homecoming::Ended(how());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Homecoming::TimedOut
    }

    /// Keeps how process `pid` ended for a request that waits for it (a few at most:
    /// the oldest are dropped).
    fn ended_as(&self, pid: i32, how: String) {
        let mut e = self.ended.lock().expect("ended lock");
        if e.len() >= 64 {
            e.clear();
        }
        e.insert(pid, how);
    }

    /// Migrates `pid` to `target` on behalf of user `uid`. With `wait`, returns when it
    /// has arrived (or failed), saying where it runs; otherwise once it is under way.
    pub fn request(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        uid: u32,
        wait: bool,
        eager: bool,
    ) -> Outcome {
        self.may_move(pid, uid)?;
        if wait {
            return self.carry_out(pid, target, eager, false);
        }
        // Asynchronous, as openMosix's migrate: the outcome shows in `cantmove`/`where`.
        // What can be known at once is said at once (a best node is chosen only once).
        let to = match target {
            MigrateTo::Balance => None,
            t => Some(self.resolve(t, self.where_is(pid), pid)?),
        };
        self.carry_out_in_background(pid, target, eager, false)?;
        Ok(match to {
            None => format!("placing process {pid} on the best node"),
            Some(0) => format!("process {pid} goes home"),
            Some(to) => format!("migrating process {pid} to node {to}"),
        })
    }

    /// The node `target` means for a process that runs at `cur` (0 = home).
    fn resolve(&self, target: MigrateTo, cur: NodeId, pid: i32) -> Result<NodeId, MigrateError> {
        Ok(match target {
            MigrateTo::Home => 0,
            MigrateTo::Node(n) if n == self.me => 0,
            MigrateTo::Node(n) => {
                let nd = self.node.lock().expect("node lock");
                if !nd.members().contains(&n) {
                    return Err(MigrateError::NotInMap(n));
                }
                if !nd.is_up(n) {
                    return Err(MigrateError::Down(n));
                }
                n
            }
            MigrateTo::Balance => {
                if cur == 0 && self.node.lock().expect("node lock").up_nodes().len() < 2 {
                    return Err(MigrateError::NoNodeUp);
                }
                crate::balancer::place(self, pid).unwrap_or(0)
            }
        })
    }

    /// Makes this thread the only one moving `pid`, waiting (up to a minute) for a move
    /// under way to finish first.
    fn claim(&self, pid: i32) -> Result<(), MigrateError> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let mut h = self.home.lock().expect("home lock");
                let e = entry(&mut h, pid);
                if !e.busy {
                    e.busy = true;
                    return Ok(());
                }
            }
            if Instant::now() > end {
                return Err(MigrateError::Busy(pid));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Moves `pid` to `target` (by way of home if it runs at another node) and returns
    /// the outcome once it is known. One move of a process at a time: a second waits.
    pub(crate) fn carry_out(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        eager: bool,
        auto: bool,
    ) -> Outcome {
        self.claim(pid)?;
        let r = self.carry_out_claimed(pid, target, eager, auto);
        if let Some(e) = self.home.lock().expect("home lock").get_mut(&pid) {
            e.busy = false;
        }
        r
    }

    fn carry_out_claimed(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        eager: bool,
        auto: bool,
    ) -> Outcome {
        let cur = self.where_is(pid);
        let to = self.resolve(target, cur, pid)?;
        if to == cur {
            return Ok(format!("process {pid} already runs at {}", self.name(cur)));
        }
        if cur != 0 {
            if let Some(tx) = self.state(pid).and_then(|h| h.tx) {
                let _ = tx.send(Command::ComeHome);
            }
            match self.wait_home(pid, 60) {
                Homecoming::Home => {}
                Homecoming::Ended(how) => {
                    let how = how.unwrap_or_else(|| "it ended".into());
                    return Err(MigrateError::DidNotComeHome { pid, how });
                }
                Homecoming::TimedOut => {
                    return self.cant(
                        pid,
                        MigrateError::NotHomeYet {
                            pid,
                            at: self.name(cur),
                        },
                    )
                }
            }
            if to == 0 {
                return Ok(format!("process {pid} is home"));
            }
        }
        let (tx, rx) = channel();
        let me = self.clone();
        std::thread::Builder::new()
            .name(format!("om-home-{pid}"))
            .spawn(move || me.go(pid, to, eager, auto, tx))
            .map_err(MigrateError::Thread)?;
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(r) => r,
            Err(_) => Err(MigrateError::NoOutcome(pid)),
        }
    }

    fn name(&self, n: NodeId) -> String {
        if n == 0 {
            format!("home (node {})", self.me)
        } else {
            format!("node {n}")
        }
    }

    fn cant(&self, pid: i32, why: MigrateError) -> Outcome {
        let mut h = self.home.lock().expect("home lock");
        entry(&mut h, pid).cantmove = why.to_string();
        Err(why)
    }

    fn connect(&self, to: NodeId) -> Result<Conn, MigrateError> {
        let addr = self
            .node
            .lock()
            .expect("node lock")
            .addr_of(to)
            .ok_or(MigrateError::NoAddress(to))?;
        let addr = SocketAddr::new(addr, self.port);
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|source| {
            MigrateError::Unreachable {
                node: to,
                addr,
                source,
            }
        })?;
        // Whoever answers at node `to`'s address must say it is node `to`.
        Conn::open(s, &self.key, self.me, to)
            .map_err(|source| MigrateError::LinkRefused { node: to, source })
    }

    /// Home side of one migration: runs until the process ends or comes home.
    fn go(self: Arc<Self>, pid: i32, to: NodeId, eager: bool, auto: bool, done: Sender<Outcome>) {
        let usage = crate::procs::usage(pid);
        let (locked, job, nmigs) = self
            .state(pid)
            .map_or((false, JobKind::Any, 0), |h| (h.lock, h.job, h.nmigs));
        let frozen_at = Instant::now();
        let frozen = match capture_with(pid, leaving_home()) {
            Ok(f) => f,
            Err(e) => {
                let _ = done.send(self.cant(
                    pid,
                    MigrateError::Capture {
                        pid,
                        reason: e.to_string(),
                    },
                ));
                return;
            }
        };
        let image = frozen.image().clone();
        let setup = (|| -> Result<(Conn, u64), MigrateError> {
            let a = self.connect(to)?;
            let io = |source| MigrateError::Link { node: to, source };
            a.send(&Setup::Offer {
                pid,
                comm: image.comm.clone(),
                uid: image.creds.uid[0],
                bytes: image.page_bytes(),
                cpu_flags: cpu_flags().to_vec(),
                xcr0: image.xcr0,
                eager,
                age_ms: usage.map_or(0, |u| u.age.as_millis() as u64),
                locked,
                job,
                auto,
                moves: nmigs + 1,
            })
            .map_err(io)?;
            let id = match a.recv::<Setup>(Some(Duration::from_secs(10))).map_err(io)? {
                Some(Setup::Accept(id)) => id,
                Some(Setup::Refuse(why)) => return Err(MigrateError::Refused { node: to, why }),
                _ => return Err(MigrateError::NoAnswer(to)),
            };
            let b = self.connect(to)?;
            b.send(&Setup::PagesFor(id)).map_err(io)?;
            let mut mem =
                ProcessMemory::open(pid).map_err(|source| MigrateError::Memory { pid, source })?;
            std::thread::Builder::new()
                .name(format!("om-pages-{pid}"))
                .spawn(move || {
                    while let Ok(Some(Setup::Read { addr, len })) = b.recv::<Setup>(None) {
                        let bytes = read_for_peer(&mut mem, addr, len);
                        if b.send(&Setup::Bytes(bytes)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(MigrateError::Thread)?;
            a.send(&Setup::Image(Box::new(image.clone()))).map_err(io)?;
            match a.recv::<Setup>(Some(Duration::from_secs(60))).map_err(io)? {
                Some(Setup::Started(rpid)) => Ok((a, rpid as u64)),
                Some(Setup::Refuse(why)) => Err(MigrateError::CouldNotStart { node: to, why }),
                _ => Err(MigrateError::NotStarted(to)),
            }
        })();
        let (conn, _rpid) = match setup {
            Ok(x) => x,
            Err(why) => {
                drop(frozen);
                let _ = done.send(self.cant(pid, why));
                return;
            }
        };
        let (ctx, crx) = channel();
        {
            let mut h = self.home.lock().expect("home lock");
            let e = entry(&mut h, pid);
            e.node = to;
            e.nmigs += 1;
            e.cantmove.clear();
            e.tx = Some(ctx);
        }
        tracing::info!(pid, to, "process migrated");
        let _ = done.send(Ok(format!(
            "process {pid} now runs at node {to} ({} ms frozen; {:.1} MiB of memory, {})",
            frozen_at.elapsed().as_millis(),
            image.page_bytes() as f64 / f64::from(1 << 20),
            if eager {
                "copied first"
            } else {
                "following on demand"
            }
        )));
        let link: Arc<dyn Link> = Arc::new(TcpLink(conn));
        let me = self.clone();
        let progress = move |p: Progress| match p {
            Progress::CpuAway(t) => {
                if let Some(e) = me.home.lock().expect("home lock").get_mut(&pid) {
                    e.trip_cpu = t;
                }
            }
            Progress::MemoryReleased(bytes) => {
                me.measured_bandwidth(to, bytes, frozen_at.elapsed());
                tracing::info!(
                    pid,
                    "all its memory is at node {to}: {:.1} MiB released here",
                    bytes as f64 / f64::from(1 << 20)
                )
            }
            Progress::DiedBecause(why) => {
                tracing::warn!(pid, "process died at node {to}: {why}");
                me.ended_as(pid, format!("it died at node {to}: {why}"));
            }
            Progress::Refused(why) => {
                tracing::warn!(
                    pid,
                    "node {to} asked home for a call it may not: {why} (refused)"
                );
            }
        };
        let end = frozen.into_deputy(move |ctl| match ctl {
            Ok(ctl) => run_home(ctl, &link, crx, &progress),
            Err(e) => HomeEnd::Lost(format!("the deputy could not start: {e}")),
        });
        let mut h = self.home.lock().expect("home lock");
        match end {
            Ok(HomeEnd::CameHome(why)) => {
                tracing::info!(pid, "process came home: {why}");
                if let Some(e) = h.get_mut(&pid) {
                    e.node = 0;
                    e.nmigs += 1;
                    e.tx = None;
                    e.home_since = Some(Instant::now());
                    e.away_cpu += std::mem::take(&mut e.trip_cpu);
                }
            }
            Ok(HomeEnd::Ended(g)) => {
                tracing::info!(pid, "process ended away from home: {g}");
                self.ended_as(pid, format!("it ended away from home ({g})"));
                h.remove(&pid);
            }
            Ok(HomeEnd::Lost(why)) => {
                tracing::warn!(pid, "process killed: {why}");
                self.ended_as(pid, format!("it was killed: {why}"));
                h.remove(&pid);
            }
            Err(e) => {
                tracing::warn!(pid, "deputy failed: {e}");
                h.remove(&pid);
            }
        }
    }

    /// Accepts migration links until the process ends.
    pub fn listen(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name("om-accept".into())
            .spawn(move || {
                for s in listener.incoming().flatten() {
                    let Some(startup) = me.admit(&s) else {
                        continue;
                    };
                    let me = me.clone();
                    let _ = std::thread::Builder::new()
                        .name("om-link".into())
                        .spawn(move || me.serve(s, startup));
                }
            });
    }

    /// Whether a connection may start a handshake: it must come from an address of the
    /// map, and there must be room (see [`om_migrate::admit`]).
    fn admit(&self, s: &TcpStream) -> Option<Startup> {
        let ip = s.peer_addr().ok()?.ip();
        let known = self.node.lock().expect("node lock").member_at(ip).is_some();
        let (counter, why) = if !known {
            (
                &self.links.not_in_map,
                "no node of the map has that address",
            )
        } else if let Some(startup) = self.startups.admit(ip) {
            return Some(startup);
        } else {
            (&self.links.busy, "too many handshakes under way")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.log_drop(format_args!("migration link from {ip} dropped: {why}"));
        None
    }

    /// Logs a dropped link, at a bounded rate.
    fn log_drop(&self, what: std::fmt::Arguments) {
        match self.drop_log.allow() {
            Some(0) => tracing::warn!("{what}"),
            Some(n) => tracing::warn!("{what} ({n} more dropped links were not logged)"),
            None => {}
        }
    }

    /// What became of links to the migration port.
    pub fn link_counters(&self) -> om_proto::LinkCounters {
        self.links.get()
    }

    fn offer_ok(&self, bytes: u64, flags: &[String]) -> Result<(), String> {
        let n = self.node.lock().expect("node lock");
        if n.setting(Setting::Block) {
            return Err(format!("node {} is blocked (mosctl block)", self.me));
        }
        let own = n.own();
        if own.mem < bytes {
            return Err(format!(
                "not enough memory: it needs {} MiB, node {} has {} MiB available",
                bytes >> 20,
                self.me,
                own.mem >> 20
            ));
        }
        drop(n);
        let here = cpu_flags();
        let missing: Vec<&str> = flags
            .iter()
            .filter(|f| !here.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "this CPU lacks features it may use: {}",
                missing.join(" ")
            ));
        }
        Ok(())
    }

    /// Target side of one connection.
    fn serve(self: Arc<Self>, s: TcpStream, startup: Startup) {
        let peer = s.peer_addr().ok();
        let conn = Conn::accept(s, &self.key, self.me);
        drop(startup);
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.links.bad_handshake.fetch_add(1, Ordering::Relaxed);
                self.log_drop(format_args!("migration link from {peer:?} dropped: {e}"));
                return;
            }
        };
        let from = conn.peer;
        // The node number is the peer's word; the address it speaks from must be that
        // node's, as for gossip, or any holder of the key could pass for any node.
        let at = peer.map(|a| a.ip());
        if !at.is_some_and(|ip| self.node.lock().expect("node lock").speaks_from(from, ip)) {
            self.links.wrong_node.fetch_add(1, Ordering::Relaxed);
            self.log_drop(format_args!(
                "migration link from {peer:?} dropped: it says it is node {from}, which the map puts elsewhere"
            ));
            return;
        }
        self.links.accepted.fetch_add(1, Ordering::Relaxed);
        match conn.recv::<Setup>(Some(Duration::from_secs(10))) {
            Ok(Some(Setup::PagesFor(id))) => {
                // Only for an offer this node accepted from that node, once, in time.
                let mut pages = self.pages.lock().expect("pages lock");
                match pages.get_mut(&id) {
                    Some(p)
                        if p.home == from
                            && p.conn.is_none()
                            && p.since.elapsed() < PAGE_LINK_WAIT =>
                    {
                        p.conn = Some(conn);
                    }
                    _ => {
                        drop(pages);
                        self.links.stray_pages.fetch_add(1, Ordering::Relaxed);
                        self.log_drop(format_args!(
                            "page link from node {from} dropped: it names no migration waiting for it"
                        ));
                    }
                }
            }
            Ok(Some(Setup::MoveOn { pid, to })) => {
                let answer = match self.move_on(pid, from, to) {
                    Ok(()) => Setup::Accept(0),
                    Err(e) => Setup::Refuse(e.to_string()),
                };
                let _ = conn.send(&answer);
            }
            Ok(Some(Setup::Offer {
                pid,
                comm,
                bytes,
                cpu_flags,
                eager,
                age_ms,
                locked,
                job,
                auto,
                moves,
                ..
            })) => {
                // Flood control: a bounded number of arrivals at a time.
                let arriving = self.arriving.fetch_add(1, Ordering::SeqCst);
                let ok = if arriving >= om_proto::MAX_ARRIVING {
                    Err(format!(
                        "node {} is busy receiving {arriving} other processes; try again",
                        self.me
                    ))
                } else {
                    self.offer_ok(bytes, &cpu_flags)
                };
                if let Err(why) = ok {
                    self.arriving.fetch_sub(1, Ordering::SeqCst);
                    tracing::info!(from, pid, "refused a guest: {why}");
                    let _ = conn.send(&Setup::Refuse(why));
                    return;
                }
                // Unguessable, and good only for a page link from the node offering.
                let id = rand::random::<u64>();
                self.pages.lock().expect("pages lock").insert(
                    id,
                    PageLink {
                        home: from,
                        since: Instant::now(),
                        conn: None,
                    },
                );
                if conn.send(&Setup::Accept(id)).is_err() {
                    self.pages.lock().expect("pages lock").remove(&id);
                    self.arriving.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                let paging = if eager { Paging::Eager } else { Paging::Lazy };
                let offer = Arrival {
                    home: from,
                    home_pid: pid,
                    comm,
                    bytes,
                    age: Duration::from_millis(age_ms),
                    locked,
                    job,
                    auto,
                    moves,
                };
                self.host(conn, id, offer, paging);
            }
            _ => {}
        }
    }

    fn host(self: Arc<Self>, conn: Conn, id: u64, offer: Arrival, paging: Paging) {
        let started = self.start_guest(&conn, id, &offer, paging);
        self.pages.lock().expect("pages lock").remove(&id);
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        let Some(guest) = started else { return };
        let (from, home_pid) = (offer.home, offer.home_pid);
        if offer.auto {
            self.auto.moved_in.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = channel();
        let stats = Arc::new(CallStats::default());
        self.guests.lock().expect("guests lock").insert(
            id,
            GuestProc {
                home: from,
                home_pid,
                pid: guest.pid(),
                comm: offer.comm,
                stats: stats.clone(),
                arrived: Instant::now(),
                age: offer.age,
                bytes: offer.bytes,
                locked: offer.locked,
                job: offer.job,
                moves: offer.moves,
                tx,
            },
        );
        tracing::info!(from, home_pid, pid = guest.pid(), "guest arrived");
        let link = TcpLink(conn);
        let end = run_remote_counting(guest, &link, &rx, &stats);
        self.guests.lock().expect("guests lock").remove(&id);
        match end {
            RemoteEnd::Lost(why) => tracing::warn!(from, home_pid, "guest killed: {why}"),
            RemoteEnd::Ended {
                lost_pages: Some(why),
            } => tracing::warn!(
                from,
                home_pid,
                "guest ended, but part of its memory never arrived (touching it raises SIGBUS): {why}"
            ),
            e => tracing::info!(from, home_pid, "guest left: {e:?}"),
        }
    }

    /// Receives the image of an accepted offer and starts the guest.
    fn start_guest(&self, conn: &Conn, id: u64, offer: &Arrival, paging: Paging) -> Option<Guest> {
        let image = match conn.recv::<Setup>(Some(Duration::from_secs(30))) {
            Ok(Some(Setup::Image(i))) => i,
            _ => return None,
        };
        let end = Instant::now() + PAGE_LINK_WAIT;
        let pages = loop {
            if let Some(p) = self
                .pages
                .lock()
                .expect("pages lock")
                .get_mut(&id)
                .and_then(|p| p.conn.take())
            {
                break p;
            }
            if Instant::now() > end {
                let _ = conn.send(&Setup::Refuse("the page link never came".into()));
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (uid, gid) = self.guest_ids;
        let guest = match Guest::start(&image, Box::new(RemotePages(pages)), paging, uid, gid) {
            Ok(g) => g,
            Err(e) => {
                let _ = conn.send(&Setup::Refuse(e.to_string()));
                return None;
            }
        };
        if conn.send(&Setup::Started(guest.pid())).is_err() {
            guest.kill();
            return None;
        }
        tracing::debug!(
            from = offer.home,
            home_pid = offer.home_pid,
            "guest started"
        );
        Some(guest)
    }
}

/// What an accepted offer said of the process.
struct Arrival {
    home: NodeId,
    home_pid: i32,
    comm: String,
    bytes: u64,
    age: Duration,
    locked: bool,
    job: JobKind,
    auto: bool,
    moves: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whoever answers at node 2's address (a real link on loopback, holding the key)
    /// but says it is node 3 is refused before anything is sent to it.
    #[test]
    fn a_link_to_a_node_that_answers_as_another_is_refused() {
        use crate::node::Config;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = crate::wire::Key([7; 32]);
        let map = om_map::parse(
            "1 10.0.0.1 1\n2 127.0.0.1 1\n3 10.0.0.3 1\n",
            "test",
            &om_map::NoResolver,
        )
        .unwrap();
        let cfg = Config {
            node: 1,
            port,
            interval: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
            window: 4,
            key: key.clone(),
        };
        let node = Arc::new(Mutex::new(Node::new(cfg, map, "test".into(), 10_000)));
        let m = Migrations::new(node, (65534, 65534));
        for (claim, ok) in [(3, false), (2, true)] {
            let key = key.clone();
            let l = listener.try_clone().unwrap();
            let server = std::thread::spawn(move || {
                let (s, _) = l.accept().unwrap();
                Conn::accept(s, &key, claim).map(|c| c.peer)
            });
            let got = m.connect(2);
            let answered = server.join().unwrap();
            match (got, ok) {
                (Ok(c), true) => {
                    assert_eq!(c.peer, 2);
                    assert_eq!(answered.unwrap(), 1);
                }
                (Err(e), false) => {
                    assert!(e.to_string().contains("hung up"), "{e}");
                    let why = answered.err().unwrap().to_string();
                    assert!(
                        why.contains("asked for node 2 and says it is node 3"),
                        "{why}"
                    );
                }
                (r, _) => panic!("node 2 answering as node {claim}: {:?}", r.map(|c| c.peer)),
            }
        }
    }

    #[test]
    fn balance_users_takes_in_their_processes_but_not_guests() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let me = nix::unistd::getuid().as_raw();
        let mut home = HashMap::new();
        adopt_users(&mut home, &[me], me.wrapping_add(1));
        let taken = home.get(&pid).map(|e| (e.start, e.lock));
        let start = start_time(pid);
        let mut guests = HashMap::new();
        adopt_users(&mut guests, &[me], me);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(taken, start.map(|s| (s, false)));
        assert!(
            !guests.contains_key(&pid),
            "a guest's uid is never taken in"
        );
    }
}
