//! The home side of a migration: a request is checked and resolved to a node, the
//! process captured, offered to the target and its pages served from here; its deputy
//! then runs here until it ends or comes home.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use om_ckpt::image::PageRun;
use om_ckpt::pages::read_for_peer;
use om_ckpt::restore::Laps;
use om_ckpt::{capture_with, ProcessMemory};
use om_map::NodeId;
use om_proto::{JobKind, MigrateTo};
use om_remote::deputy::{leaving_home, IntoDeputy};
use om_remote::relay::{run_home, Command, HomeEnd, Link, Progress};

use crate::migrations::{cpu_flags, Homecoming, TcpLink};
use crate::registry::{self, entry};
use crate::MoveEvent;
use crate::{Conn, MigrateError, Migrations, Outcome, Setup};

impl Migrations {
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
    pub(crate) fn resolve(
        &self,
        target: MigrateTo,
        cur: NodeId,
        pid: i32,
    ) -> Result<NodeId, MigrateError> {
        Ok(match target {
            MigrateTo::Home => 0,
            MigrateTo::Node(n) if n == self.me => 0,
            MigrateTo::Node(n) => {
                if !self.cluster.in_map(n) {
                    return Err(MigrateError::NotInMap(n));
                }
                if !self.cluster.is_up(n) {
                    return Err(MigrateError::Down(n));
                }
                n
            }
            MigrateTo::Balance => {
                if cur == 0 && self.cluster.up_count() < 2 {
                    return Err(MigrateError::NoNodeUp);
                }
                self.cluster.place(self, pid).unwrap_or(0)
            }
        })
    }

    /// Makes this thread the only one moving `pid`, waiting (up to a minute) for a move
    /// under way to finish first.
    pub(crate) fn claim(&self, pid: i32) -> Result<(), MigrateError> {
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
    /// The other processes of its migration group follow it to where it went, one after
    /// the other.
    pub fn carry_out(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        eager: bool,
        auto: bool,
    ) -> Outcome {
        let first = self.carry_out_one(pid, target, eager, auto)?;
        let group = self.state(pid).map_or(0, |h| h.group);
        let others: Vec<i32> = self
            .group_members(group)
            .into_iter()
            .filter(|&m| m != pid)
            .collect();
        if others.is_empty() {
            return Ok(first);
        }
        let at = self.where_is(pid);
        let follow = if at == 0 {
            MigrateTo::Home
        } else {
            MigrateTo::Node(at)
        };
        let mut failed = Vec::new();
        for m in &others {
            if let Err(e) = self.carry_out_one(*m, follow, eager, auto) {
                failed.push(format!("process {m}: {e}"));
            }
        }
        let moved = others.len() - failed.len();
        let mut said = format!(
            "{first}; {moved} other process(es) of group {group} followed to {}",
            self.name(at)
        );
        if !failed.is_empty() {
            said += &format!("; not: {}", failed.join("; "));
        }
        Ok(said)
    }

    fn carry_out_one(
        self: &Arc<Self>,
        pid: i32,
        target: MigrateTo,
        eager: bool,
        auto: bool,
    ) -> Outcome {
        let r = self.claim(pid).and_then(|()| {
            let r = self.carry_out_claimed(pid, target, eager, auto);
            if let Some(e) = self.home.lock().expect("home lock").get_mut(&pid) {
                e.busy = false;
            }
            r
        });
        if let Err(e) = &r {
            self.tell(MoveEvent::Failed {
                auto,
                reason: e.reason(),
            });
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

    /// Asks the home of guest `pid` (its pid here) to send it on to node `to`.
    pub fn send_guest_on(&self, pid: i32, to: NodeId) -> Outcome {
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
    pub(crate) fn move_on(
        self: &Arc<Self>,
        pid: i32,
        from: NodeId,
        to: NodeId,
    ) -> Result<(), MigrateError> {
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
    pub(crate) fn carry_out_in_background(
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

    pub(crate) fn wait_home(&self, pid: i32, secs: u64) -> Homecoming {
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
    pub(crate) fn ended_as(&self, pid: i32, how: String) {
        let mut e = self.ended.lock().expect("ended lock");
        if e.len() >= 64 {
            e.clear();
        }
        e.insert(pid, how);
    }

    pub(crate) fn name(&self, n: NodeId) -> String {
        if n == 0 {
            format!("home (node {})", self.me)
        } else {
            format!("node {n}")
        }
    }

    pub(crate) fn cant(&self, pid: i32, why: MigrateError) -> Outcome {
        let mut h = self.home.lock().expect("home lock");
        entry(&mut h, pid).cantmove = why.to_string();
        Err(why)
    }

    pub(crate) fn connect(&self, to: NodeId) -> Result<Conn, MigrateError> {
        let addr = self
            .cluster
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
    pub(crate) fn go(
        self: Arc<Self>,
        pid: i32,
        to: NodeId,
        eager: bool,
        auto: bool,
        done: Sender<Outcome>,
    ) {
        let age = registry::age(pid);
        // A process of a group is moved with the group, by its home: the target's
        // balancer takes it as locked and leaves it where it is.
        let (locked, job, nmigs) = self.state(pid).map_or((false, JobKind::Any, 0), |h| {
            (h.lock || h.group != 0, h.job, h.nmigs)
        });
        // Everything that does not need it stopped happens first, while it runs: the
        // offer, the target's answer and the page link.
        let io = |source| MigrateError::Link { node: to, source };
        let before = (|| -> Result<(Conn, Conn, u64), MigrateError> {
            let (comm, uid, bytes) = running(pid)?;
            let a = self.connect(to)?;
            a.send(&Setup::Offer {
                pid,
                comm,
                uid,
                bytes,
                cpu_flags: cpu_flags().to_vec(),
                xcr0: om_ckpt::capture::machine_xcr0(),
                eager,
                age_ms: age.map_or(0, |a| a.as_millis() as u64),
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
            Ok((a, b, bytes))
        })();
        let (a, b, bytes) = match before {
            Ok(links) => links,
            Err(why) => {
                let _ = done.send(self.cant(pid, why));
                return;
            }
        };
        // A lazy move lists the anonymous pages after the freeze (see `index` below).
        let opts = om_ckpt::Options {
            anon_index_later: !eager,
            ..leaving_home()
        };
        let frozen = match capture_with(pid, opts) {
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
        // The freeze began after the memory map was read (see `Before`).
        let before = frozen.before();
        let frozen_at = before.frozen_since;
        let mut laps = Laps::since(frozen_at);
        laps.lap("capture");
        tracing::info!(
            pid,
            "before the freeze: {}",
            crate::steps::text(&[
                ("stop", before.stopped),
                (
                    if before.map_kept {
                        "memory map"
                    } else {
                        "memory map (read again frozen)"
                    },
                    before.reading
                ),
            ])
        );
        let captured = frozen.steps().to_vec();
        let image = frozen.image().clone();
        let setup = (|| -> Result<(Conn, u64), MigrateError> {
            let mut mem =
                ProcessMemory::open(pid).map_err(|source| MigrateError::Memory { pid, source })?;
            let served = self.served.clone();
            let (index_tx, index_rx) = channel();
            std::thread::Builder::new()
                .name(format!("om-pages-{pid}"))
                .spawn(move || {
                    let mut index: Option<Receiver<Option<Vec<PageRun>>>> = Some(index_rx);
                    loop {
                        let reply = match b.recv::<Setup>(None) {
                            Ok(Some(Setup::Read { addr, len })) => {
                                let bytes = read_for_peer(&mut mem, addr, len);
                                let n = bytes.len() as u64;
                                served.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                                Setup::Bytes(bytes)
                            }
                            // Asked once, after the process has started there.
                            Ok(Some(Setup::Index)) => {
                                Setup::Indexed(index.take().and_then(|rx| rx.recv().ok()).flatten())
                            }
                            _ => break,
                        };
                        if b.send(&reply).is_err() {
                            break;
                        }
                    }
                })
                .map_err(MigrateError::Thread)?;
            a.send(&Setup::Image(Box::new(image.clone()))).map_err(io)?;
            laps.lap("image sent");
            // The process stays frozen here from now on, its memory as it left: the walk
            // of its page tables that a lazy move left out of the freeze happens now,
            // while the target restores it.
            if image.anon_unlisted {
                let vmas = image.vmas.clone();
                std::thread::Builder::new()
                    .name(format!("om-index-{pid}"))
                    .spawn(move || {
                        let t = Instant::now();
                        let runs = om_ckpt::capture::anon_index(pid, &vmas);
                        match &runs {
                            Ok(r) => tracing::info!(
                                pid,
                                "page index after the freeze: {} ({} runs)",
                                crate::steps::ms(t.elapsed()),
                                r.len()
                            ),
                            Err(e) => tracing::warn!(pid, "page index after the freeze: {e}"),
                        }
                        let _ = index_tx.send(runs.ok());
                    })
                    .map_err(MigrateError::Thread)?;
            }
            match a.recv::<Setup>(Some(Duration::from_secs(60))).map_err(io)? {
                Some(Setup::Started(rpid)) => {
                    laps.lap("started at target");
                    Ok((a, rpid as u64))
                }
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
        tracing::info!(
            pid,
            to,
            "process migrated, frozen {}: {} (capture: {})",
            crate::steps::ms(frozen_at.elapsed()),
            crate::steps::text(&laps.steps),
            crate::steps::text(&captured)
        );
        self.tell(MoveEvent::Left {
            frozen: frozen_at.elapsed(),
            auto,
        });
        let _ = done.send(Ok(format!(
            "process {pid} now runs at node {to} ({} ms frozen; {:.1} MiB of memory, {})",
            frozen_at.elapsed().as_millis(),
            // Unlisted, the image holds only the file pages: the offer's figure is nearer.
            if image.anon_unlisted {
                bytes.max(image.page_bytes())
            } else {
                image.page_bytes()
            } as f64
                / f64::from(1 << 20),
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
                me.tell(MoveEvent::AllAway {
                    after: frozen_at.elapsed(),
                    bytes,
                });
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
                self.tell(MoveEvent::CameHome);
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
}

/// What a running process's offer tells of it, read without stopping it: its name, its
/// owner, and the memory it brings (its resident and swapped anonymous memory; the image
/// made once it is stopped counts its pages exactly).
fn running(pid: i32) -> Result<(String, u32, u64), MigrateError> {
    let cant = |e: procfs::ProcError| MigrateError::Capture {
        pid,
        reason: format!("cannot read /proc/{pid}/status: {e}"),
    };
    let st = procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map_err(cant)?;
    let kib = st.rssanon.unwrap_or(0) + st.vmswap.unwrap_or(0);
    Ok((st.name, st.ruid, kib * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, GuestIds};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};

    /// Node 2 at 127.0.0.1, every other node nowhere.
    struct Loopback;

    impl Cluster for Loopback {
        fn in_map(&self, n: NodeId) -> bool {
            (1..=3).contains(&n)
        }
        fn is_up(&self, _: NodeId) -> bool {
            true
        }
        fn up_count(&self) -> usize {
            3
        }
        fn addr_of(&self, n: NodeId) -> Option<IpAddr> {
            (n == 2).then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        fn knows(&self, ip: IpAddr) -> bool {
            ip.is_loopback()
        }
        fn speaks_from(&self, n: NodeId, ip: IpAddr) -> bool {
            n == 2 && ip.is_loopback()
        }
        fn blocked(&self) -> bool {
            false
        }
        fn mem_available(&self) -> u64 {
            1 << 30
        }
        fn place(&self, _: &Migrations, _: i32) -> Option<NodeId> {
            None
        }
    }

    /// Whoever answers at node 2's address (a real link on loopback, holding the key)
    /// but says it is node 3 is refused before anything is sent to it.
    #[test]
    fn a_link_to_a_node_that_answers_as_another_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = om_wire::Key([7; 32]);
        let m = Migrations::new(Box::new(Loopback), 1, port, key.clone(), GuestIds::DEFAULT);
        assert!(matches!(m.connect(4), Err(MigrateError::NoAddress(4))));
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

    /// A request names the node it is refused for, and what the tools are told.
    #[test]
    fn requests_for_nodes_outside_the_map_or_processes_that_are_not_are_refused() {
        let m = Migrations::new(
            Box::new(Loopback),
            1,
            1,
            om_wire::Key([7; 32]),
            GuestIds::DEFAULT,
        );
        let me = std::process::id() as i32;
        let uid = nix::unistd::getuid().as_raw();
        let e = m
            .request(me, MigrateTo::Node(9), uid, true, false)
            .unwrap_err();
        assert!(matches!(e, MigrateError::NotInMap(9)), "{e}");
        assert_eq!(e.to_string(), "node 9 is not in the cluster map");
        let e = m
            .request(i32::MAX, MigrateTo::Node(2), uid, true, false)
            .unwrap_err();
        assert_eq!(e.kind(), om_proto::ErrorKind::NotFound, "{e}");
        // Pid 1 is root's: no other user may move it.
        let e = m
            .request(1, MigrateTo::Node(2), 12345, true, false)
            .unwrap_err();
        assert_eq!(e.kind(), om_proto::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("belongs to uid 0"), "{e}");
    }
}
