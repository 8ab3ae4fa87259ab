//! The processes of a node under migration control and the guests it runs: who they
//! are (a pid and its start time), whose they are, and which processes join them (the
//! descendants of controlled processes, every process of the `--balance-users`).

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use om_map::NodeId;
use om_proto::JobKind;
use om_remote::relay::{CallStats, Command};

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
    /// Its migration group (`mosctl group`, `<root>/<pid>/group`; 0: none): the
    /// processes of a group move together.
    pub group: u32,
    /// Why the balancer did not move it at its last decision.
    pub held: String,
    /// When it last came home, if it has been away.
    pub home_since: Option<Instant>,
    /// Its start time (clock ticks after boot), which tells it from a later process that
    /// got the same pid.
    pub(crate) start: u64,
    pub(crate) tx: Option<Sender<Command>>,
}

/// The start time of process `pid`, if it exists.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
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
pub(crate) fn refresh(home: &mut HashMap<i32, HomeProc>, users: &[u32], guests: GuestIds) {
    home.retain(|&pid, e| start_time(pid) == Some(e.start));
    adopt_users(home, users, guests);
    adopt_descendants(home);
}

/// Puts every process of the users `users` under migration control (`--balance-users`),
/// except guests (which run as ids of `guests`).
pub(crate) fn adopt_users(home: &mut HashMap<i32, HomeProc>, users: &[u32], guests: GuestIds) {
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
        if users.contains(&status.ruid) && !guests.contains(status.ruid) {
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
pub(crate) fn entry(home: &mut HashMap<i32, HomeProc>, pid: i32) -> &mut HomeProc {
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

/// The user and group ids guests run as: each guest takes one of `first..=last` as its
/// uid and gid, held by no other guest and no process of the node, so that nothing at
/// the node (a process running as nobody, another guest) can signal or trace it. A range
/// of one id is shared by every guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestIds {
    pub first: u32,
    pub last: u32,
}

impl GuestIds {
    /// 65,536 ids at the start of the range systemd leaves unused (1879048192 to
    /// 2147483647: above the container ranges, below the ids that tools read as
    /// negative), where no user and no subordinate id range lives.
    pub const DEFAULT: GuestIds = GuestIds {
        first: 1_879_048_192,
        last: 1_879_048_192 + 65_535,
    };

    /// Every guest as `id`.
    pub const fn one(id: u32) -> GuestIds {
        GuestIds {
            first: id,
            last: id,
        }
    }

    /// Whether `id` is one of them.
    pub fn contains(&self, id: u32) -> bool {
        (self.first..=self.last).contains(&id)
    }

    /// Whether every guest shares one id.
    pub fn shared(&self) -> bool {
        self.first == self.last
    }
}

impl std::fmt::Display for GuestIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.shared() {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl std::str::FromStr for GuestIds {
    type Err = String;

    /// `FIRST-LAST`, or one id.
    fn from_str(s: &str) -> Result<Self, String> {
        let id = |t: &str| {
            t.trim().parse::<u32>().map_err(|_| {
                format!("{t:?} in {s:?} is not a user id (a number from 0 to 4294967294)")
            })
        };
        let ids = match s.split_once('-') {
            Some((a, b)) => GuestIds {
                first: id(a)?,
                last: id(b)?,
            },
            None => GuestIds::one(id(s)?),
        };
        if ids.first > ids.last {
            return Err(format!("{s:?}: the first id is larger than the last"));
        }
        if ids.first == 0 || ids.last == u32::MAX {
            return Err(format!(
                "{s:?}: guests may not run as root (0) or as the invalid id 4294967295"
            ));
        }
        Ok(ids)
    }
}

/// The real uids of every process of the node.
pub(crate) fn uids_in_use() -> std::collections::HashSet<u32> {
    procfs::process::all_processes()
        .map(|all| {
            all.flatten()
                .filter_map(|p| p.status().ok())
                .flat_map(|s| [s.ruid, s.euid, s.suid])
                .collect()
        })
        .unwrap_or_default()
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
    /// The uid (and gid) it runs as.
    pub uid: u32,
    pub(crate) tx: Sender<Command>,
}

/// What a process with `status` may do that its owner (its real uid) may not: another
/// effective, saved or filesystem uid or gid (a setuid or setgid program), or
/// capabilities (for an owner other than root). None for an ordinary process.
pub(crate) fn privileged(status: &procfs::process::Status) -> Option<String> {
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
pub fn owner(pid: i32) -> Option<u32> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map(|s| s.ruid)
        .ok()
}

/// How long process `pid` has run, if it exists.
pub(crate) fn age(pid: i32) -> Option<Duration> {
    let started = start_time(pid)? as f64 / procfs::ticks_per_second().max(1) as f64;
    let boot = <procfs::Uptime as procfs::Current>::current().ok()?.uptime;
    Some(Duration::from_secs_f64((boot - started).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ids_parse_and_name_what_is_wrong() {
        assert_eq!(
            "100-199".parse(),
            Ok(GuestIds {
                first: 100,
                last: 199
            })
        );
        assert_eq!("65534".parse(), Ok(GuestIds::one(65534)));
        assert_eq!(GuestIds::DEFAULT.to_string().parse(), Ok(GuestIds::DEFAULT));
        for (bad, says) in [
            ("200-100", "larger"),
            ("0-10", "root"),
            ("x-10", "\"x\""),
            ("10-", "\"\""),
            ("4294967296", "not a user id"),
        ] {
            let e = bad.parse::<GuestIds>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(GuestIds::DEFAULT.contains(1_879_048_192 + 7));
        assert!(!GuestIds::DEFAULT.contains(65534));
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
        let other = me.wrapping_add(1);
        adopt_users(&mut home, &[me], GuestIds::one(other));
        let taken = home.get(&pid).map(|e| (e.start, e.lock));
        let start = start_time(pid);
        let mut guests = HashMap::new();
        adopt_users(&mut guests, &[me], GuestIds::one(me));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(taken, start.map(|s| (s, false)));
        assert!(
            !guests.contains_key(&pid),
            "a guest's uid is never taken in"
        );
    }
}
