//! What the cluster benchmarks share: the tools of this build, a C program compiled for
//! them, and a cluster whose nodes all see each other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use omcluster::harness::TestCluster;
use omcluster::{ClusterSpec, DaemonSpec};

/// The directory of this build's tools (omd, mosctl, mosrun, ...).
pub struct Tools(pub PathBuf);

impl Tools {
    /// Checks that we are root and finds the tools next to omcluster.
    pub fn find() -> Result<(Tools, PathBuf)> {
        if !nix::unistd::geteuid().is_root() {
            bail!("run as root (the cluster lives in namespaces)");
        }
        let omcluster = omcluster::omcluster_bin();
        let dir = omcluster
            .parent()
            .context("omcluster's directory")?
            .to_path_buf();
        for tool in ["omd", "mosctl", "mosrun", "migrate"] {
            if !dir.join(tool).is_file() {
                bail!(
                    "{} is missing: build the workspace first (cargo build --release)",
                    dir.join(tool).display()
                );
            }
        }
        Ok((Tools(dir), omcluster))
    }

    pub fn tool(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

/// Compiles the C program `src` (relative to the bench crate) into a fresh directory of
/// /var/tmp, which every node of a cluster without private files sees.
pub fn compile(bench: &str, src: &str, name: &str) -> Result<PathBuf> {
    let work = Path::new("/var/tmp").join(format!("{bench}-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let bin = work.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let st = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .context("running gcc")?;
    if !st.success() {
        bail!("cannot compile {}", src.display());
    }
    Ok(bin)
}

/// Brings up `spec` with this build's omd in every node and waits until every node sees
/// every other.
pub fn cluster(mut spec: ClusterSpec, tools: &Tools, omcluster: &Path) -> Result<TestCluster> {
    let n = spec.nodes.len() as u16;
    spec.daemon = Some(DaemonSpec {
        bin: tools.0.join("omd"),
        args: vec![],
    });
    let c = TestCluster::up_with(&spec, omcluster)?;
    let t = Instant::now();
    for at in 1..=n {
        for node in 1..=n {
            while !c
                .command(at, &tools.tool("mosctl"))
                .args(["isup", &node.to_string()])
                .output()?
                .status
                .success()
            {
                if t.elapsed() > Duration::from_secs(30) {
                    bail!("node {node} never came up at node {at}");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(c)
}
