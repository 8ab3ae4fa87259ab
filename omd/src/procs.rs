//! The processes of this node, for `mps` and `mtop`.

use om_proto::Process;
use procfs::Current;
use std::collections::HashMap;
use std::time::Duration;

/// Every process visible in this node's /proc, with where each runs. Processes that end
/// while being read are left out.
pub fn list(migrations: Option<&crate::migrate::Migrations>) -> Vec<Process> {
    let tps = procfs::ticks_per_second();
    let page = procfs::page_size();
    let mut users = HashMap::new();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut out: Vec<Process> = all
        .flatten()
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            let uid = p.uid().ok()?;
            let cmdline = p.cmdline().map(|c| c.join(" ")).unwrap_or_default();
            let user = users.entry(uid).or_insert_with(|| user_name(uid)).clone();
            let (node, away) = migrations.map_or((0, Duration::ZERO), |m| {
                m.where_and_away_cpu(stat.pid, stat.starttime)
            });
            let away_ticks = (away.as_secs_f64() * tps as f64) as u64;
            Some(Process {
                pid: stat.pid,
                ppid: stat.ppid,
                uid,
                user,
                state: stat.state.to_string(),
                tty: tty_name(stat.tty_nr()),
                cpu_ticks: stat.utime + stat.stime + away_ticks,
                away_ticks,
                ticks_per_second: tps,
                rss: stat.rss * page,
                nice: stat.nice,
                threads: stat.num_threads,
                comm: stat.comm,
                cmdline,
                node,
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// ps's name for a terminal device number.
fn tty_name((major, minor): (i32, i32)) -> String {
    match major {
        0 => "?".into(),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        _ => format!("{major}:{minor}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_this_test_process() {
        let me = std::process::id() as i32;
        let all = super::list(None);
        let p = all
            .iter()
            .find(|p| p.pid == me)
            .expect("own process listed");
        assert_eq!(p.node, 0);
        assert!(p.threads >= 1);
        assert_eq!(p.uid, nix::unistd::getuid().as_raw());
        assert_eq!(super::tty_name((136, 3)), "pts/3");
        assert_eq!(super::tty_name((0, 0)), "?");
    }
}

/// What the balancer measures of one process, read from /proc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Start time, clock ticks after boot (tells it from a later process with its pid).
    pub start: u64,
    /// Time its threads have spent running or ready to run, in all.
    pub runnable: Duration,
    /// Read and write calls it has made (`/proc/PID/io` syscr + syscw).
    pub rw_calls: u64,
    /// Resident memory, bytes.
    pub rss: u64,
    /// How long it has existed.
    pub age: Duration,
}

/// [`Usage`] of process `pid`, if it exists (and is not a zombie).
pub fn usage(pid: i32) -> Option<Usage> {
    let p = procfs::process::Process::new(pid).ok()?;
    let stat = p.stat().ok()?;
    if stat.state == 'Z' || stat.state == 'X' {
        return None;
    }
    let mut runnable = Duration::ZERO;
    for t in p.tasks().ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{}/schedstat", t.tid))
        else {
            continue;
        };
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (run, wait) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        runnable += Duration::from_nanos(run.saturating_add(wait));
    }
    let rw_calls = p.io().map_or(0, |io| io.syscr + io.syscw);
    let tps = procfs::ticks_per_second().max(1);
    let boot = procfs::Uptime::current().map_or(0.0, |u| u.uptime);
    let started = stat.starttime as f64 / tps as f64;
    Some(Usage {
        start: stat.starttime,
        runnable,
        rw_calls,
        rss: stat.rss * procfs::page_size(),
        age: Duration::from_secs_f64((boot - started).max(0.0)),
    })
}
