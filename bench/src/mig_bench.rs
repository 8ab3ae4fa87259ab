//! mig-bench: what migration costs, measured in a 2-node omcluster on this machine.
//!
//! 1. Moving a process that has filled 64 MiB or 1 GiB of memory from node 1 to node 2,
//!    lazy and eager: how long it was frozen (omd's figure: from stopping it at home to
//!    its running at node 2), how long `migrate --wait` took, how long the process then
//!    took to read one byte of every page at node 2 (lazy: pages it has not got yet come
//!    from home on first touch), and the total until it had all its memory at node 2.
//! 2. The round trip of a forwarded system call: `getppid()` and `write()` of 4 KiB to a
//!    file at home, at home (native) and from node 2.
//! 3. A CPU-bound loop at home and at node 2: its wall and CPU time.
//! 4. The cost of the link's encryption on the page stream: 1 GiB of page replies
//!    (4 MiB frames, as the page server sends them) through an encrypted link over
//!    loopback, next to the same bytes through plain TCP on the same loopback.
//!
//! Build the workspace in release mode first, then run as root:
//! `cargo build --release && target/release/mig-bench [--sizes 64,1024]`.

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
    /// Calls per round-trip measurement.
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Rounds (of a million iterations) of the CPU-bound loop.
    #[arg(long, default_value_t = 3000)]
    rounds: u64,
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
        Ok(Workload { child, lines, pid })
    }

    /// Moves the workload to node 2; returns omd's message and the time it took.
    fn migrate(&self, w: &Workload, eager: bool) -> Result<(String, f64)> {
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
        Ok((text, ms))
    }

    /// Lets the workload go on and returns its result line's numbers.
    fn result(&self, mut w: Workload) -> Result<Vec<f64>> {
        let o = self.c.sh(1, &format!("kill -USR1 {}", w.pid));
        if !o.status.success() {
            bail!("cannot signal {}", w.pid);
        }
        let line = w.lines.next().context("no result")??;
        w.child.wait()?;
        Ok(line
            .split_whitespace()
            .filter_map(|v| v.parse::<f64>().ok())
            .collect())
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

fn run(args: Args) -> Result<()> {
    if args.link_only {
        return link_cost();
    }
    let (tools, omcluster) = common::Tools::find()?;
    let bin = common::compile("mig-bench", "migbench.c", "migbench")?;
    eprintln!(
        "mig-bench: bringing up a 2-node cluster (tools from {})",
        tools.0.display()
    );
    // Room for a 1 GiB process at home and its copy at node 2, with margin.
    let spec = ClusterSpec::new("migbench", 2, None, Some("6G,6G"))?;
    let c = common::cluster(spec, &tools, &omcluster)?;
    let b = Bench {
        c,
        bin: bin.display().to_string(),
        tools,
    };

    // 1. Moving memory.
    let mut rows = Vec::new();
    for &mib in &args.sizes {
        let m = mib.to_string();
        let native = b.result(b.start(&["mem", &m])?)?;
        for eager in [false, true] {
            let mode = if eager { "eager" } else { "lazy" };
            eprintln!("mig-bench: {mib} MiB, {mode} ...");
            let w = b.start(&["mem", &m])?;
            let (msg, wait_ms) = b.migrate(&w, eager)?;
            let r = b.result(w)?;
            if r.get(1) != native.get(1) {
                bail!(
                    "{mib} MiB {mode}: the moved process read other memory ({r:?} vs {native:?})"
                );
            }
            rows.push((mib, mode, frozen_ms(&msg), wait_ms, r[0], native[0]));
        }
    }
    println!("\nMoving a process from node 1 to node 2 (veth link, 2 CPUs shared by both nodes)");
    println!(
        "{:>8} {:>6} {:>10} {:>16} {:>18} {:>17} {:>10}",
        "memory",
        "mode",
        "frozen ms",
        "migrate --wait",
        "touch all there",
        "touch all home",
        "total ms"
    );
    for (mib, mode, frozen, wait_ms, touch, native) in &rows {
        println!(
            "{:>5}MiB {:>6} {:>10} {:>16.1} {:>18.1} {:>17.1} {:>10.1}",
            mib,
            mode,
            frozen.map_or("?".into(), |f| format!("{f:.0}")),
            wait_ms,
            touch,
            native,
            wait_ms + touch
        );
    }

    // 2. Round trips.
    let calls = args.calls.to_string();
    let home = b.result(b.start(&["rtt", &calls])?)?;
    let w = b.start(&["rtt", &calls])?;
    b.migrate(&w, false)?;
    let away = b.result(w)?;
    println!(
        "\nSystem calls ({} each), microseconds per call",
        args.calls
    );
    println!(
        "{:>22} {:>10} {:>10} {:>8}",
        "", "at home", "at node 2", "ratio"
    );
    for (i, name) in ["getppid()", "write() of 4 KiB"].iter().enumerate() {
        println!(
            "{:>22} {:>10.2} {:>10.2} {:>7.0}x",
            name,
            home[i],
            away[i],
            away[i] / home[i].max(1e-9)
        );
    }

    // 3. CPU-bound.
    let rounds = args.rounds.to_string();
    let home = b.result(b.start(&["cpu", &rounds])?)?;
    let w = b.start(&["cpu", &rounds])?;
    b.migrate(&w, false)?;
    let away = b.result(w)?;
    if home.get(2) != away.get(2) {
        bail!("the CPU loop computed different results at home and at node 2");
    }
    println!("\nA CPU-bound loop ({} million rounds)", args.rounds);
    println!("{:>10} {:>10} {:>10}", "", "wall ms", "CPU ms");
    println!("{:>10} {:>10.1} {:>10.1}", "at home", home[0], home[1]);
    println!("{:>10} {:>10.1} {:>10.1}", "at node 2", away[0], away[1]);
    println!(
        "difference: wall {:+.2}%, CPU {:+.2}%",
        (away[0] / home[0] - 1.0) * 100.0,
        (away[1] / home[1] - 1.0) * 100.0
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
