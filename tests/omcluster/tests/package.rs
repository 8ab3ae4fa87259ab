//! The Debian package `scripts/package.sh` builds: its fields and contents, its systemd
//! unit verified by `systemd-analyze verify` with the package's files in place, and a
//! cluster of two nodes (files of their own, no omd of the harness) on each of which the
//! package is installed with `dpkg -i` and the README's "cluster of real machines" steps
//! are followed: the key made on one node and copied to the other, omd started from the
//! package, and a job moved with the packaged tools. Needs root, dpkg-dev and systemd.

use omcluster::harness::TestCluster;
use omcluster::spec::FsSpec;
use omcluster::ClusterSpec;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");
const TOOLS: [&str; 10] = [
    "omcluster",
    "showmap",
    "setpe",
    "omckpt",
    "mosctl",
    "mps",
    "mtop",
    "migrate",
    "mosrun",
    "mosmon",
];

/// A PATH without /usr/local, where a machine may hold the tools installed otherwise.
const ONLY_PACKAGED: &str = "export PATH=/usr/sbin:/usr/bin:/sbin:/bin";

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Builds the package (of the dev build the tests use) and returns its path.
fn build() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    let _ = std::fs::remove_dir_all(&out);
    let said = run(Command::new(checkout().join("scripts/package.sh"))
        .args(["--profile", "dev", "--out"])
        .arg(&out));
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: {said}", out.display()));
    assert!(said.contains(&deb.display().to_string()), "{said}");
    deb
}

#[test]
fn the_package_holds_everything_its_unit_verifies_and_a_cluster_runs_from_it() {
    let deb = build();
    let field = |f: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    assert_eq!(field("Package").trim(), "openmosix");
    assert_eq!(field("Version").trim(), env!("CARGO_PKG_VERSION"));
    assert_eq!(field("Architecture").trim(), "amd64");
    assert!(field("Description").contains("openmosix.map"));
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>="), "Depends: {depends}");

    // Every binary, man page and completion, and the unit.
    let list = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let has = |path: &str| {
        assert!(
            list.lines()
                .any(|l| l.ends_with(path) || l.contains(&format!("{path} -> "))),
            "{path} is not in the package:\n{list}"
        )
    };
    has("./usr/sbin/omd");
    has("./usr/share/man/man8/omd.8.gz");
    has("./lib/systemd/system/omd.service");
    has("./usr/share/doc/openmosix/copyright");
    has("./etc/default/omd");
    for t in TOOLS {
        has(&format!("./usr/bin/{t}"));
        has(&format!("./usr/share/man/man1/{t}.1.gz"));
        has(&format!("./usr/share/bash-completion/completions/{t}"));
        has(&format!("./usr/share/zsh/vendor-completions/_{t}"));
        has(&format!("./usr/share/fish/vendor_completions.d/{t}.fish"));
    }
    for w in ["cpujob", "iojob", "nomig"] {
        has(&format!("./usr/bin/{w}"));
    }
    assert!(
        !list.contains("/usr/local"),
        "a package installs nothing under /usr/local:\n{list}"
    );

    // omd's options file is the operator's: a conffile, kept on upgrades.
    let control = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package/control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles, "/etc/default/omd\n");

    // The unit, with the package's files in place over this machine's /usr (in a mount
    // namespace of its own): systemd-analyze checks its syntax, that ExecStart and
    // ExecReload are executables, and that its Documentation= man pages exist.
    let files = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package/files");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&files));
    let verify = |unit: &str| {
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t overlay overlay -o lowerdir={}/usr:/usr /usr && \
                 systemd-analyze verify {unit} 2>&1",
                files.display()
            ))
            .output()
            .unwrap()
    };
    // The unit is checked where the package put it: /lib is /usr/lib on a merged-/usr
    // machine, so the overlay over /usr does not show the package's ./lib there.
    let v = verify(
        &files
            .join("lib/systemd/system/omd.service")
            .display()
            .to_string(),
    );
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && said.trim().is_empty(), "{said}");
    // The same check refuses a unit whose man page is missing.
    let bad = files.join("bad-omd.service");
    let unit = std::fs::read_to_string(files.join("lib/systemd/system/omd.service")).unwrap();
    std::fs::write(&bad, unit.replace("man:omd(8)", "man:omdd(8)")).unwrap();
    let v = verify(&bad.display().to_string());
    assert!(
        !v.status.success(),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );

    // Two nodes, each installing the package into a /usr and a dpkg database of its own
    // (overlays in a mount namespace), then following the README.
    let mut spec = ClusterSpec::new("t-package", 2, None, None).unwrap();
    spec.fs = FsSpec::private(Some(&checkout()), vec![]);
    let c = TestCluster::up_with(&spec, BIN).unwrap();
    let install = |node: u16, then: &str| {
        let deb_at = c.for_everyone(node, &deb.display().to_string());
        let o = c.sh(
            node,
            &format!(
                "set -e
                 {ONLY_PACKAGED}
                 for d in usr dpkg log; do mkdir -p /tmp/pkg/$d.upper /tmp/pkg/$d.work; done
                 exec unshare -m --propagation private sh -ec '
                   layer() {{ mount -t overlay overlay -o lowerdir=$1,upperdir=/tmp/pkg/$2.upper,workdir=/tmp/pkg/$2.work $1; }}
                   layer /usr usr; layer /var/lib/dpkg dpkg; layer /var/log log
                   dpkg -i {deb_at} > /tmp/pkg/dpkg.out 2>&1 || {{ cat /tmp/pkg/dpkg.out; exit 1; }}
                   {then}'"
            ),
        );
        assert!(o.status.success(), "node {node}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Node 1 makes the key; the operator copies it to node 2.
    install(1, "omd keygen && omd --log /run/omd/omd.log");
    let key = c
        .command(1, "cat")
        .arg("/etc/omd/cluster.key")
        .output()
        .unwrap();
    assert!(key.status.success() && !key.stdout.is_empty(), "{key:?}");
    let mut put = c
        .command(2, "sh")
        .args([
            "-c",
            "install -d -m 700 /etc/omd && umask 077 && cat > /etc/omd/cluster.key",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    put.stdin.take().unwrap().write_all(&key.stdout).unwrap();
    assert!(put.wait().unwrap().success());
    install(2, "omd --log /run/omd/omd.log");

    // The installed tools, in the installed omd's mount namespace.
    let installed = |node: u16, script: &str| {
        c.sh(
            node,
            &format!(
                "{ONLY_PACKAGED}; exec nsenter -m -t \"$(cat /run/omd/omd.pid)\" sh -c '{script}'"
            ),
        )
    };
    let t = Instant::now();
    loop {
        let o = installed(1, "command -v mosctl && mosctl isup 2");
        if o.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).lines().next(),
                Some("/usr/bin/mosctl")
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "node 2 never seen up: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // About a second of work: long enough to be moved once it runs.
    let job = "echo \"scale=1200; 4*a(1)\" | bc -l";
    let native = run(Command::new("sh").args(["-c", job]));
    let o = installed(1, &job.replace("bc -l", "mosrun -2 bc -l"));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), native);
    let o = installed(2, "grep -c \"guest arrived\" /run/omd/omd.log");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1",
        "bc ran at node 2: {o:?}\n{:?}\n{:?}",
        installed(1, "cat /run/omd/omd.log"),
        installed(2, "cat /run/omd/omd.log")
    );
    let o = installed(1, "man -w omd && man -w mosrun");
    assert!(o.status.success(), "man pages installed: {o:?}");
}
