//! Migration in a real 3-node cluster: programs started with mosrun at node 1 move to
//! node 2, node 3, home and out again while they run; their output, exit status and files
//! must equal a native run's, their files must exist at node 1 only, and nothing may be
//! left running anywhere. Needs root.

use omcluster::harness::TestCluster;
use rand::rngs::SmallRng;
use rand::Rng;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

fn cluster(name: &str) -> TestCluster {
    cluster_with_mem(name, None)
}

/// [`cluster`] with the memory limits `mem` (`omcluster up --mem`): 3 nodes with files of
/// their own, as separate machines have.
fn cluster_with_mem(name: &str, mem: Option<&str>) -> TestCluster {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    omcluster::harness::private_cluster(BIN, name, 3, (None, mem), &checkout)
}

/// Where node 1 keeps programs that only it has (its own /var/tmp).
const HOME_ONLY: &str = "/var/tmp/omtest-bin";

/// Test programs, compiled once on the host into the checkout. The nodes see the
/// checkout through overlays of their own, so each is built before a cluster comes up
/// (an overlay need not notice a file made below it later); [`at_home_only`] then gives
/// node 1 a copy that only it has.
fn program(name: &str) -> String {
    om_testprogs::build(
        name,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("migrate-programs"),
    )
    .display()
    .to_string()
}

/// Copies the executable `path` into node 1's [`HOME_ONLY`] directory, which the other
/// nodes lack, and returns the copy's path.
fn at_home_only(c: &TestCluster, path: &str) -> String {
    let name = Path::new(path).file_name().unwrap().to_string_lossy();
    let copy = format!("{HOME_ONLY}/{name}");
    let o = c.sh(1, &format!("mkdir -p {HOME_ONLY} && cp {path} {copy}"));
    assert!(o.status.success(), "copying {path} into node 1: {o:?}");
    for node in [2u16, 3] {
        let there = sh(c, node, &format!("ls {copy} 2>&1"));
        assert!(
            there.contains("No such file"),
            "{copy} at node {node}: {there}"
        );
    }
    copy
}

/// Starts `script` in node 1 (in a fresh directory of its private /tmp) and returns it.
fn start(c: &TestCluster, dir: &str, script: &str) -> Child {
    c.command(1, "sh")
        .arg("-c")
        .arg(format!("mkdir -p {dir} && cd {dir} || exit 1; {script}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (at most two minutes: a hang is a failure, not a stuck suite).
fn finish(mut child: Child) -> (String, String) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the script hung: {}", o.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (o.join().unwrap(), e.join().unwrap())
}

fn sh(c: &TestCluster, node: u16, script: &str) -> String {
    let o = c.sh(node, script);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The pid the script wrote to `dir/pid`, once it is there.
fn pid_of(c: &TestCluster, dir: &str) -> String {
    let start = Instant::now();
    loop {
        let p = sh(c, 1, &format!("cat {dir}/pid 2>/dev/null"))
            .trim()
            .to_string();
        if !p.is_empty() {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `migrate --wait [--eager] PID TO` at node 1: whether it succeeded, and what it said.
fn migrate_how(c: &TestCluster, pid: &str, to: &str, eager: bool) -> (bool, String) {
    let mut cmd = c.command(1, &tool("migrate"));
    cmd.arg("--wait");
    if eager && to != "home" {
        cmd.arg("--eager");
    }
    let o = cmd.args([pid, to]).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Runs test program `prog` natively and with migrations, and compares everything;
/// with `window`, it is moved in its window (prog.h's handshake).
fn compare(c: &TestCluster, prog: &str, window: bool, kind: &Kind<'_>) -> Verdict {
    let bin = at_home_only(c, &program(prog));
    let comm = omcluster::harness::comm_of(&bin);
    try_compare(c, prog, &bin, "cat out", &comm, window, kind)
}

/// A way of moving a program: where `mosrun` sends it, then the hops `migrate` makes
/// while it runs.
struct Kind<'a> {
    name: &'a str,
    /// `mosrun`'s node option.
    first: &'a str,
    hops: &'a [&'a str],
    /// `migrate --eager`: all memory before it runs there.
    eager: bool,
}

/// Every kind of migration the fidelity runner tries: lazy and eager; to a node, on to
/// another, home, and out again.
const KINDS: [Kind<'static>; 2] = [
    Kind {
        name: "lazy 1>2>3>home>2",
        first: "-2",
        hops: &["3", "home", "2"],
        eager: false,
    },
    Kind {
        name: "eager 1>3>2>home",
        first: "-3",
        hops: &["2", "home"],
        eager: true,
    },
];

/// How a program fared under one kind of migration.
enum Verdict {
    Pass,
    /// Every move was refused, for this reason.
    Refused(String),
    Fail(String),
}

/// Runs every program of `progs` through every [`KINDS`], prints the table (program,
/// then per kind: pass, refused with the reason, or FAIL) and panics if any failed or
/// was refused.
fn fidelity(c: &TestCluster, progs: &[(&str, bool)]) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for &(prog, window) in progs {
        let mut cells = Vec::new();
        for kind in &KINDS {
            let cell = match compare(c, prog, window, kind) {
                Verdict::Pass => "pass".to_string(),
                Verdict::Refused(why) => {
                    bad.push(format!("{prog} ({}): refused: {why}", kind.name));
                    format!("refused: {why}")
                }
                Verdict::Fail(why) => {
                    bad.push(format!("{prog} ({}): {why}", kind.name));
                    "FAIL".to_string()
                }
            };
            cells.push(cell);
        }
        rows.push(format!("| {prog} | {} |", cells.join(" | ")));
    }
    let head: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let table = format!(
        "| program | {} |\n|---|{}\n{}\n",
        head.join(" | "),
        "---|".repeat(KINDS.len()),
        rows.join("\n")
    );
    eprintln!("fidelity, each program from a directory only node 1 has:\n{table}");
    assert!(bad.is_empty(), "{}\n{table}", bad.join("\n"));
}

/// Runs the command line `cmd` in node 1 natively and with `mosrun -2` followed by
/// migrations to each of `hops` while it runs, and compares exit status, output (as
/// `show` prints the file `out`) and the files it leaves; its files must be at node 1
/// only, no process named `comm` may be left at any node, and it must have run
/// elsewhere at least once.
fn compare_cmd(c: &TestCluster, tag: &str, cmd: &str, show: &str, comm: &str, hops: &[&str]) {
    let kind = Kind {
        name: "lazy",
        first: "-2",
        hops,
        eager: false,
    };
    match try_compare(c, tag, cmd, show, comm, false, &kind) {
        Verdict::Pass => {}
        Verdict::Refused(why) => panic!("{tag} never ran elsewhere: {why}"),
        Verdict::Fail(why) => panic!("{tag}: {why}"),
    }
}

/// [`compare_cmd`] with moves of `kind`, saying how it went. With `window`, the
/// program gets an `OMTEST_SYNC` directory (prog.h's handshake): the native run finds
/// "go" there from the start, and the moved one is moved once it says "ready" and told
/// "go" after the last hop.
fn try_compare(
    c: &TestCluster,
    tag: &str,
    cmd: &str,
    show: &str,
    comm: &str,
    window: bool,
    kind: &Kind<'_>,
) -> Verdict {
    let list = "ls -lnR . | grep -v '^total' | grep -v ' pid$' | awk '{print $1, $5, $9}'; \
                find . -type f ! -name pid ! -name out -exec sha256sum {} + | sort";
    let how = kind.name.split_whitespace().next().unwrap_or("moved");
    let sync = |run: &str, go: bool| {
        if window {
            let s = format!("/tmp/sync-{run}-{how}-{tag}");
            let go = if go {
                format!("touch {s}/go; ")
            } else {
                String::new()
            };
            (format!("rm -rf {s}; mkdir -p {s}; {go}OMTEST_SYNC={s} "), s)
        } else {
            (String::new(), String::new())
        }
    };
    let (native_sync, _) = sync("native", true);
    let native = start(
        c,
        &format!("/tmp/native-{how}-{tag}"),
        &format!("{native_sync}OMTEST=hello {cmd} > out; echo \"status $?\"; {show}; {list}"),
    );
    let (want, _) = finish(native);
    if !want.contains("status 0") {
        return Verdict::Fail(format!("natively: {want}"));
    }
    let dir = format!("/tmp/moved-{how}-{tag}");
    let (moved_sync, sync_dir) = sync("moved", false);
    let moved = start(
        c,
        &dir,
        &format!(
            "{moved_sync}OMTEST=hello {} {} {cmd} > out & echo $! > pid; wait $!; echo \"status $?\"; {show}; {list}",
            tool("mosrun"),
            kind.first
        ),
    );
    let pid = pid_of(c, &dir);
    let mut log = Vec::new();
    if window {
        let ready = sh(
            c,
            1,
            &format!(
                "for i in $(seq 6000); do [ -e {sync_dir}/ready ] && echo ready && exit; \
                 kill -0 {pid} 2>/dev/null || break; sleep 0.01; done; echo never"
            ),
        );
        log.push(format!("window: {}", ready.trim()));
    }
    for to in kind.hops {
        std::thread::sleep(Duration::from_millis(moment()));
        let (ok, msg) = migrate_how(c, &pid, to, kind.eager);
        log.push(format!("{to}: {ok} {msg}"));
    }
    if window {
        c.sh(1, &format!("touch {sync_dir}/go"));
    }
    let (got, err) = finish(moved);
    if got != want {
        return Verdict::Fail(format!(
            "with migrations ({log:?}) differs; stderr: {err}\nnative:\n{want}\nmoved:\n{got}"
        ));
    }
    // Its files are at node 1 only.
    for node in [2u16, 3] {
        let there = sh(c, node, &format!("ls -A {dir} 2>&1"));
        if !there.contains("No such file") {
            return Verdict::Fail(format!("files at node {node}: {there}"));
        }
    }
    // Nothing left: no guest at any node, nothing of it at home.
    for node in 1..=3u16 {
        let left = sh(
            c,
            node,
            &format!("ps -eo pid,comm | grep -w '{comm}' || true"),
        );
        if !left.trim().is_empty() {
            return Verdict::Fail(format!("left running at node {node}: {left}"));
        }
    }
    if !log.iter().any(|l| l.contains("now runs at node")) {
        let why = match log
            .iter()
            .find(|l| l.contains("cannot move") || l.contains("refused"))
        {
            // Every hop's answer and what home's omd logged of it, so that a refusal can
            // be told from a program that ended.
            Some(l) => format!(
                "{l} (every hop: {log:?}; home's omd: {})",
                sh(
                    c,
                    1,
                    &format!("grep -w 'pid={pid}' /run/omd/omd.log | cut -c12-200")
                )
            ),
            None => format!("it never ran elsewhere: {log:?}; stderr: {err}"),
        };
        return Verdict::Refused(why);
    }
    Verdict::Pass
}

/// Programs nobody here wrote, at work on input that exists only at node 1, moved while
/// they run.
#[test]
fn real_programs_move_between_nodes_and_back() {
    let c = cluster("t-migreal");
    // Each runs from a copy that only node 1 has.
    let bin = |name: &str| at_home_only(&c, &format!("/usr/bin/{name}"));
    let input = "/tmp/real-input";
    let o = c.sh(
        1,
        &format!(
            "mkdir -p {input} && cd {input} && \
             head -c 48M /dev/urandom > big.bin && \
             awk 'BEGIN {{ srand(7); for (i = 0; i < 400000; i++) print int(rand() * 1e9), i }}' > lines.txt && \
             printf '%s\\n' 's = 0' 'for i in range(4000000):' '    s = (s + i * i) % 1000003' 'print(s)' > loop.py && \
             echo 'scale = 1200; 4 * a(1)' > pi.bc"
        ),
    );
    assert!(o.status.success(), "making the input: {o:?}");
    for node in [2u16, 3] {
        assert!(
            sh(&c, node, &format!("ls {input} 2>&1")).contains("No such file"),
            "the input must exist at node 1 only"
        );
    }
    let hops = ["3", "home", "2"];
    let digest = "sha256sum < out";
    #[rustfmt::skip]
    let runs = [
        ("bc", format!("{} -l < {input}/pi.bc", bin("bc")), "cat out"),
        // Four times over: one pass away ends within the first hop's moment.
        ("sha256sum", format!("{} {input}/big.bin {input}/big.bin {input}/big.bin {input}/big.bin", bin("sha256sum")), "cat out"),
        ("gzip", format!("{} -9 < {input}/big.bin", bin("gzip")), digest),
        ("python3", format!("{} {input}/loop.py", bin("python3")), "cat out"),
        ("sort", format!("{} -n --parallel=1 {input}/lines.txt", bin("sort")), digest),
    ];
    for (comm, cmd, show) in &runs {
        compare_cmd(&c, comm, cmd, show, comm, &hops);
    }
}

/// A random pause before a hop (20 to 150 ms), from `OMTEST_SEED` (printed, so that a
/// failing run can be replayed) or the clock.
fn moment() -> u64 {
    static RNG: Mutex<Option<SmallRng>> = Mutex::new(None);
    let mut rng = RNG.lock().unwrap();
    rng.get_or_insert_with(|| om_testprogs::seeded_rng("OMTEST_SEED"))
        .random_range(20..=150)
}

/// Every program of the engine's migration suite that the fidelity runner takes (the
/// manifest, [`om_testprogs::with_programs`]), in two halves that run in parallel.
fn engine_programs() -> Vec<(&'static str, bool)> {
    let mut all = Vec::new();
    macro_rules! take {
        ($name:ident, $args:expr, $stdin:expr, $window:expr) => {
            all.push((stringify!($name), $window));
        };
    }
    om_testprogs::with_programs!(cluster, take);
    all
}

/// One half of [`engine_programs`].
fn engine_half(second: bool) -> Vec<(&'static str, bool)> {
    let all = engine_programs();
    let (a, b) = all.split_at(all.len() / 2);
    if second {
        b.to_vec()
    } else {
        a.to_vec()
    }
}

#[test]
fn engine_programs_move_between_nodes_and_back_1() {
    let progs = engine_half(false);
    for (prog, _) in &progs {
        program(prog);
    }
    let c = cluster("t-mig3a");
    fidelity(&c, &progs);
}

#[test]
fn engine_programs_move_between_nodes_and_back_2() {
    let progs = engine_half(true);
    for (prog, _) in &progs {
        program(prog);
    }
    let c = cluster("t-mig3b");
    fidelity(&c, &progs);
}

/// A program whose shared library node 2 lacks and node 3 holds with other bytes at the
/// same path (built from the same source with other constants) moves 1 -> 2 -> 3 ->
/// home -> 2 and prints what it prints at home: away, it runs on home's library.
#[test]
fn a_library_that_differs_at_another_node_is_taken_from_home() {
    let c = cluster("t-miglib");
    let src = om_testprogs::sources().join("lib");
    let lib = "/opt/omtest";
    let build = |node: u16, flags: &str| {
        let o = c.sh(
            node,
            &format!(
                "mkdir -p {lib} && cd {lib} && \
                 gcc -O1 -shared -fPIC {flags} -o libomtest.so {src}/omlib.c && \
                 gcc -O1 -o uselib {src}/uselib.c -L{lib} -lomtest -Wl,-rpath,{lib}",
                src = src.display()
            ),
        );
        assert!(o.status.success(), "building at node {node}: {o:?}");
    };
    build(1, "");
    build(3, "-DVARIANT");
    assert!(sh(&c, 2, &format!("ls {lib} 2>&1")).contains("No such file"));
    let lib_at = |n| sh(&c, n, &format!("sha256sum {lib}/libomtest.so"));
    assert_ne!(lib_at(1), lib_at(3), "node 3's library has other bytes");
    // Run at node 3 itself, its library prints another banner and other numbers.
    let at3 = sh(&c, 3, &format!("{lib}/uselib | head -1"));
    assert!(at3.contains("VARIANT"), "{at3}");
    compare_cmd(
        &c,
        "uselib",
        &format!("{lib}/uselib"),
        "cat out",
        "uselib",
        &["3", "home", "2"],
    );
}

/// Runs `remote MODE ARGS` with mosrun -2 in node 1; `after` runs (in node 1) once it
/// is at node 2, with `$P` its pid. Returns what the shell printed. The program spins 2 s
/// before it acts: with the default 0.6 s, a busy CI machine once let it finish at node 2
/// before the shell's `mosctl where` polls saw it there.
fn remote(c: &TestCluster, tag: &str, args: &str, after: &str) -> String {
    let bin = program("remote");
    let script = format!(
        "REMOTE_SPIN=2 {} -2 {bin} {args} & P=$!; echo $P > pid; \
         seen=; for i in $(seq 100); do w=$({} where $P 2>&1); seen=\"$seen $w\"; [ \"$w\" = 2 ] && break; sleep 0.02; done; \
         echo \"where $({} where $P)\"; {after}; wait $P; echo \"status $?\"; echo \"where, polled:$seen\" >&2",
        tool("mosrun"),
        tool("mosctl"),
        tool("mosctl"),
    );
    let (o, e) = finish(start(c, &format!("/tmp/{tag}"), &script));
    let mut logs = String::new();
    for n in 1..=3u16 {
        logs += &sh(c, n, "grep -i 'migrate' /run/omd/omd.log || true");
    }
    format!("{o}{e}\n-- omd warnings:\n{logs}")
}

#[test]
fn remote_files_are_home_files_and_signals_reach_the_guest() {
    let c = cluster("t-migsig");
    // A file that exists only in node 2's private /tmp: opened at home, it is not found.
    sh(&c, 2, "echo secret > /tmp/only-at-node2");
    let o = remote(&c, "enoent", "open /tmp/only-at-node2", "true");
    assert!(o.contains("where 2"), "{o}");
    assert!(
        o.contains("open /tmp/only-at-node2: No such file or directory"),
        "{o}"
    );
    assert!(o.contains("status 0"), "{o}");

    // kill -USR1 at home runs the handler at node 2.
    let o = remote(&c, "usr1", "usr1", "sleep 0.8; kill -USR1 $P");
    assert!(o.contains("where 2") && o.contains("handler ran: 1"), "{o}");
    assert!(o.contains("status 0"), "{o}");

    // A signal sent at home while the guest waits for it in a read of a signalfd (the
    // signalfd is at home) is read there.
    let o = remote(&c, "sigfd", "sigfd", "sleep 3; kill -USR1 $P");
    assert!(o.contains("where 2"), "{o}");
    assert!(
        o.contains("read 128: signal 10 from another process\n"),
        "{o}"
    );
    assert!(o.contains("status 0"), "{o}");

    // The exit status reaches the parent shell.
    let o = remote(&c, "exit42", "exit42", "true");
    assert!(o.contains("where 2") && o.contains("status 42"), "{o}");

    // A remote SIGSEGV kills the home process by SIGSEGV (shell status 128 + 11).
    let o = remote(&c, "segv", "segv", "true");
    assert!(o.contains("where 2") && o.contains("status 139"), "{o}");

    // A program that ends before it can move leaves no message behind.
    let (o, e) = finish(start(
        &c,
        "/tmp/short",
        &format!(
            "for i in $(seq 20); do {} -2 true; done; echo done",
            tool("mosrun")
        ),
    ));
    assert_eq!((o.as_str(), e.as_str()), ("done\n", ""), "short programs");

    // kill -9 at home ends it everywhere.
    let o = remote(&c, "kill9", "usr1", "sleep 0.3; kill -9 $P");
    assert!(o.contains("where 2") && o.contains("status 137"), "{o}");
    nothing_left(&c, "remote usr1");
}

/// The shell's half of tests/testprogs/homefile.c's run, started with `$LAUNCH` (empty
/// natively): it makes the files, opens descriptors 3 and 4 for the program, changes the
/// files at home at each of the program's steps, and prints where the program was and
/// where the shell's own offset on `data` stood then.
const HOMEFILE_SHELL: &str = r#"
python3 -c "import sys; sys.stdout.write(''.join(chr(97 + (i * 7 + i // 26) % 26) for i in range(16384)))" > data
head -c 65536 /dev/zero | tr '\0' x > big
: > log
exec 3<data 4>>log
wait_for() { for i in $(seq 6000); do [ -e $1 ] && return; sleep 0.01; done; echo "no $1"; exit 1; }
$LAUNCH $PROG > out & P=$!
wait_for step1
echo "at step1: node $($MOSCTL where $P), shell's offset $(sed -n 's/^pos:[[:space:]]*//p' /proc/$$/fdinfo/3)"
echo "appended at home" >> data; touch go1
wait_for step2; echo home >> log; touch go2
wait_for step3; printf new > big; touch go3
wait $P; echo "status $?"
echo "shell's offset at the end: $(sed -n 's/^pos:[[:space:]]*//p' /proc/$$/fdinfo/3)"
echo "log:"; cat log
echo "program:"; cat out
"#;

/// Reads and writes of home files, which away from home are made on a copy of the
/// process's descriptor (remote's fast path), mean what they mean at home: the offset is
/// the home process's (and so its parent's, with which it shares the open file), a line
/// appended at home is read by the next read away, appends through an `O_APPEND`
/// descriptor interleave with the home shell's without overwriting, and a file truncated
/// at home reads as truncated. The output equals a native run's, except that the home
/// process made none of the reads itself (its /proc/PID/io syscr did not move): they
/// took the fast path.
#[test]
fn home_files_read_and_written_away_keep_their_meaning() {
    let c = cluster("t-fastio");
    let prog = program("homefile");
    let run = |tag: &str, launch: &str| {
        let (o, e) = finish(start(
            &c,
            &format!("/tmp/homefile-{tag}"),
            &format!(
                "LAUNCH='{launch}' PROG={prog} MOSCTL={} HOMEFILE_SPIN=2;                  export HOMEFILE_SPIN; {HOMEFILE_SHELL}",
                tool("mosctl")
            ),
        ));
        format!("{o}{e}")
    };
    let native = run("native", "");
    let away = run("away", &format!("{} -2", tool("mosrun")));
    let reads = |o: &str| -> u64 {
        let n = o
            .lines()
            .find_map(|l| l.strip_prefix("reads made by the home process: "))
            .unwrap_or_else(|| panic!("no count of reads in: {o}"));
        n.trim().parse().unwrap()
    };
    let expect = |node: &str, reads: u64| {
        format!(
            "at step1: node {node}, shell's offset 16384\n\
             status 0\n\
             shell's offset at the end: 16401\n\
             log:\nguest 1\nhome\nguest 2\n\
             program:\n\
             read 4096 bytes in 16-byte reads, offset 4096\n\
             after the end, appended at home: appended at home\n\
             appended twice\n\
             after truncation at home: read 0, size 3, from the start \"new\"\n\
             reads made by the home process: {reads}\n"
        )
    };
    // Natively the process makes every read itself (256 small ones, then more), at home
    // (which `mosctl where` calls node 0).
    assert!(reads(&native) >= 256, "{native}");
    assert_eq!(native, expect("0", reads(&native)), "natively");
    assert_eq!(away, expect("2", 0), "away from home");
    nothing_left(&c, "homefile");
}

/// An ordinary user's program whose executable it may run but not read (mode 0111), and
/// that only the home node has, moves away and comes home again: home takes its pages
/// from the guest rather than re-opening a file the deputy could not read. `migrate
/// --wait` run by that user says where it went, and the program ends as natively.
/// A setuid-root program run by an ordinary user acts as root at home: its owner may
/// not move it (its forwarded calls would run as root at home on a remote node's word),
/// and is told why; root may.
#[test]
fn a_setuid_program_moves_only_when_root_asks() {
    let c = cluster("t-migsuid");
    let bin = at_home_only(&c, &program("remote"));
    let su = format!("{bin}-su");
    let o = c.sh(
        1,
        &format!("cp {bin} {su} && chown root {su} && chmod 4755 {su}"),
    );
    assert!(o.status.success(), "{o:?}");
    let [migrate, mosctl] = ["migrate", "mosctl"].map(|t| c.for_everyone(1, &tool(t)));
    let script = format!(
        "cd /tmp && REMOTE_SPIN=4 {su} exit42 & P=$!; sleep 0.3; \
         grep '^Uid:' /proc/$P/status; echo \"pid $P\"; \
         {migrate} --wait $P 2 2>&1; echo \"where $({mosctl} where $P)\"; wait $P; echo \"status $?\""
    );
    let o = c.sh_as_nobody(1, &script);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let what = format!("{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("Uid:\t65534\t0\t0\t0"),
        "not setuid root: {what}"
    );
    assert!(
        out.contains(
            "runs with privileges its owner lacks (user id 0, owner 65534); only root may move it"
        ),
        "{what}"
    );
    assert!(out.contains("where 0\n"), "{what}");
    assert!(out.contains("status 42\n"), "{what}");
    // Root may.
    let script = format!(
        "cd /tmp && REMOTE_SPIN=4 setpriv --reuid=65534 --regid=65534 --clear-groups {su} exit42 & P=$!; \
         sleep 0.3; {} --wait $P 2; echo \"where $({mosctl} where $P)\"; wait $P; echo \"status $?\"",
        tool("migrate")
    );
    let out = sh(&c, 1, &script);
    assert!(out.contains("where 2\n"), "{out}");
    assert!(out.contains("status 42\n"), "{out}");
}

#[test]
fn an_exec_only_program_of_an_ordinary_user_moves_and_comes_home() {
    let c = cluster("t-migxo");
    let bin = at_home_only(&c, &program("remote"));
    let xo = format!("{bin}-xo");
    let o = c.sh(
        1,
        &format!("cp {bin} {xo} && chmod 0111 {xo} && mkdir -m 1777 /tmp/xo"),
    );
    assert!(o.status.success(), "{o:?}");
    let [mosrun, migrate, mosctl] =
        ["mosrun", "migrate", "mosctl"].map(|t| c.for_everyone(1, &tool(t)));
    let script = format!(
        "cd /tmp/xo && cat {xo} > /dev/null 2>&1 && echo readable; \
         REMOTE_SPIN=4 {mosrun} -2 {xo} exit42 & P=$!; \
         for i in $(seq 200); do [ \"$({mosctl} where $P 2>/dev/null)\" = 2 ] && break; sleep 0.02; done; \
         echo \"where $({mosctl} where $P)\"; {migrate} --wait $P home; \
         echo \"then $({mosctl} where $P)\"; wait $P; echo \"status $?\""
    );
    let o = c.sh_as_nobody(1, &script);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let logs = sh(&c, 1, "grep -i migrat /run/omd/omd.log || true");
    let what = format!("{out}{err}\n-- omd at node 1:\n{logs}");
    assert!(
        !out.contains("readable"),
        "the user can read its 0111 program: {what}"
    );
    assert!(out.contains("where 2\n"), "{what}");
    assert!(out.contains(" is home\n"), "{what}");
    assert!(out.contains("then 0\n"), "{what}");
    assert!(out.contains("status 42\n"), "{what}");
    nothing_left(&c, "remote-xo");
}

/// A parent that reports what `waitpid(WUNTRACED | WCONTINUED)` tells of its child (as
/// a shell with job control sees it), one line each in `events`.
const WATCHING_PARENT: &str = r#"
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
open("pid", "w").write(str(pid))
while True:
    _, st = os.waitpid(pid, os.WUNTRACED | os.WCONTINUED)
    if os.WIFSTOPPED(st): ev = "stopped %d" % os.WSTOPSIG(st)
    elif os.WIFCONTINUED(st): ev = "continued"
    elif os.WIFEXITED(st): ev = "exited %d" % os.WEXITSTATUS(st)
    else: ev = "killed %d" % os.WTERMSIG(st)
    with open("events", "a") as f: f.write(ev + "\n")
    if not (os.WIFSTOPPED(st) or os.WIFCONTINUED(st)): break
"#;

/// A stop and a continue made at the remote node (`kill -STOP`, `kill -CONT` of the
/// guest there) show at home as they would natively: the home process's parent sees it
/// stop and continue, and the program ends as usual.
#[test]
fn a_stop_and_a_continue_at_the_remote_node_show_at_home() {
    let c = cluster("t-migstop");
    let bin = program("remote");
    let comm = omcluster::harness::comm_of(&bin);
    let dir = "/tmp/stopcont";
    let o = c.sh(
        1,
        &format!("mkdir -p {dir} && cat > {dir}/parent.py <<'EOF'\n{WATCHING_PARENT}\nEOF"),
    );
    assert!(o.status.success(), "{o:?}");
    let job = start(
        &c,
        dir,
        &format!(
            "REMOTE_SPIN=10 python3 parent.py {} -2 {bin} exit42",
            tool("mosrun")
        ),
    );
    let pid = pid_of(&c, dir);
    let events = || sh(&c, 1, &format!("cat {dir}/events 2>/dev/null"));
    wait_until("it runs at node 2", || {
        sh(&c, 1, &format!("{} where {pid}", tool("mosctl"))).trim() == "2"
    });
    let guest = sh(&c, 2, &format!("pgrep -x {comm}")).trim().to_string();
    assert!(
        !guest.is_empty() && !guest.contains('\n'),
        "guest at node 2: {guest:?}"
    );
    sh(&c, 2, &format!("kill -STOP {guest}"));
    wait_until("its parent sees it stop", || events() == "stopped 19\n");
    sh(&c, 2, &format!("kill -CONT {guest}"));
    wait_until("its parent sees it continue", || {
        events() == "stopped 19\ncontinued\n"
    });
    let (_, err) = finish(job);
    assert_eq!(events(), "stopped 19\ncontinued\nexited 42\n", "{err}");
    for node in 1..=3u16 {
        let left = sh(&c, node, &format!("pgrep -x {comm} || true"));
        assert!(left.trim().is_empty(), "left at node {node}: {left}");
    }
}

/// A guest that its node's out-of-memory killer ends dies by SIGKILL at home too, and the
/// home node's log says at which node and why (the shell itself shows only "Killed").
#[test]
fn a_guest_killed_for_memory_is_reported_at_home_with_the_reason() {
    let c = cluster_with_mem("t-migoom", Some("1G,192M,1G"));
    let bin = at_home_only(&c, &program("grow"));
    let (o, e) = finish(start(
        &c,
        "/tmp/oom",
        &format!("{} -2 {bin}; echo \"status $?\"", tool("mosrun")),
    ));
    assert!(o.contains("status 137"), "killed: {o}{e}");
    let log = sh(&c, 1, "cat /run/omd/omd.log");
    assert!(
        log.lines()
            .any(|l| l.contains("died at node 2") && l.contains("out-of-memory killer")),
        "the home log says why: {log}"
    );
    let left = sh(&c, 2, "pgrep -x grow || true");
    assert!(left.trim().is_empty(), "left at node 2: {left}");
}

#[test]
fn threads_cannot_move_and_say_why() {
    let c = cluster("t-migthr");
    let bin = program("refuse/threads");
    let script = format!(
        "{} -2 {bin} & P=$!; sleep 0.3; {} --wait $P 3; echo \"migrate $?\"; \
         echo \"where $({} where $P)\"; echo \"cantmove $(cat /run/hpc/$P/cantmove)\"; \
         wait $P; echo \"status $?\"",
        tool("mosrun"),
        tool("migrate"),
        tool("mosctl"),
    );
    let (o, e) = finish(start(&c, "/tmp/threads", &script));
    let all = format!("{o}{e}");
    assert!(all.contains("multi-threaded"), "the reason is given: {all}");
    assert!(o.contains("migrate 1"), "{all}");
    assert!(o.contains("where 0"), "{all}");
    assert!(o.contains("cantmove it is multi-threaded"), "{all}");
    assert!(
        o.contains("threads done") && o.contains("status 0"),
        "it ran on at home: {all}"
    );
}

/// Polls `f` every 50 ms until it holds; panics after 20 s saying `what`.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not within 20 s: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_hpc_tree_shows_locks_and_moves_processes() {
    let c = cluster("t-mighpc");
    let bin = program("remote");
    let dir = "/tmp/hpc";
    let child = start(
        &c,
        dir,
        &format!(
            "{} -h {bin} usr1 & echo $! > pid; wait $!; echo \"status $?\"",
            tool("mosrun")
        ),
    );
    let pid = pid_of(&c, dir);
    let cat = |node: u16, file: &str| {
        sh(&c, node, &format!("cat /run/hpc/{file} 2>&1"))
            .trim()
            .to_string()
    };
    let file = |name: &str| format!("{pid}/{name}");
    wait_until("mosrun's process is listed", || {
        sh(&c, 1, "ls /run/hpc").lines().any(|l| l == pid)
    });
    assert_eq!(cat(1, &file("where")), "0");
    assert_eq!(cat(1, &file("lock")), "1", "mosrun -h locks");
    assert_eq!(cat(1, &file("nmigs")), "0");
    // Each pass of the balancer says why it keeps the process (it said nothing before
    // the first).
    wait_until("the balancer says why it stays", || {
        cat(1, &file("cantmove")) == "locked (no automatic migration)"
    });

    // Another user may neither move nor unlock it.
    for f in ["goto", "lock"] {
        let o = c.sh_as_nobody(1, &format!("echo 0 > /run/hpc/{pid}/{f}"));
        assert!(!o.status.success(), "nobody wrote {f}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
            "{o:?}"
        );
    }

    // Its owner unlocks it and sends it to node 2.
    let o = c.sh(
        1,
        &format!("echo 0 > /run/hpc/{pid}/lock && echo 2 > /run/hpc/{pid}/goto"),
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(cat(1, &file("lock")), "0");
    wait_until("it runs at node 2", || cat(1, &file("where")) == "2");
    assert_eq!(cat(1, &file("nmigs")), "1");
    let guests: Vec<String> = sh(&c, 2, "ls /run/hpc/remote")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(guests.len(), 1, "one guest at node 2: {guests:?}");
    let g = &guests[0];
    assert_eq!(cat(2, &format!("remote/{g}/from")), "1");
    assert_eq!(cat(2, &format!("remote/{g}/homepid")), pid);
    assert_eq!(cat(2, &format!("remote/{g}/comm")), "remote");
    assert_eq!(
        sh(&c, 3, "ls /run/hpc/remote").trim(),
        "",
        "no guest at node 3"
    );

    // It spins at node 2; its home counts the CPU time it uses there (reported about
    // once a second): at least what the guest had used a moment before, and no more
    // than it has used since.
    let guest_ticks = || -> u64 {
        let stat = sh(&c, 2, &format!("cat /proc/{g}/stat"));
        let after_comm = stat.rsplit_once(')').expect("a stat line").1;
        let f: Vec<&str> = after_comm.split_whitespace().collect();
        // utime and stime are fields 14 and 15, the 12th and 13th after the name.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    // (stat's two fields are each rounded down: a tick or two of slack below.)
    let mut before = 0;
    wait_until("the guest has spun for 0.2 s", || {
        before = guest_ticks();
        before >= 20
    });
    let mut away = 0;
    wait_until("home counts the CPU time used at node 2", || {
        let (cpu, a) = mps_ticks(&c, &pid);
        assert!(cpu >= a, "TIME {cpu} ticks < {a} used away");
        away = a;
        a + 2 >= before
    });
    let since = guest_ticks();
    assert!(
        away <= since + 2,
        "home counts {away} ticks, more than the guest used ({since})"
    );

    // And home again.
    assert!(c
        .sh(1, &format!("echo home > /run/hpc/{pid}/goto"))
        .status
        .success());
    wait_until("it is home", || cat(1, &file("where")) == "0");
    assert_eq!(cat(1, &file("nmigs")), "2");
    // Home keeps counting what it used away (and reported as it left).
    let (cpu, a) = mps_ticks(&c, &pid);
    assert!(
        a + 2 >= since && cpu >= a,
        "home forgot the time away: TIME {cpu}, away {a}, guest used at least {since}"
    );
    wait_until("node 2 has no guest", || {
        sh(&c, 2, "ls /run/hpc/remote").trim().is_empty()
    });

    // Any process of the node can be reached by its pid, listed or not.
    assert_eq!(sh(&c, 1, "cat /run/hpc/$$/where").trim(), "0");
    assert!(!sh(&c, 1, "ls /run/hpc").lines().any(|l| l == "1"));

    sh(&c, 1, &format!("kill -USR1 {pid}"));
    let (out, err) = finish(child);
    assert!(
        out.contains("handler ran: 1") && out.contains("status 0"),
        "{out}{err}"
    );
    wait_until("an ended process leaves the tree", || {
        !sh(&c, 1, "ls /run/hpc").lines().any(|l| l == pid)
    });

    // The children of a process under control are under control too (MOSIX), locked as
    // their parent is: a shell script's commands.
    let child = start(
        &c,
        "/tmp/kids",
        &format!(
            "{} -h sh -c 'sleep 30 & echo $! > kid; wait'",
            tool("mosrun")
        ),
    );
    let kid = {
        let start = Instant::now();
        loop {
            let k = sh(&c, 1, "cat /tmp/kids/kid 2>/dev/null")
                .trim()
                .to_string();
            if !k.is_empty() {
                break k;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no child");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_until("the child is listed", || {
        sh(&c, 1, "ls /run/hpc").lines().any(|l| l == kid)
    });
    assert_eq!(cat(1, &format!("{kid}/lock")), "1", "locked as its parent");
    sh(&c, 1, &format!("kill {kid}"));
    let _ = finish(child);
}

/// Process `pid`'s CPU time and the part of it used at other nodes, in clock ticks, as
/// `mps --json` at node 1 shows them.
fn mps_ticks(c: &TestCluster, pid: &str) -> (u64, u64) {
    let out = sh(c, 1, &format!("{} --json {pid}", tool("mps")));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let p = &v["processes"][0];
    let ticks = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("no {k} in {out}"));
    (ticks("cpu_ticks"), ticks("away_ticks"))
}

/// Kills (SIGKILL) the omd of `node`.
fn kill_omd(c: &TestCluster, node: u16) {
    let o = c.sh(node, "kill -9 $(cat /run/omd/omd.pid)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_lost_node_never_leaves_a_process_hanging() {
    let c = cluster("t-miglost");
    let bin = program("remote");
    // The remote node's omd dies: the process ends at home within seconds.
    let script = format!(
        "{} -2 {bin} usr1 & P=$!; for i in $(seq 100); do [ \"$({} where $P 2>/dev/null)\" = 2 ] && break; sleep 0.02; done; \
         echo \"where $({} where $P)\"; date +%s.%N > t0; wait $P; echo \"status $?\"; date +%s.%N > t1",
        tool("mosrun"),
        tool("mosctl"),
        tool("mosctl"),
    );
    let child = start(&c, "/tmp/lost2", &script);
    std::thread::sleep(Duration::from_millis(800));
    kill_omd(&c, 2);
    let t = Instant::now();
    let (o, e) = finish(child);
    assert!(o.contains("where 2"), "{o}{e}");
    assert!(o.contains("status 137"), "ends by SIGKILL at home: {o}{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let left = sh(
        &c,
        2,
        "ps -eo args | grep -v grep | grep 'remote usr1' || true",
    );
    assert!(left.trim().is_empty(), "guest left at node 2: {left}");

    // The home node's omd dies: the guest is gone from the remote node within seconds.
    let script = format!(
        "{} -3 {bin} usr1 & P=$!; for i in $(seq 100); do [ \"$({} where $P 2>/dev/null)\" = 3 ] && break; sleep 0.02; done; \
         echo \"where $({} where $P)\"; wait $P; echo \"status $?\"",
        tool("mosrun"),
        tool("mosctl"),
        tool("mosctl"),
    );
    let child = start(&c, "/tmp/lost1", &script);
    std::thread::sleep(Duration::from_millis(800));
    let guest = sh(
        &c,
        3,
        "ps -eo args | grep -v grep | grep 'remote usr1' || true",
    );
    assert!(!guest.trim().is_empty(), "the guest runs at node 3");
    kill_omd(&c, 1);
    let (o, e) = finish(child);
    assert!(o.contains("where 3"), "{o}{e}");
    gone_within(&c, 3, "remote usr1", Duration::from_secs(5), "the guest");
    let home = sh(
        &c,
        1,
        "ps -eo args | grep -v grep | grep 'remote usr1' || true",
    );
    assert!(
        home.trim().is_empty(),
        "nothing left at home either: {home}"
    );
}

/// A guest that cleared its parent-death signal (forwarded: home's answer changes, the
/// guest's kernel keeps the supervisor's) still dies with the omd of its node, and its
/// home process ends by SIGKILL: nothing runs on unknown to everyone.
#[test]
fn a_guest_that_clears_its_parent_death_signal_still_dies_with_its_omd() {
    let c = cluster("t-migpdeath");
    let bin = program("remote");
    let dir = "/tmp/lost3";
    let script = format!(
        "mkdir -p sync; OMTEST_SYNC={dir}/sync REMOTE_SPIN=0.3 {} -2 {bin} nodeath > out & \
         P=$!; echo $P > pid; wait $P; echo \"status $?\"",
        tool("mosrun"),
    );
    let child = start(&c, dir, &script);
    let pid = pid_of(&c, dir);
    // It clears the signal away: once it is at node 2 and has said ready, it is told go.
    let t = Instant::now();
    while sh(&c, 1, &format!("ls {dir}/sync/ready 2>/dev/null"))
        .trim()
        .is_empty()
        || sh(&c, 1, &format!("{} where {pid}", tool("mosctl"))).trim() != "2"
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never ready at node 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.sh(1, &format!("touch {dir}/sync/go"));
    while !sh(&c, 1, &format!("cat {dir}/out")).contains("cleared") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "it never said cleared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_omd(&c, 2);
    let (o, e) = finish(child);
    assert!(o.contains("status 137"), "ends by SIGKILL at home: {o}{e}");
    gone_within(
        &c,
        2,
        "remote nodeath",
        Duration::from_secs(5),
        "a guest without a parent-death signal",
    );
}

/// Checks that no process whose command line holds `pattern` runs at any of the three
/// nodes.
fn nothing_left(c: &TestCluster, pattern: &str) {
    for node in 1..=3u16 {
        let left = sh(
            c,
            node,
            &format!("ps -eo args | grep -v grep | grep '{pattern}' || true"),
        );
        assert!(left.trim().is_empty(), "left at node {node}: {left}");
    }
}

/// Waits until no process whose command line holds `pattern` runs at node `node`
/// (zombies included), for at most `limit`; `what` names it in the panic.
fn gone_within(c: &TestCluster, node: u16, pattern: &str, limit: Duration, what: &str) {
    let t = Instant::now();
    loop {
        let left = sh(
            c,
            node,
            &format!("ps -eo stat,args | grep -v grep | grep '{pattern}' || true"),
        );
        if left.trim().is_empty() {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "{what} still at node {node} after {limit:?}: {left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What node `node`'s migration port made of its links (`mosctl status --json`).
fn links(c: &TestCluster, node: u16) -> om_proto::LinkCounters {
    let o = c
        .command(node, &tool("mosctl"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "mosctl status at node {node}: {o:?}");
    let s: om_proto::Status = serde_json::from_slice(&o.stdout).unwrap();
    s.links.expect("migration runs in omd")
}

/// A slow-loris flood of the migration port from node 3 (300 connections that trickle a
/// byte every 3 s, and 20 from an address the map does not know) leaves node 2's omd
/// with few descriptors, answering, and taking a migration from node 1; the dropped
/// links are counted where `mosctl status` shows them, and logged at a bounded rate.
#[test]
fn a_flood_of_silent_links_is_bounded_and_migration_goes_on() {
    let c = cluster("t-migflood");
    assert!(
        c.sh(3, "ip addr add 198.18.0.200/24 dev eth0")
            .status
            .success(),
        "a second address at node 3"
    );
    let before = links(&c, 2);
    let flood = r#"
import socket, sys, time
to = ("198.18.0.2", 723)
held = []
for i in range(300):
    held.append(socket.create_connection(to))
for i in range(20):
    s = socket.socket()
    s.bind(("198.18.0.200", 0))
    s.connect(to)
    held.append(s)
print("opened", flush=True)
end = time.time() + 30
while time.time() < end:
    for s in held:
        try:
            s.send(b"o")
        except OSError:
            pass
    time.sleep(3)
"#;
    let mut flood = c
        .command(3, "python3")
        .args(["-c", flood])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(flood.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "opened\n");
    // Counted, not served: all but the few handshakes a source may hold at a time.
    wait_until("the flood counted at node 2", || {
        let l = links(&c, 2);
        l.busy - before.busy >= 280 && l.not_in_map - before.not_in_map >= 20
    });
    let fds = sh(&c, 2, "ls /proc/$(cat /run/omd/omd.pid)/fd | wc -l");
    let fds: usize = fds.trim().parse().unwrap();
    assert!(fds < 120, "omd at node 2 holds {fds} descriptors");
    // Node 1 still moves a process there.
    let o = remote(&c, "flood", "exit42", "true");
    assert!(o.contains("where 2") && o.contains("status 42"), "{o}");
    // The trickling handshakes end at their deadline, as failed handshakes.
    wait_until("the trickling handshakes dropped", || {
        links(&c, 2).bad_handshake - before.bad_handshake >= 8
    });
    let l = links(&c, 2);
    let shown = sh(&c, 2, &format!("{} status", tool("mosctl")));
    assert!(
        shown.contains(&format!("{} refused", l.refused())),
        "{shown}"
    );
    let logged = sh(&c, 2, "grep -c 'migration link from' /run/omd/omd.log");
    let logged: usize = logged.trim().parse().unwrap();
    assert!(logged <= 12, "{logged} log lines for one flood");
    let _ = flood.wait();
}

/// Seconds since `t0` that the script printed as `date +%s.%N` into node 1's `file`.
fn secs_since(c: &TestCluster, t0: f64, file: &str) -> f64 {
    sh(c, 1, &format!("cat {file}"))
        .trim()
        .parse::<f64>()
        .unwrap()
        - t0
}

/// A partition after a move (node 2 cut off the network, nothing sent back): one shorter
/// than the link's limit (`om_migrate::link::PARTITION_LIMIT`, 30 s) is ridden out and
/// the program prints what it prints natively; a longer one ends the process at home
/// (killed, and omd's log says why) and its guest at node 2, each within the limit and
/// some slack, and nothing is left anywhere.
#[test]
fn a_short_partition_is_ridden_out_and_a_long_one_ends_the_process_on_both_sides() {
    let c = cluster("t-migpart");
    let limit = om_migrate::link::PARTITION_LIMIT.as_secs_f64();
    // Short: 6 s cut off while it computes at node 2. Its native run goes on meanwhile.
    let host_spin = program("balance/spin");
    let native = std::thread::spawn({
        let p = host_spin.clone();
        move || std::process::Command::new(p).arg("10").output().unwrap()
    });
    let spin = at_home_only(&c, &host_spin);
    let script = format!(
        "{} -2 {spin} 10 > out & P=$!; echo $P > pid; \
         for i in $(seq 200); do [ \"$({} where $P 2>/dev/null)\" = 2 ] && break; sleep 0.05; done; \
         echo \"where $({} where $P)\"; wait $P; echo \"status $?\"",
        tool("mosrun"),
        tool("mosctl"),
        tool("mosctl"),
    );
    let child = start(&c, "/tmp/part-short", &script);
    let pid = pid_of(&c, "/tmp/part-short");
    let t = Instant::now();
    while sh(&c, 1, &format!("{} where {pid}", tool("mosctl"))).trim() != "2" {
        assert!(t.elapsed() < Duration::from_secs(20), "never at node 2");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.partition(2, true);
    std::thread::sleep(Duration::from_secs(6));
    c.partition(2, false);
    let (o, e) = finish(child);
    assert!(o.contains("where 2") && o.contains("status 0"), "{o}{e}");
    let want = String::from_utf8(native.join().unwrap().stdout).unwrap();
    assert_eq!(sh(&c, 1, "cat /tmp/part-short/out"), want, "as natively");

    // Long: cut off for good (until both sides have given up).
    let bin = program("remote");
    let script = format!(
        "REMOTE_SPIN=600 {} -2 {bin} usr1 & P=$!; \
         for i in $(seq 200); do [ \"$({} where $P 2>/dev/null)\" = 2 ] && break; sleep 0.05; done; \
         echo \"where $({} where $P)\"; date +%s.%N > t0; touch ready; wait $P; echo \"status $?\"; date +%s.%N > t1",
        tool("mosrun"),
        tool("mosctl"),
        tool("mosctl"),
    );
    let child = start(&c, "/tmp/part-long", &script);
    let t = Instant::now();
    while sh(&c, 1, "ls /tmp/part-long/ready 2>/dev/null")
        .trim()
        .is_empty()
    {
        assert!(t.elapsed() < Duration::from_secs(20), "never at node 2");
        std::thread::sleep(Duration::from_millis(50));
    }
    let guest_at_2 = || {
        !sh(
            &c,
            2,
            "ps -eo args | grep -v grep | grep 'remote usr1' || true",
        )
        .trim()
        .is_empty()
    };
    assert!(guest_at_2(), "the guest runs at node 2");
    let cut = sh(&c, 1, "date +%s.%N").trim().parse::<f64>().unwrap();
    c.partition(2, true);
    // The guest at node 2 ends within the limit and some slack.
    gone_within(
        &c,
        2,
        "remote usr1",
        Duration::from_secs_f64(limit + 30.0),
        "the guest cut off",
    );
    let (o, e) = finish(child);
    c.partition(2, false);
    assert!(o.contains("where 2"), "{o}{e}");
    assert!(o.contains("status 137"), "killed at home: {o}{e}");
    let ended = secs_since(&c, cut, "/tmp/part-long/t1");
    assert!(
        ended > limit * 0.5 && ended < limit + 30.0,
        "ended at home {ended:.1} s after the cut (limit {limit} s): {o}{e}"
    );
    let log = sh(&c, 1, "grep -i 'killed' /run/omd/omd.log || true");
    assert!(!log.trim().is_empty(), "omd's log says why: {log}");
    nothing_left(&c, "remote usr1");
}

/// Each guest runs as a user id of its own from omd's guest range (`--guest-ids`), held
/// by no other guest and no process of the node: two guests of node 1 at node 2 have two
/// ids, and a process of node 2 running as nobody (the id every guest had before) can
/// signal neither.
#[test]
fn each_guest_runs_as_an_id_no_other_process_of_the_node_holds() {
    let c = cluster("t-miguid");
    let bin = program("remote");
    let script = format!(
        "for j in 1 2; do REMOTE_SPIN=8 {} -2 {bin} usr1 > out$j & echo $! >> pids; done; \
         for p in $(cat pids); do wait $p; echo \"status $?\"; done",
        tool("mosrun"),
    );
    let child = start(&c, "/tmp/guestids", &script);
    let guests = || -> Vec<(u32, String)> {
        sh(
            &c,
            2,
            "ps -eo uid=,pid=,args= | grep -v grep | grep 'remote usr1' || true",
        )
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.to_string()))
        })
        .collect()
    };
    let t = Instant::now();
    let mut g = guests();
    while g.len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "two guests at node 2: {g:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        g = guests();
    }
    let ids = om_migrate::GuestIds::DEFAULT;
    assert_ne!(g[0].0, g[1].0, "one id each: {g:?}");
    for (uid, pid) in &g {
        assert!(
            ids.contains(*uid),
            "guest {pid} runs as {uid}, outside {ids}"
        );
        let o = c.sh_as_nobody(2, &format!("kill -STOP {pid}"));
        assert!(
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("ermitted"),
            "nobody signalled guest {pid}: {o:?}"
        );
    }
    // They end as they would at home.
    sh(&c, 1, "kill -USR1 $(cat /tmp/guestids/pids)");
    let (o, e) = finish(child);
    assert_eq!(o, "status 0\nstatus 0\n", "{e}");
    nothing_left(&c, "remote usr1");
}

/// A migration group (`mosctl group`, `<pid>/group`): moving one of its processes, by
/// `migrate` or by `goto`, moves the others to the same node; home again, all of them.
/// Their output is the same as without migration, and nothing of them is left.
#[test]
fn the_processes_of_a_group_move_together() {
    let c = cluster("t-miggroup");
    let bin = at_home_only(&c, &program("balance/spin"));
    let native = sh(&c, 1, &format!("{bin} 6"));
    assert!(native.contains("checksum"), "{native}");
    let dir = "/tmp/group";
    // Two jobs, locked so that only what the test asks moves them.
    let child = start(
        &c,
        dir,
        &format!(
            "{m} -h {bin} 6 > a.out & echo $! > a; {m} -h {bin} 6 > b.out & echo $! > b; \
             cat a > pid; wait",
            m = tool("mosrun")
        ),
    );
    let _ = pid_of(&c, dir);
    let a = sh(&c, 1, &format!("cat {dir}/a")).trim().to_string();
    let b = sh(&c, 1, &format!("cat {dir}/b")).trim().to_string();
    let hpc = |pid: &str, f: &str| {
        sh(&c, 1, &format!("cat /run/hpc/{pid}/{f}"))
            .trim()
            .to_string()
    };
    let mosctl = tool("mosctl");
    let o = c
        .command(1, &mosctl)
        .args(["group", "7", &a, &b])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(hpc(&a, "group"), "7");
    assert_eq!(hpc(&b, "group"), "7");
    let listed = sh(&c, 1, &format!("{mosctl} group 7"));
    assert_eq!(listed, format!("{a} 0\n{b} 0\n"), "mosctl group 7");
    // Only its owner may change it.
    let o = c.sh_as_nobody(1, &format!("echo 0 > /run/hpc/{a}/group"));
    assert!(!o.status.success(), "nobody changed the group");

    // migrate one: both go.
    let (ok, said) = migrate_how(&c, &a, "2", false);
    assert!(ok, "{said}");
    assert!(
        said.contains("1 other process(es) of group 7 followed to node 2"),
        "{said}"
    );
    assert_eq!(
        (hpc(&a, "where"), hpc(&b, "where")),
        ("2".into(), "2".into())
    );
    // goto the other: both go on.
    let o = c.sh(1, &format!("echo 3 > /run/hpc/{b}/goto"));
    assert!(o.status.success(), "{o:?}");
    wait_until("both at node 3", || {
        hpc(&a, "where") == "3" && hpc(&b, "where") == "3"
    });
    // Home, together.
    let (ok, said) = migrate_how(&c, &b, "home", false);
    assert!(ok, "{said}");
    assert_eq!(
        (hpc(&a, "where"), hpc(&b, "where")),
        ("0".into(), "0".into())
    );

    let (_, err) = finish(child);
    assert_eq!(sh(&c, 1, &format!("cat {dir}/a.out")), native, "{err}");
    assert_eq!(sh(&c, 1, &format!("cat {dir}/b.out")), native, "{err}");
    nothing_left(&c, &bin);
}
