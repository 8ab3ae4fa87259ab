//! This node's migrations: the registry of its processes under migration control and of
//! the guests it runs, as a value ([`Migrations`]) that omd hands to its servers; what
//! it asks of the rest of the cluster is the [`Cluster`] trait. The home side of a move
//! is `home.rs`, the target side `target.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use om_ckpt::{PageError, PageSource};
use om_map::NodeId;
use om_proto::JobKind;
use om_remote::relay::{Command, Link, Msg};

use crate::admit::{Startups, Throttle};
use crate::registry::{
    entry, owner, privileged, refresh, start_time, uids_in_use, GuestIds, GuestProc, HomeProc,
};
use crate::{Conn, MigrateError, Outcome, Setup};

/// Something a migration did, told to the observer of [`Migrations::observe`] (omd's
/// metrics) as it happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MoveEvent {
    /// A process of this node left for another node, frozen for `frozen`.
    Left { frozen: Duration, auto: bool },
    /// A move of a process of this node was asked for and did not happen.
    Failed { auto: bool, reason: &'static str },
    /// All the memory of a process of this node that left is at its node now, `after`
    /// its freeze began: `bytes` left this node's memory.
    AllAway { after: Duration, bytes: u64 },
    /// A process of this node came home.
    CameHome,
    /// A guest arrived here.
    GuestArrived,
    /// A guest left (home, on, or ended).
    GuestLeft,
}

/// The observer of a node's [`MoveEvent`]s.
pub type Observer = Box<dyn Fn(MoveEvent) + Send + Sync>;

/// What the migrations of a node need to know of the cluster and of the node's policy:
/// omd answers from its gossip state, its settings and its balancer.
pub trait Cluster: Send + Sync {
    /// Whether node `n` is in the cluster map.
    fn in_map(&self, n: NodeId) -> bool;
    /// Whether node `n` is up.
    fn is_up(&self, n: NodeId) -> bool;
    /// How many nodes are up, this one included.
    fn up_count(&self) -> usize;
    /// The address of node `n`, from the map.
    fn addr_of(&self, n: NodeId) -> Option<IpAddr>;
    /// Whether some node of the map has address `ip`.
    fn knows(&self, ip: IpAddr) -> bool;
    /// Whether node `n` may speak from address `ip`.
    fn speaks_from(&self, n: NodeId, ip: IpAddr) -> bool;
    /// Whether this node takes no guests (`mosctl block`).
    fn blocked(&self) -> bool;
    /// The memory this node has available for guests, bytes.
    fn mem_available(&self) -> u64;
    /// Where the balancer would place process `pid` of this node (`mosrun` without a
    /// node): `None` keeps it here.
    fn place(&self, m: &Migrations, pid: i32) -> Option<NodeId>;
}

/// This node's migrations.
pub struct Migrations {
    pub(crate) cluster: Box<dyn Cluster>,
    pub(crate) me: NodeId,
    pub(crate) port: u16,
    pub(crate) key: om_wire::Key,
    pub(crate) guest_ids: GuestIds,
    /// The guest ids the guests of this omd hold.
    pub(crate) ids_held: Mutex<std::collections::BTreeSet<u32>>,
    pub(crate) home: Mutex<HashMap<i32, HomeProc>>,
    pub(crate) guests: Mutex<HashMap<u64, GuestProc>>,
    /// Accepted offers waiting for their page link, by migration id.
    pub(crate) pages: Mutex<HashMap<u64, PageLink>>,
    /// What became of links to the migration port.
    pub(crate) links: LinkStats,
    /// Handshakes under way.
    pub(crate) startups: Startups,
    /// Log lines about dropped links.
    pub(crate) drop_log: Throttle,
    /// How processes that were away ended (kept until a waiting request reads it).
    pub(crate) ended: Mutex<HashMap<i32, String>>,
    /// Guests that came here by another node's balancer.
    pub(crate) auto_in: AtomicU64,
    /// The measured link bandwidth to each node, bytes per second.
    pub(crate) bandwidth: Mutex<HashMap<NodeId, f64>>,
    /// Guests arriving now.
    pub(crate) arriving: AtomicUsize,
    /// Users all of whose processes are under migration control (`--balance-users`).
    pub users: Mutex<Vec<u32>>,
    /// Who hears of what moves do.
    pub(crate) observer: Mutex<Option<Observer>>,
    /// How long the forwarded calls of the guests here took.
    pub(crate) latencies: Arc<om_remote::relay::Latencies>,
    /// Memory served to the nodes this node's processes run at, on their request
    /// (lazy pages), bytes.
    pub(crate) served: Arc<AtomicU64>,
}

/// An accepted offer's page link: offered by node `home` at `since`, and once it came,
/// the connection.
pub(crate) struct PageLink {
    pub(crate) home: NodeId,
    pub(crate) since: Instant,
    pub(crate) conn: Option<Conn>,
}

/// How long an accepted offer waits for its page link.
pub(crate) const PAGE_LINK_WAIT: Duration = Duration::from_secs(10);

/// Counts of what became of links to the migration port, for `mosctl status`.
#[derive(Debug, Default)]
pub(crate) struct LinkStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) not_in_map: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) bad_handshake: AtomicU64,
    pub(crate) wrong_node: AtomicU64,
    pub(crate) stray_pages: AtomicU64,
}

impl LinkStats {
    pub(crate) fn get(&self) -> om_proto::LinkCounters {
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

/// The bandwidth assumed before a migration measured one: a gigabit link.
pub const DEFAULT_BANDWIDTH: f64 = 110e6;

/// What became of a process asked to come home.
pub(crate) enum Homecoming {
    Home,
    /// It ended on the way (how, if known).
    Ended(Option<String>),
    TimedOut,
}

pub(crate) struct TcpLink(pub(crate) Conn);

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

/// Most bytes of page requests a node keeps asked for ahead of the replies it has taken.
const READS_IN_FLIGHT: usize = 16 << 20;

/// The home's pages, read over the second connection.
pub(crate) struct RemotePages(pub(crate) Conn);

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

    /// Keeps up to [`READS_IN_FLIGHT`] bytes asked for ahead of the reply being taken:
    /// home reads and sends the next while this node writes the last.
    fn read_each(
        &mut self,
        wanted: &[(u64, usize)],
        got: &mut om_ckpt::pages::PagesGot<'_>,
    ) -> Result<(), PageError> {
        let (mut asked, mut flying) = (0, 0usize);
        for &(addr, len) in wanted {
            while let Some(&(a, n)) = wanted.get(asked) {
                if flying > 0 && flying + n > READS_IN_FLIGHT {
                    break;
                }
                self.0
                    .send(&Setup::Read {
                        addr: a,
                        len: n as u64,
                    })
                    .map_err(|source| PageError::Io { addr: a, source })?;
                flying += n;
                asked += 1;
            }
            let reply = self
                .0
                .recv::<Setup>(Some(Duration::from_secs(30)))
                .map_err(|source| PageError::Io { addr, source })?;
            flying -= len;
            // After an error the replies still on their way are left unread: a restore
            // that fails drops its source, and this link with it.
            match reply {
                Some(Setup::Bytes(b)) if b.len() == len => got(addr, &b)?,
                _ => {
                    return Err(PageError::Io {
                        addr,
                        source: std::io::Error::other("the home node did not send them"),
                    })
                }
            }
        }
        Ok(())
    }

    /// Home answers from the image it sent (the ranges are its own), once it has walked
    /// the frozen original's page tables, which it begins as soon as the image is out.
    fn anon_index(
        &mut self,
        _ranges: &[(u64, u64)],
    ) -> Result<Vec<om_ckpt::image::PageRun>, PageError> {
        let no = |e: std::io::Error| PageError::NoIndex(format!("asking the home node: {e}"));
        self.0.send(&Setup::Index).map_err(no)?;
        match self
            .0
            .recv::<Setup>(Some(Duration::from_secs(60)))
            .map_err(no)?
        {
            Some(Setup::Indexed(Some(runs))) => Ok(runs),
            _ => Err(PageError::NoIndex(
                "the home node could not tell which pages hold data".into(),
            )),
        }
    }

    fn reads_any_address(&self) -> bool {
        true
    }
}

/// The CPU flags of this machine (`/proc/cpuinfo`), read once.
pub(crate) fn cpu_flags() -> &'static [String] {
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

impl Migrations {
    /// Migration state of node `me`, whose omds listen on `port` and hold `key`; the
    /// rest of the cluster as `cluster` sees it; each guest runs as an id of `guest_ids`.
    pub fn new(
        cluster: Box<dyn Cluster>,
        me: NodeId,
        port: u16,
        key: om_wire::Key,
        guest_ids: GuestIds,
    ) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            me,
            port,
            key,
            guest_ids,
            ids_held: Mutex::new(Default::default()),
            observer: Mutex::new(None),
            latencies: Arc::default(),
            served: Arc::default(),
            home: Mutex::new(HashMap::new()),
            guests: Mutex::new(HashMap::new()),
            pages: Mutex::new(HashMap::new()),
            links: LinkStats::default(),
            startups: Startups::default(),
            drop_log: Throttle::new(10, Duration::from_secs(60)),
            ended: Mutex::new(HashMap::new()),
            auto_in: AtomicU64::new(0),
            bandwidth: Mutex::new(HashMap::new()),
            arriving: AtomicUsize::new(0),
            users: Mutex::new(Vec::new()),
        })
    }

    /// An id of [`GuestIds`] for a new guest: one no guest of this omd holds and no
    /// process of the node runs as (all guests share a range of one). `None` when every
    /// id is taken.
    pub(crate) fn take_guest_id(&self) -> Option<u32> {
        let ids = self.guest_ids;
        if ids.shared() {
            return Some(ids.first);
        }
        let others = uids_in_use();
        let mut held = self.ids_held.lock().expect("ids lock");
        let id = (ids.first..=ids.last).find(|i| !held.contains(i) && !others.contains(i))?;
        held.insert(id);
        Some(id)
    }

    /// Gives back a guest id of [`Migrations::take_guest_id`].
    pub(crate) fn release_guest_id(&self, id: u32) {
        self.ids_held.lock().expect("ids lock").remove(&id);
    }

    /// How long the forwarded calls of the guests here took, since omd started.
    pub fn call_latencies(&self) -> om_remote::relay::LatencySnapshot {
        self.latencies.snapshot()
    }

    /// Memory served to the nodes this node's processes run at, on their request (lazy
    /// pages), bytes since omd started.
    pub fn pages_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Tells `observer` of every [`MoveEvent`] from now on.
    pub fn observe(&self, observer: Observer) {
        *self.observer.lock().expect("observer lock") = Some(observer);
    }

    /// Tells the observer of `event`.
    pub(crate) fn tell(&self, event: MoveEvent) {
        if let Some(o) = self.observer.lock().expect("observer lock").as_ref() {
            o(event);
        }
    }

    /// How many processes of this node run at other nodes now (without the refresh and
    /// the movability checks of [`Migrations::controlled`]).
    pub fn away(&self) -> usize {
        let h = self.home.lock().expect("home lock");
        h.iter()
            .filter(|(&pid, e)| e.node != 0 && start_time(pid) == Some(e.start))
            .count()
    }

    /// Guests arriving now.
    pub fn arriving(&self) -> usize {
        self.arriving.load(Ordering::Relaxed)
    }

    /// How many guests came here by another node's balancer.
    pub fn auto_arrivals(&self) -> u64 {
        self.auto_in.load(Ordering::Relaxed)
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
    pub(crate) fn state_at(&self, pid: i32, start: u64) -> Option<HomeProc> {
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
            group: h.group,
        })
    }

    /// Puts `pid` in migration group `group` (0: out of any), for user `uid`; this
    /// also puts it under migration control.
    pub fn set_group(&self, pid: i32, group: u32, uid: u32) -> Outcome {
        self.may_move(pid, uid)?;
        entry(&mut self.home.lock().expect("home lock"), pid).group = group;
        Ok(match group {
            0 => format!("process {pid} is in no group"),
            g => format!("process {pid} is in group {g}"),
        })
    }

    /// The living processes of this node in migration group `group`, by pid.
    pub fn group_members(&self, group: u32) -> Vec<i32> {
        if group == 0 {
            return Vec::new();
        }
        let h = self.home.lock().expect("home lock");
        let mut m: Vec<i32> = h
            .iter()
            .filter(|(&pid, p)| p.group == group && start_time(pid) == Some(p.start))
            .map(|(&pid, _)| pid)
            .collect();
        m.sort_unstable();
        m
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
    pub fn at_home(&self) -> Vec<(i32, HomeProc)> {
        let users = self.users.lock().expect("users lock").clone();
        let mut h = self.home.lock().expect("home lock");
        refresh(&mut h, &users, self.guest_ids);
        h.iter()
            .filter(|(_, e)| e.node == 0 && !e.busy)
            .map(|(&pid, e)| (pid, e.clone()))
            .collect()
    }

    /// Notes why the balancer left `pid` where it is.
    pub fn set_held(&self, pid: i32, why: String) {
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

    pub(crate) fn measured_bandwidth(&self, to: NodeId, bytes: u64, took: Duration) {
        if bytes < 1 << 20 || took.is_zero() {
            return;
        }
        let sample = bytes as f64 / took.as_secs_f64();
        let mut b = self.bandwidth.lock().expect("bandwidth lock");
        let e = b.entry(to).or_insert(sample);
        *e = 0.5 * *e + 0.5 * sample;
    }

    /// Sends guest `pid` (its pid here) home.
    pub fn send_guest_home(&self, pid: i32) -> bool {
        let g = self.guests.lock().expect("guests lock");
        g.values()
            .find(|g| g.pid == pid)
            .is_some_and(|g| g.tx.send(Command::ComeHome).is_ok())
    }

    /// Every process under migration control (forgetting those that ended) and every
    /// guest running here.
    pub fn controlled(&self) -> om_proto::Controlled {
        let pids: Vec<i32> = {
            let mut h = self.home.lock().expect("home lock");
            refresh(&mut h, &[], self.guest_ids);
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
    pub(crate) fn may_move(&self, pid: i32, uid: u32) -> Result<(), MigrateError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use om_ckpt::PageSource;
    use om_wire::Key;
    use std::net::{TcpListener, TcpStream};

    /// A home's page server on loopback that answers each `Read` with `len` bytes of
    /// the address's low byte, but `short` bytes for the request at `lie_at`.
    fn home(lie_at: Option<u64>, short: usize) -> RemotePages {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let c = Conn::accept(s, &Key([7; 32]), 1).unwrap();
            while let Ok(Some(Setup::Read { addr, len })) = c.recv::<Setup>(None) {
                let n = if Some(addr) == lie_at {
                    short
                } else {
                    len as usize
                };
                if c.send(&Setup::Bytes(vec![addr as u8; n])).is_err() {
                    break;
                }
            }
        });
        RemotePages(Conn::open(TcpStream::connect(at).unwrap(), &Key([7; 32]), 2, 1).unwrap())
    }

    #[test]
    fn reads_asked_ahead_come_back_in_order_and_a_short_reply_fails_them() {
        // 40 reads of 1 MiB: more than the 16 MiB kept in flight.
        let wanted: Vec<(u64, usize)> = (0..40u64).map(|i| (i << 20 | i, 1 << 20)).collect();
        let mut seen = Vec::new();
        home(None, 0)
            .read_each(&wanted, &mut |addr, bytes| {
                assert!(bytes.iter().all(|b| *b == addr as u8));
                seen.push((addr, bytes.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, wanted);

        // A home that sends fewer bytes than asked for fails the read there, at once.
        let mut got = 0;
        let e = home(Some(wanted[5].0), 100)
            .read_each(&wanted, &mut |_, _| {
                got += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(got, 5);
        assert!(
            e.to_string().contains(&format!("{:#x}", wanted[5].0)),
            "{e}"
        );
    }
}
