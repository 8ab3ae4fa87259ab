//! mig-bench: what migration costs, measured in a 2-node omcluster on this machine.
//!
//! 1. Moving a process that has filled 64 MiB or 1 GiB of memory from node 1 to node 2,
//!    lazy and eager: how long it was frozen (omd's figure: from stopping it at home to
//!    its running at node 2), how long `migrate --wait` took, how long the process then
//!    took to read one byte of every page at node 2 (lazy: pages it has not got yet come
//!    from home on first touch), and the total until it had all its memory at node 2.
//!    Beside each, the limit: its memory at the link's TCP bandwidth. Then where the
//!    freeze went, step by step, as both nodes' omd logged it: the capture's steps at home
//!    (stop, memory map, page index, ...), the image's sending, and the target's restore
//!    steps, which make up "started at target". The same for a process with 20,000
//!    mappings of one page each (`--vmas`), whose limit is its 80 MB at TCP speed.
//! 2. The cost of a forwarded system call: `getppid()`, `write()` and `pread()` of 4 KiB
//!    on a file at home, `stat()` of it, `open()` + `close()` of it, at home (native) and
//!    from node 2, beside the limit of one round trip + 20 µs; then sequential 4 KiB and
//!    64 KiB writes and reads of a home file (256 MiB), at home and from node 2.
//! 3. A CPU-bound loop at home and at node 2: its wall and CPU time.
//! 4. The cost of the link's encryption on the page stream: 1 GiB of page replies
//!    (4 MiB frames, as the page server sends them) through an encrypted link over
//!    loopback, next to the same bytes through plain TCP on the same loopback.
//!
//! First the anchors, measured in the same run: the ping round trip and the TCP bandwidth
//! from node 1 to node 2, and memcpy's bandwidth. Every figure is the median of `--runs`
//! runs (3). Build the workspace in release mode first, then run as root:
//! `cargo build --release && target/release/mig-bench [--sizes 64,1024,4096] [--runs 5]`.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use omcluster::harness::TestCluster;
use omcluster::ClusterSpec;

/// Measure migration between two nodes of an omcluster.
#[derive(Parser)]
struct Args {
    /// Memory of the moved process, in MiB, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,1024")]
    sizes: Vec<u64>,
    /// Also move a process with this many mappings (one page each); 0: do not.
    #[arg(long, default_value_t = 20_000)]
    vmas: u64,
    /// Calls per round-trip measurement.
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Rounds (of a million iterations) of the CPU-bound loop.
    #[arg(long, default_value_t = 3000)]
    rounds: u64,
    /// MiB of the home file that the sequential I/O table writes and reads.
    #[arg(long, default_value_t = 256)]
    io_mib: u64,
    /// Runs of each measurement; every figure is their median.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Only measure the link's encryption (4.), without a cluster.
    #[arg(long)]
    link_only: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("mig-bench: {e:#}");
        std::process::exit(1);
    }
}

/// The workload running in node 1, and its output lines.
struct Workload {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pid: String,
    /// Where it should be when it finishes, as `mosctl where` says ("0": at home).
    node: String,
}

mod common;

struct Bench {
    c: TestCluster,
    bin: String,
    tools: common::Tools,
}

impl Bench {
    fn tool(&self, name: &str) -> String {
        self.tools.tool(name)
    }

    /// Starts `migbench ARGS` in node 1 (in the work directory) and waits for "ready".
    fn start(&self, args: &[&str]) -> Result<Workload> {
        let mut child = self
            .c
            .command(1, "sh")
            .arg("-c")
            .arg(format!(
                "cd {} && exec {} {}",
                Path::new(&self.bin)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .display(),
                self.bin,
                args.join(" ")
            ))
            .stdout(Stdio::piped())
            .spawn()
            .context("starting migbench")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let Some(first) = lines.next() else {
            let st = child.wait()?;
            bail!("migbench {} said nothing ({st})", args.join(" "));
        };
        let first = first?;
        let pid = first
            .strip_prefix("ready ")
            .with_context(|| format!("migbench did not start: {first:?}"))?
            .to_string();
        Ok(Workload {
            child,
            lines,
            pid,
            node: "0".into(),
        })
    }

    /// Moves the workload to node 2; returns omd's message and the time it took.
    fn migrate(&self, w: &mut Workload, eager: bool) -> Result<(String, f64)> {
        let mut cmd = self.c.command(1, &self.tool("migrate"));
        cmd.arg("--wait");
        if eager {
            cmd.arg("--eager");
        }
        let t = Instant::now();
        let o = cmd.args([&w.pid, "2"]).output()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() || !text.contains("now runs at node 2") {
            bail!(
                "migrate failed: {text}{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        w.node = "2".into();
        Ok((text, ms))
    }

    /// Where the freeze of the last move of home pid `pid` went, as both nodes' omd
    /// logged it: the home's steps (the capture's inside `capture: `), then the target's
    /// (`target: `), in milliseconds.
    fn breakdown(&self, pid: &str) -> Result<Vec<(String, f64)>> {
        let last = |node: u16, what: &str, field: &str| -> Result<String> {
            let o = self.c.sh(
                node,
                &format!(
                    "grep -F -- '{what}' /run/omd/omd.log | grep -F -w -- '{field}' | tail -n 1"
                ),
            );
            let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if line.is_empty() {
                bail!("node {node}'s omd logged no {what:?} with {field}");
            }
            Ok(line)
        };
        let home = last(1, "process migrated, frozen", &format!("pid={pid}"))?;
        let (_, steps) = home
            .split_once(", frozen ")
            .context("no freeze in the home's line")?;
        let (_, steps) = steps.split_once(": ").context("no steps")?;
        let (mine, capture) = steps.split_once(" (capture: ").context("no capture")?;
        let capture = capture.split_once(')').map_or(capture, |c| c.0);
        let mut out = Vec::new();
        for (name, v) in om_migrate::steps::parse(mine) {
            if name == "capture" {
                for (n, v) in om_migrate::steps::parse(capture) {
                    out.push((format!("capture: {n}"), v));
                }
            } else {
                out.push((name, v));
            }
        }
        // The memory map is read while the process runs, after a brief stop.
        if let Ok(l) = last(1, "before the freeze: ", &format!("pid={pid}")) {
            // (the log's fields follow the last step)
            let steps = l
                .split_once("before the freeze: ")
                .and_then(|(_, r)| r.rsplit_once(" ms"));
            if let Some((steps, _)) = steps {
                for (n, v) in om_migrate::steps::parse(&format!("{steps} ms")) {
                    out.push((format!("before the freeze: {n}"), v));
                }
            }
        }
        // A lazy move walks the page tables once the image is out (not in the freeze).
        if let Ok(l) = last(1, "page index after the freeze: ", &format!("pid={pid}")) {
            let v = l
                .split_once("after the freeze: ")
                .and_then(|(_, r)| r.split_once(" ms"))
                .and_then(|(v, _)| v.parse().ok());
            if let Some(v) = v {
                out.push(("after the freeze: page index".into(), v));
            }
        }
        let there = last(2, "guest started", &format!("home_pid={pid}"))?;
        if let Some((_, rest)) = there.split_once("guest started ") {
            let rest = rest.split_once(" from=").map_or(rest, |r| r.0);
            if let Some((total, steps)) = rest.split_once(" after its image came: ") {
                for (n, v) in om_migrate::steps::parse(steps) {
                    out.push((format!("target: {n}"), v));
                }
                if let Some(v) = total.strip_suffix(" ms").and_then(|v| v.parse().ok()) {
                    out.push(("target: image to start, all".into(), v));
                }
            }
        }
        Ok(out)
    }

    /// Lets the workload go on and returns its result line's numbers.
    fn result(&self, mut w: Workload) -> Result<Vec<f64>> {
        let o = self.c.sh(1, &format!("kill -USR1 {}", w.pid));
        if !o.status.success() {
            bail!("cannot signal {}", w.pid);
        }
        let line = w.lines.next().context("no result")??;
        let at = self
            .c
            .sh(1, &format!("{} where {}", self.tool("mosctl"), w.pid));
        let at = String::from_utf8_lossy(&at.stdout).trim().to_string();
        self.c.sh(1, &format!("kill -USR1 {}", w.pid));
        w.child.wait()?;
        if at != w.node {
            let log = self.c.sh(1, &format!("grep -w {} /run/omd/omd.log", w.pid));
            bail!(
                "migbench {} was at node {at:?} when it finished, not at node {}: its figures would not be that node's; node 1's omd said:\n{}",
                w.pid,
                w.node,
                String::from_utf8_lossy(&log.stdout)
            );
        }
        Ok(numbers(&line))
    }
}

/// The "N ms frozen" of omd's answer.
fn frozen_ms(msg: &str) -> Option<f64> {
    let (before, _) = msg.split_once(" ms frozen")?;
    before.rsplit(['(', ' ']).next()?.parse().ok()
}

/// Seconds to move `total` bytes in `frame`-byte writes through plain TCP on loopback.
fn plain_tcp(total: usize, frame: usize) -> Result<f64> {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let at = l.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<Instant> {
        let (mut s, _) = l.accept()?;
        let mut buf = vec![0u8; frame];
        let mut got = 0;
        while got < total {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(Instant::now())
    });
    let mut s = std::net::TcpStream::connect(at)?;
    let data = vec![0x5au8; frame];
    let t = Instant::now();
    for _ in 0..total / frame {
        s.write_all(&data)?;
    }
    let end = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    Ok((end - t).as_secs_f64())
}

/// Seconds to move `total` bytes as `Setup::Bytes` frames of `frame` bytes through an
/// encrypted link on loopback (handshake excluded).
fn encrypted_link(total: usize, frame: usize) -> Result<f64> {
    use om_migrate::{Conn, Setup};
    let key = omd::wire::Key([3; 32]);
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let at = l.local_addr()?;
    let k = key.clone();
    let reader = std::thread::spawn(move || -> Result<Instant> {
        let (s, _) = l.accept()?;
        let c = Conn::accept(s, &k, 2)?;
        let mut got = 0;
        while got < total {
            match c.recv::<Setup>(None)? {
                Some(Setup::Bytes(b)) => got += b.len(),
                other => bail!("the link delivered {other:?}"),
            }
        }
        Ok(Instant::now())
    });
    let c = Conn::open(std::net::TcpStream::connect(at)?, &key, 1, 2)?;
    let data = vec![0x5au8; frame];
    let t = Instant::now();
    for _ in 0..total / frame {
        c.send(&Setup::Bytes(data.clone()))?;
    }
    let end = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    Ok((end - t).as_secs_f64())
}

/// Seconds for `n` page requests of `len` bytes, answered one at a time, as the pager
/// asks them: over an encrypted link if `sealed`, else plain TCP with the same framing.
fn requests(n: usize, len: usize, sealed: bool) -> Result<f64> {
    use om_migrate::{Conn, Setup};
    use std::io::{Read, Write};
    let key = omd::wire::Key([3; 32]);
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let at = l.local_addr()?;
    let k = key.clone();
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut s, _) = l.accept()?;
        s.set_nodelay(true)?;
        let data = vec![0x5au8; len];
        if sealed {
            let c = Conn::accept(s, &k, 2)?;
            while let Ok(Some(Setup::Read { len, .. })) = c.recv::<Setup>(None) {
                c.send(&Setup::Bytes(data[..len as usize].to_vec()))?;
            }
        } else {
            let mut req = [0u8; 16];
            while s.read_exact(&mut req).is_ok() {
                s.write_all(&data)?;
            }
        }
        Ok(())
    });
    let s = std::net::TcpStream::connect(at)?;
    s.set_nodelay(true)?;
    let t;
    if sealed {
        let c = Conn::open(s, &key, 1, 2)?;
        t = Instant::now();
        for i in 0..n {
            c.send(&Setup::Read {
                addr: i as u64,
                len: len as u64,
            })?;
            match c.recv::<Setup>(None)? {
                Some(Setup::Bytes(b)) if b.len() == len => {}
                other => bail!("the link answered {other:?}"),
            }
        }
    } else {
        let mut s = s;
        let mut buf = vec![0u8; len];
        t = Instant::now();
        for _ in 0..n {
            s.write_all(&[0u8; 16])?;
            s.read_exact(&mut buf)?;
        }
        drop(s);
    }
    let took = t.elapsed().as_secs_f64();
    let _ = server.join();
    Ok(took)
}

/// One run's freeze steps and their milliseconds.
type Steps = Vec<(String, f64)>;

/// The freeze breakdown: per step, per column, the median over the runs (the steps are
/// named by the first run; a run that lacks one counts as 0 for it).
fn print_freezes(cols: &[(String, Vec<Steps>)]) {
    let Some(names) = cols.iter().find_map(|(_, runs)| runs.first()) else {
        return;
    };
    let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    println!("\nWhere the freeze goes, ms (steps of omd at home; the target's are inside \"started at target\")");
    let w = cols.iter().map(|(c, _)| c.len()).max().unwrap_or(0).max(12);
    print!("{:>34}", "");
    for (c, _) in cols {
        print!(" {c:>w$}");
    }
    println!();
    for name in &names {
        print!("{name:>34}");
        for (_, runs) in cols {
            let v: Vec<f64> = runs
                .iter()
                .map(|r| r.iter().find(|(n, _)| n == name).map_or(0.0, |x| x.1))
                .collect();
            print!(" {:>w$.3}", if v.is_empty() { f64::NAN } else { median(v) });
        }
        println!();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 4. The encryption's cost, median of five interleaved runs of each.
fn link_cost() -> Result<()> {
    let (total, frame) = (1usize << 30, 4usize << 20);
    let (mut plain, mut sealed) = (vec![], vec![]);
    for _ in 0..5 {
        plain.push(plain_tcp(total, frame)?);
        sealed.push(encrypted_link(total, frame)?);
    }
    let mbs = |s: f64| total as f64 / s / 1e6;
    let (p, e) = (mbs(median(plain)), mbs(median(sealed)));
    println!("\nThe page stream's encryption: 1 GiB in 4 MiB frames over loopback, median of 5");
    println!("{:>24} {:>10}", "", "MB/s");
    println!("{:>24} {:>10.0}", "plain TCP (the anchor)", p);
    println!("{:>24} {:>10.0}", "encrypted link", e);
    println!("{:>24} {:>10.2}", "link / plain", e / p);
    let (n, len) = (512usize, 1usize << 20);
    let (mut plain, mut sealed) = (vec![], vec![]);
    for _ in 0..5 {
        plain.push(requests(n, len, false)?);
        sealed.push(requests(n, len, true)?);
    }
    let us = |s: f64| s / n as f64 * 1e6;
    let (p, e) = (us(median(plain)), us(median(sealed)));
    println!("\nOne page request of 1 MiB at a time (as the pager asks), loopback, median of 5");
    println!("{:>24} {:>10}", "", "µs each");
    println!("{:>24} {:>10.0}", "plain TCP (the anchor)", p);
    println!("{:>24} {:>10.0}", "encrypted link", e);
    Ok(())
}

/// The figures of `runs` runs of `f`, which returns several numbers each time: per
/// number, its median.
fn medians(runs: u32, mut f: impl FnMut() -> Result<Vec<f64>>) -> Result<Vec<f64>> {
    let mut all: Vec<Vec<f64>> = vec![];
    for _ in 0..runs {
        let r = f()?;
        if all.is_empty() {
            all = vec![vec![]; r.len()];
        }
        for (i, v) in r.into_iter().enumerate().take(all.len()) {
            all[i].push(v);
        }
    }
    Ok(all.into_iter().map(median).collect())
}

/// The link's anchors, measured between node 1 and node 2 in this run.
struct Link {
    /// Median ICMP round trip, µs.
    rtt_us: f64,
    /// Median TCP throughput of 1 GiB from node 1 to node 2, MB/s.
    mbs: f64,
    /// memcpy() bandwidth of this machine, MB/s.
    memcpy_mbs: f64,
}

impl Bench {
    /// The numbers of the line that `migbench ARGS` prints, run in `node` without a
    /// handshake.
    fn once(&self, node: u16, args: &[&str]) -> Result<Vec<f64>> {
        let o = self.c.command(node, &self.bin).args(args).output()?;
        if !o.status.success() {
            bail!("migbench {} failed at node {node}", args.join(" "));
        }
        Ok(numbers(&String::from_utf8_lossy(&o.stdout)))
    }

    /// 1 GiB through TCP from node 1 to node 2, MB/s at the receiver.
    fn link_bandwidth(&self) -> Result<f64> {
        let mut sink = self
            .c
            .command(2, &self.bin)
            .args(["sink", "5301"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the sink at node 2")?;
        let mut lines = BufReader::new(sink.stdout.take().context("stdout")?).lines();
        if lines.next().transpose()?.as_deref() != Some("listening") {
            bail!("the sink at node 2 did not start");
        }
        let src = self
            .c
            .command(1, &self.bin)
            .args(["source", "198.18.0.2", "5301", "1024"])
            .status()?;
        let said = lines.next().transpose()?.unwrap_or_default();
        sink.wait()?;
        let v = numbers(&said);
        if !src.success() || v.first() != Some(&1073741824.0) {
            bail!("the link test moved other than 1 GiB: {said:?}");
        }
        Ok(v[1])
    }

    /// Median ICMP round trip from node 1 to node 2 over 50 pings, µs.
    fn ping_us(&self) -> Result<f64> {
        let o = self
            .c
            .command(1, "ping")
            .args(["-n", "-c", "50", "-i", "0.01", "198.18.0.2"])
            .output()
            .context("running ping")?;
        let times: Vec<f64> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once("time=")?.1.split(' ').next()?.parse().ok())
            .map(|ms: f64| ms * 1e3)
            .collect();
        if times.is_empty() {
            bail!("ping from node 1 to node 2 got no answer");
        }
        Ok(median(times))
    }

    /// The results of `migbench ARGS` at home and, moved lazily first, at node 2.
    fn home_and_away(&self, args: &[&str]) -> Result<Vec<f64>> {
        let mut v = self.result(self.start(args)?)?;
        let mut w = self.start(args)?;
        self.migrate(&mut w, false)?;
        v.extend(self.result(w)?);
        Ok(v)
    }
}

/// The numbers among the words of `line`.
fn numbers(line: &str) -> Vec<f64> {
    line.split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .collect()
}

fn run(args: Args) -> Result<()> {
    if args.link_only {
        return link_cost();
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (tools, omcluster) = common::Tools::find()?;
    let bin = common::compile("mig-bench", "migbench.c", "migbench")?;
    eprintln!(
        "mig-bench: bringing up a 2-node cluster (tools from {})",
        tools.0.display()
    );
    // Room for the largest process at home and its copy at node 2, with margin.
    let biggest = args.sizes.iter().max().copied().unwrap_or(0);
    let mem = format!("{0}M,{0}M", (biggest * 3 / 2).max(2048) + 1024);
    let spec = ClusterSpec::new("migbench", 2, None, Some(&mem))?;
    let c = common::cluster(spec, &tools, &omcluster)?;
    let b = Bench {
        c,
        bin: bin.display().to_string(),
        tools,
    };
    // The figures are of where the bench puts each process: no balancer may move one.
    for node in [1, 2] {
        let o = b.c.sh(node, &format!("{} stay", b.tool("mosctl")));
        if !o.status.success() {
            bail!(
                "mosctl stay at node {node}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let runs = args.runs;

    // 0. The anchors: the link's round trip and bandwidth, and memcpy.
    eprintln!("mig-bench: the link and memory bandwidth ...");
    let anchors = medians(runs, || {
        Ok(vec![
            b.ping_us()?,
            b.link_bandwidth()?,
            b.once(1, &["memcpy", "1024"])?[0],
        ])
    })?;
    let link = Link {
        rtt_us: anchors[0],
        mbs: anchors[1],
        memcpy_mbs: anchors[2],
    };
    println!("Medians of {runs} runs; 2 CPUs shared by both nodes and the veth link.");
    println!(
        "\nThe anchors: ping round trip node 1 -> 2 {:.0} µs; TCP node 1 -> 2 {:.0} MB/s; \
         memcpy {:.0} MB/s",
        link.rtt_us, link.mbs, link.memcpy_mbs
    );

    // 1. Moving memory.
    let mut rows = Vec::new();
    let mut freezes: Vec<(String, Vec<Steps>)> = Vec::new();
    // What to move: its label, migbench's arguments and its memory in bytes.
    let mut loads: Vec<(String, Vec<String>, f64)> = args
        .sizes
        .iter()
        .map(|&mib| {
            (
                format!("{mib}MiB"),
                vec!["mem".to_string(), mib.to_string()],
                mib as f64 * 1048576.0,
            )
        })
        .collect();
    if args.vmas > 0 {
        loads.push((
            format!("{}VMAs", args.vmas),
            vec!["vmas".to_string(), args.vmas.to_string()],
            args.vmas as f64 * 4096.0,
        ));
    }
    for (label, load, bytes) in &loads {
        let load: Vec<&str> = load.iter().map(String::as_str).collect();
        for eager in [false, true] {
            let mode = if eager { "eager" } else { "lazy" };
            eprintln!("mig-bench: {label}, {mode} ...");
            let mut steps = Vec::new();
            let fig = medians(runs, || {
                let native = b.result(b.start(&load)?)?;
                let mut w = b.start(&load)?;
                let (msg, wait_ms) = b.migrate(&mut w, eager)?;
                steps.push(b.breakdown(&w.pid)?);
                let r = b.result(w)?;
                if r.get(1) != native.get(1) {
                    bail!(
                        "{label} {mode}: the moved process read other memory ({r:?} vs {native:?})"
                    );
                }
                Ok(vec![
                    frozen_ms(&msg).unwrap_or(f64::NAN),
                    wait_ms,
                    r[0],
                    native[0],
                    wait_ms + r[0],
                ])
            })?;
            rows.push((label.clone(), *bytes, mode, fig));
            freezes.push((format!("{label} {mode}"), steps));
        }
    }
    println!("\nMoving a process from node 1 to node 2: ms (the limit: its memory at TCP speed)");
    println!(
        "{:>10} {:>6} {:>7} {:>8} {:>10} {:>10} {:>8} {:>8} {:>12}",
        "memory",
        "mode",
        "frozen",
        "migrate",
        "touch all",
        "touch all",
        "total",
        "limit",
        "total/limit"
    );
    println!(
        "{:>10} {:>6} {:>7} {:>8} {:>10} {:>10} {:>8} {:>8} {:>12}",
        "", "", "", "--wait", "there", "at home", "", "", ""
    );
    for (label, bytes, mode, f) in &rows {
        let limit = bytes / (link.mbs * 1e6) * 1e3;
        println!(
            "{:>10} {:>6} {:>7.0} {:>8.1} {:>10.1} {:>10.1} {:>8.1} {:>8.1} {:>11.2}x",
            label,
            mode,
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            limit,
            f[4] / limit
        );
    }
    println!("(goals: frozen ≤ 10 ms, ≤ 100 ms with 20,000 mappings; lazy total within 1.2x of the limit)");
    print_freezes(&freezes);

    // 2. Forwarded calls.
    eprintln!("mig-bench: forwarded calls ...");
    let calls = args.calls.to_string();
    let f = medians(runs, || b.home_and_away(&["rtt", &calls]))?;
    let (home, away) = f.split_at(5);
    println!(
        "\nSystem calls on a home file ({} each): µs per call; the limit of a forwarded \
         call is one round trip + 20 µs = {:.0} µs",
        args.calls,
        link.rtt_us + 20.0
    );
    println!(
        "{:>18} {:>9} {:>10} {:>9} {:>12}",
        "", "at home", "at node 2", "ratio", "extra/limit"
    );
    let names = [
        "getppid()",
        "write() of 4 KiB",
        "pread() of 4 KiB",
        "stat()",
        "open() + close()",
    ];
    for (i, name) in names.iter().enumerate() {
        println!(
            "{:>18} {:>9.2} {:>10.2} {:>8.0}x {:>11.2}x",
            name,
            home[i],
            away[i],
            away[i] / home[i].max(1e-9),
            (away[i] - home[i]) / (link.rtt_us + 20.0)
        );
    }

    // 2b. Small I/O.
    eprintln!("mig-bench: small I/O ...");
    let io = args.io_mib.to_string();
    let f = medians(runs, || b.home_and_away(&["io", &io]))?;
    let (home, away) = f.split_at(4);
    println!(
        "\nSequential I/O on a {} MiB home file: MB/s (goal: at node 2 within 1.5x of at home)",
        args.io_mib
    );
    println!(
        "{:>18} {:>9} {:>10} {:>13}",
        "", "at home", "at node 2", "home/node 2"
    );
    let names = [
        "4 KiB write()s",
        "4 KiB read()s",
        "64 KiB write()s",
        "64 KiB read()s",
    ];
    for (i, name) in names.iter().enumerate() {
        println!(
            "{:>18} {:>9.1} {:>10.1} {:>12.2}x",
            name,
            home[i],
            away[i],
            home[i] / away[i].max(1e-9)
        );
    }

    // 3. CPU-bound.
    eprintln!("mig-bench: CPU-bound ...");
    let rounds = args.rounds.to_string();
    let f = medians(runs, || {
        let v = b.home_and_away(&["cpu", &rounds])?;
        if v[2] != v[5] {
            bail!("the CPU loop computed different results at home and at node 2");
        }
        Ok(v)
    })?;
    println!("\nA CPU-bound loop ({} million rounds)", args.rounds);
    println!("{:>10} {:>10} {:>10}", "", "wall ms", "CPU ms");
    println!("{:>10} {:>10.1} {:>10.1}", "at home", f[0], f[1]);
    println!("{:>10} {:>10.1} {:>10.1}", "at node 2", f[3], f[4]);
    println!(
        "difference: wall {:+.2}%, CPU {:+.2}% (goal: within 1%)",
        (f[3] / f[0] - 1.0) * 100.0,
        (f[4] / f[1] - 1.0) * 100.0
    );
    if let Some(work) = Path::new(&b.bin).parent() {
        let _ = std::fs::remove_dir_all(work);
    }
    link_cost()
}

#[cfg(test)]
mod tests {
    use super::frozen_ms;

    #[test]
    fn reads_the_frozen_time_of_omds_answer() {
        assert_eq!(
            frozen_ms("process 7 now runs at node 2 (35 ms frozen; 64.0 MiB of memory, following on demand)"),
            Some(35.0)
        );
        assert_eq!(frozen_ms("process 7 now runs at node 2"), None);
    }
}
