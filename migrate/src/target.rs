//! The target side of a migration: links to the migration port are admitted,
//! authenticated and checked against the map; an offer is checked, its image received
//! and the process started as a confined guest, which is supervised until it leaves.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use om_ckpt::Paging;
use om_map::NodeId;
use om_proto::JobKind;
use om_remote::guest::Guest;
use om_remote::relay::{run_remote_counting, CallStats, RemoteEnd};

use crate::admit::Startup;
use crate::migrations::{cpu_flags, PageLink, RemotePages, TcpLink, PAGE_LINK_WAIT};
use crate::registry::GuestProc;
use crate::{Conn, Migrations, MoveEvent, Setup};

impl Migrations {
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
        let known = self.cluster.knows(ip);
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
        if self.cluster.blocked() {
            return Err(format!("node {} is blocked (mosctl block)", self.me));
        }
        let avail = self.cluster.mem_available();
        if avail < bytes {
            return Err(format!(
                "not enough memory: it needs {} MiB, node {} has {} MiB available",
                bytes >> 20,
                self.me,
                avail >> 20
            ));
        }
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
        if !at.is_some_and(|ip| self.cluster.speaks_from(from, ip)) {
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
        let Some((guest, uid)) = started else { return };
        let (from, home_pid) = (offer.home, offer.home_pid);
        if offer.auto {
            self.auto_in.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = channel();
        let stats = Arc::new(CallStats::feeding(self.latencies.clone()));
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
                uid,
                tx,
            },
        );
        tracing::info!(from, home_pid, pid = guest.pid(), "guest arrived");
        self.tell(MoveEvent::GuestArrived);
        let link = TcpLink(conn);
        let end = run_remote_counting(guest, &link, &rx, &stats);
        self.guests.lock().expect("guests lock").remove(&id);
        self.release_guest_id(uid);
        self.tell(MoveEvent::GuestLeft);
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

    /// Receives the image of an accepted offer and starts the guest, with the guest id
    /// it runs as.
    fn start_guest(
        &self,
        conn: &Conn,
        id: u64,
        offer: &Arrival,
        paging: Paging,
    ) -> Option<(Guest, u32)> {
        let image = match conn.recv::<Setup>(Some(Duration::from_secs(30))) {
            Ok(Some(Setup::Image(i))) => i,
            _ => return None,
        };
        let got_image = Instant::now();
        let end = got_image + PAGE_LINK_WAIT;
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
        let Some(uid) = self.take_guest_id() else {
            let why = format!(
                "node {} has no guest id left (all of {} are in use)",
                self.me, self.guest_ids
            );
            let _ = conn.send(&Setup::Refuse(why));
            return None;
        };
        let guest = match Guest::start(&image, Box::new(RemotePages(pages)), paging, uid, uid) {
            Ok(g) => g,
            Err(e) => {
                self.release_guest_id(uid);
                let _ = conn.send(&Setup::Refuse(e.to_string()));
                return None;
            }
        };
        if conn.send(&Setup::Started(guest.pid())).is_err() {
            guest.kill();
            self.release_guest_id(uid);
            return None;
        }
        tracing::info!(
            from = offer.home,
            home_pid = offer.home_pid,
            "guest started {} after its image came: {}",
            crate::steps::ms(got_image.elapsed()),
            crate::steps::text(guest.steps())
        );
        Some((guest, uid))
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
