//! Inside a node: its init process, and entering a running node.
//!
//! A node is started in two steps, both by the `omcluster` binary (hidden subcommands):
//! 1. `__node-init CLUSTER N` joins the node's cgroups and network namespace, makes new
//!    mount, UTS and IPC namespaces (private /tmp and /run, an overlay /etc holding the
//!    node's openmosix.map, hostname and hosts; host name `nodeN`; with a private file
//!    system, an overlay of its own on each place users keep files), then a new pid
//!    namespace, starts step 2 in it, reports its pid and exits.
//! 2. `__node-pid1 CLUSTER N` is pid 1 of the node: it mounts the node's /proc and reaps
//!    orphans until it is killed. When it dies the kernel kills everything in the node,
//!    which is how `omcluster down` empties a node.

use crate::cgroup::Cgroups;
use crate::state::{self, NodeState};
use crate::{net, Error};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

pub const INIT_ARG: &str = "__node-init";
/// The node's [`crate::spec::FsSpec`], as JSON in its directory.
pub const FS_FILE: &str = "fs.json";
pub const PID1_ARG: &str = "__node-pid1";

fn fail(node: u16, what: &str, e: impl std::fmt::Display) -> Error {
    Error::NodeStart {
        node,
        reason: format!("{what}: {e}"),
    }
}

/// Step 1 (runs in `omcluster __node-init`): build the node's namespaces, start its pid 1
/// and print pid 1's host pid on standard output.
pub fn init(cluster: &str, node: u16) -> Result<(), Error> {
    Cgroups::detect()?.join(cluster, node, std::process::id())?;
    let netns = Path::new(net::NETNS_DIR).join(net::node_ns(cluster, node));
    let fd = File::open(&netns).map_err(|e| fail(node, &format!("open {}", netns.display()), e))?;
    setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| fail(node, "setns(net)", e))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
        .map_err(|e| fail(node, "unshare(mount, uts, ipc)", e))?;

    // Nothing mounted in the node may leak to the host, and the reverse.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| fail(node, "make / private", e))?;
    // The copies of the host's netns mounts would keep the namespaces of other clusters
    // alive for as long as this node lives.
    let _ = umount2(net::NETNS_DIR, MntFlags::MNT_DETACH);
    let dir = state::node_dir(cluster, node);
    let overlay = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        dir.join("etc.upper").display(),
        dir.join("etc.work").display()
    );
    mount(
        Some("overlay"),
        "/etc",
        Some("overlay"),
        MsFlags::empty(),
        Some(overlay.as_str()),
    )
    .map_err(|e| fail(node, "mount the node's /etc overlay", e))?;
    private_fs(node, &dir)?;
    let tmpfs = |target: &str, mode: &str| {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(mode),
        )
        .map_err(|e| fail(node, &format!("mount tmpfs on {target}"), e))
    };
    tmpfs("/tmp", "mode=1777")?;
    tmpfs("/run", "mode=755")?;
    nix::unistd::sethostname(format!("node{node}")).map_err(|e| fail(node, "sethostname", e))?;

    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| fail(node, "unshare(pid)", e))?;
    // By /proc/self/exe, not by path: the binary may live under a directory that the
    // node's own /tmp or /run now hides.
    let mut child = Command::new("/proc/self/exe")
        .args([PID1_ARG, cluster, &node.to_string()])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(node, "start the node's init from /proc/self/exe", e))?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| fail(node, "wait for the node's init", e))?;
    if line.trim() != "ready" {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(fail(node, "the node's init did not start", status));
    }
    println!("{}", child.id());
    Ok(())
}

fn bind(node: u16, from: &Path, to: &Path) -> Result<(), Error> {
    mount(
        Some(from),
        to,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        fail(
            node,
            &format!("bind {} on {}", from.display(), to.display()),
            e,
        )
    })
}

/// Gives the node its own view of the private directories of its [`crate::spec::FsSpec`]
/// (an overlay each, its upper layer in the node's directory `dir`), keeping the shared
/// ones shared: each is bound aside first, then back over its private view.
fn private_fs(node: u16, dir: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(dir.join(FS_FILE)).unwrap_or_default();
    let spec: crate::spec::FsSpec = serde_json::from_str(&text).unwrap_or_default();
    if spec.private.is_empty() {
        return Ok(());
    }
    let shared: Vec<_> = spec.shared.iter().filter(|d| d.is_dir()).collect();
    let aside = |i: usize| dir.join(format!("shared.{i}"));
    for (i, d) in shared.iter().enumerate() {
        std::fs::create_dir_all(aside(i)).map_err(|e| fail(node, "create a mount point", e))?;
        bind(node, d, &aside(i))?;
    }
    for (i, d) in spec.private.iter().filter(|d| d.is_dir()).enumerate() {
        let (upper, work) = (
            dir.join(format!("fs.{i}.upper")),
            dir.join(format!("fs.{i}.work")),
        );
        for p in [&upper, &work] {
            std::fs::create_dir_all(p).map_err(|e| fail(node, "create an overlay layer", e))?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            d.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            d.as_path(),
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| fail(node, &format!("mount the node's own {}", d.display()), e))?;
    }
    for (i, d) in shared.iter().enumerate() {
        bind(node, &aside(i), d)?;
    }
    Ok(())
}

/// Step 2 (runs in `omcluster __node-pid1`, as pid 1 of the node's pid namespace).
pub fn pid1(node: u16) -> Result<(), Error> {
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| fail(node, "mount the node's /proc", e))?;
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| fail(node, "block signals", e))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")
        .and_then(|_| stdout.flush())
        .map_err(|e| fail(node, "report ready", e))?;
    // Signals sent from inside the node never reach pid 1 (the kernel drops signals to a
    // namespace's init that it does not handle); from the host they end the node.
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(_) => return Ok(()),
            Err(_) => continue,
        }
    }
}

/// Moves the calling process into a running node: its cgroups and all of its namespaces.
/// Children started afterwards are inside the node (pid namespaces apply to children).
/// The caller must be single-threaded (the kernel refuses to change the mount namespace
/// of a multi-threaded process).
pub fn enter(cgroups: &Cgroups, cluster: &str, n: &NodeState) -> Result<(), Error> {
    let enter_err = |reason: String| Error::Enter {
        node: n.node,
        reason,
    };
    if !state::is_same_process(n.init_pid, n.init_start) {
        return Err(Error::NodeDown {
            cluster: cluster.to_string(),
            node: n.node,
            pid: n.init_pid,
        });
    }
    // Open every namespace before entering any: once in the node's mount namespace,
    // /proc is the node's and the host pid no longer names the init.
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut files = Vec::new();
    for (name, flag) in kinds {
        let path = format!("/proc/{}/ns/{name}", n.init_pid);
        let f = File::open(&path).map_err(|e| enter_err(format!("open {path}: {e}")))?;
        files.push((name, flag, f));
    }
    let cwd = std::env::current_dir().ok();
    cgroups.join(cluster, n.node, std::process::id())?;
    for (name, flag, f) in &files {
        setns(f, *flag).map_err(|e| enter_err(format!("setns({name}): {e}")))?;
    }
    // Keep the caller's directory when the node has it (it shares the host's files
    // outside /tmp, /run and /etc), else start at /.
    if cwd
        .map(std::env::set_current_dir)
        .is_none_or(|r| r.is_err())
    {
        let _ = std::env::set_current_dir("/");
    }
    Ok(())
}
