//! The test harness: a cluster that is torn down when it goes out of scope, also when the
//! test panics. Tests use exactly the code `omcluster` uses.

use crate::{cluster, ClusterSpec, ClusterState, Error};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};

/// A running cluster owned by a test. Dropping it removes the cluster.
pub struct TestCluster {
    pub state: ClusterState,
    bin: PathBuf,
}

impl TestCluster {
    /// Brings up `spec` with the omcluster binary `bin`. Leftovers of a crashed earlier
    /// run with the same name are removed first.
    pub fn up_with(spec: &ClusterSpec, bin: impl Into<PathBuf>) -> Result<Self, Error> {
        let bin = bin.into();
        // A crashed earlier run of this test may have left a cluster of this name behind.
        if crate::cluster_names().contains(&spec.name) {
            cluster::down(&spec.name)?;
        }
        let state = cluster::up(spec, &bin)?;
        Ok(Self { state, bin })
    }

    /// Like [`TestCluster::up_with`], with the binary found by [`crate::omcluster_bin`].
    pub fn up(spec: &ClusterSpec) -> Result<Self, Error> {
        Self::up_with(spec, crate::omcluster_bin())
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Cuts node `node` off the cluster network (`cut`), or joins it again: its port of
    /// the bridge goes down, so that whatever it sends or is sent is lost without a word,
    /// as in a partition (no reset, no unreachable).
    pub fn partition(&self, node: u16, cut: bool) {
        let br = crate::net::bridge_ns(self.name());
        let veth = format!("veth{node}");
        let state = if cut { "down" } else { "up" };
        crate::net::ip(&["-n", &br, "link", "set", &veth, state])
            .unwrap_or_else(|e| panic!("setting node {node}'s link {state}: {e}"));
    }

    /// A copy of the executable `path` in `node`'s own /tmp that any user can run: a
    /// checkout may lie where only root may enter (a clone in /root, mode 0700), and
    /// tests also run tools as an ordinary user. Returns the copy's path in the node.
    pub fn for_everyone(&self, node: u16, path: &str) -> String {
        let name = std::path::Path::new(path)
            .file_name()
            .expect("a file")
            .to_string_lossy();
        let copy = format!("/tmp/om-for-everyone/{name}");
        let o = self.sh(
            node,
            &format!(
                "mkdir -p -m 755 /tmp/om-for-everyone && cp {path} {copy} && chmod 755 {copy}"
            ),
        );
        assert!(o.status.success(), "copying {path} into node {node}: {o:?}");
        copy
    }

    /// A command that runs `program` inside `node` (via `omcluster exec`).
    pub fn command(&self, node: u16, program: &str) -> Command {
        let mut c = Command::new(&self.bin);
        c.args([
            "exec",
            "--name",
            self.name(),
            &node.to_string(),
            "--",
            program,
        ]);
        c
    }

    /// Runs a shell script inside `node` and returns its output.
    pub fn sh(&self, node: u16, script: &str) -> Output {
        self.command(node, "sh")
            .args(["-c", script])
            .output()
            .expect("run omcluster exec")
    }

    /// Runs a shell script inside `node` as the ordinary user nobody (uid and gid
    /// 65534, no other groups) and returns its output.
    pub fn sh_as_nobody(&self, node: u16, script: &str) -> Output {
        self.command(node, "setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                script,
            ])
            .output()
            .expect("run omcluster exec")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Err(e) = cluster::down(self.name()) {
            eprintln!("omcluster harness: teardown of {} failed: {e}", self.name());
        }
    }
}

/// Sends SIGTERM to `child`, a command started with [`TestCluster::command`] (`omcluster
/// exec` passes the signal on to the program), and waits for it to end.
pub fn terminate(child: &mut Child) -> ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM to a child of the test");
    child.wait().expect("wait for a child of the test")
}

/// A binary of the workspace, built beside `omcluster` (`omcluster_bin`): its path, or a
/// panic saying to build the workspace first.
pub fn workspace_tool(omcluster_bin: &str, name: &str) -> String {
    let p = std::path::Path::new(omcluster_bin)
        .parent()
        .expect("omcluster lives in a directory")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first",
        p.display()
    );
    p.display().to_string()
}

/// A tmux server of a test's own (its socket named `socket`), for tests that need a real
/// terminal; killed when dropped, also when the test panics.
pub struct Tmux {
    socket: &'static str,
}

impl Tmux {
    /// Kills whatever server an earlier run left on `socket`, and returns the handle.
    pub fn new(socket: &'static str) -> Tmux {
        let t = Tmux { socket };
        t.run(&["kill-server"]);
        t
    }

    /// Runs `tmux ARGS` on this server and returns its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        tmux(self.socket, args)
    }
}

/// Runs `tmux -L SOCKET ARGS` and returns its standard output.
pub fn tmux(socket: &str, args: &[&str]) -> String {
    let o = Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux is installed (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// A cluster of `n` nodes (`cpu`, `mem`: `omcluster up`'s lists) whose nodes have files
/// of their own, the checkout `checkout` included, each running the omd `omd`; returned
/// once every node sees every other (at most 20 s, else a panic).
pub fn private_cluster(
    omcluster: &str,
    name: &str,
    n: usize,
    (cpu, mem): (Option<&str>, Option<&str>),
    checkout: &std::path::Path,
) -> TestCluster {
    private_cluster_with(omcluster, name, n, (cpu, mem), checkout, &[])
}

/// [`private_cluster`], every omd started with the extra arguments `omd_args`.
pub fn private_cluster_with(
    omcluster: &str,
    name: &str,
    n: usize,
    (cpu, mem): (Option<&str>, Option<&str>),
    checkout: &std::path::Path,
    omd_args: &[&str],
) -> TestCluster {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cluster tests must run as root"
    );
    let mut spec = ClusterSpec::new(name, n, cpu, mem).unwrap();
    spec.fs = crate::spec::FsSpec::private(Some(checkout), vec![]);
    // The default --down-after (10 s): with 4 s, a node busy with several moving
    // programs was now and then seen down by its peers, and moves were refused.
    spec.daemon = Some(crate::DaemonSpec {
        bin: PathBuf::from(workspace_tool(omcluster, "omd")),
        args: omd_args.iter().map(|a| a.to_string()).collect(),
    });
    up_and_all_seen(&spec, omcluster)
}

/// The cluster `spec` (whose nodes run omd), returned once every node sees every other
/// (at most 20 s, else a panic).
pub fn up_and_all_seen(spec: &ClusterSpec, omcluster: &str) -> TestCluster {
    let (name, n) = (&spec.name, spec.nodes.len());
    let c = TestCluster::up_with(spec, omcluster)
        .unwrap_or_else(|e| panic!("omcluster up {name}: {e}"));
    let mosctl = workspace_tool(omcluster, "mosctl");
    let start = std::time::Instant::now();
    for at in 1..=n as u16 {
        for node in 1..=n as u16 {
            while !c
                .command(at, &mosctl)
                .args(["isup", &node.to_string()])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(20),
                    "node {node} not up at node {at}"
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
    c
}

/// The name the kernel gives a process running the executable `path` (`comm`: its file
/// name, cut to 15 bytes).
pub fn comm_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default()
}
