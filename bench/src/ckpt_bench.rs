//! ckpt-bench: dump and restore times of om-ckpt for processes of several sizes, eager
//! and lazy, and (when a working criu is on the PATH) criu's for the same process.
//!
//! For each size a fresh `heartbeat` process touches that much memory; it is captured and
//! written to an image (dump), ended, and restored (eager or lazy). The table shows the dump
//! time, the time until the restored process runs again, the time until every page is in
//! place (lazy), and the longest gap the process itself saw between two heartbeats (its own
//! view of how long it was stopped: dump + restore, plus any paging stall).
//!
//! Run as root: `cargo run --release -p om-bench --bin ckpt-bench -- [--sizes 64,256,1024]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use om_ckpt::{capture, checkpoint, restore, Paging};

/// Benchmark checkpoint (dump) and restore, eager and lazy.
#[derive(Parser)]
struct Args {
    /// Touched memory of the process, in MiB, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    sizes: Vec<u64>,
    /// Directory for the images (default: a fresh one under /var/tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Row {
    mib: u64,
    mode: &'static str,
    dump: Duration,
    restore: Duration,
    all_in: Option<Duration>,
    gap_us: u64,
    /// The restore's steps and their times.
    steps: Vec<(&'static str, Duration)>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("ckpt-bench: {e:#}");
        std::process::exit(1);
    }
}

fn compile(src: &Path, out: &Path) -> Result<()> {
    let st = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(out)
        .arg(src)
        .status()
        .context("running gcc")?;
    if !st.success() {
        bail!("cannot compile {}", src.display());
    }
    Ok(())
}

fn run(args: Args) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("ckpt-bench-{}", std::process::id())),
    };
    let work = if work.starts_with("/tmp") {
        Path::new("/var/tmp").join(work.file_name().unwrap_or_default())
    } else {
        work
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let hb = work.join("heartbeat");
    let launch = work.join("launch");
    compile(&root.join("heartbeat.c"), &hb)?;
    compile(&root.join("../tests/testprogs/launch.c"), &launch)?;
    let criu = Command::new("criu")
        .arg("check")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);

    let mut rows = Vec::new();
    for &mib in &args.sizes {
        for (mode, paging) in [("eager", Paging::Eager), ("lazy", Paging::Lazy)] {
            eprintln!("ckpt-bench: {mib} MiB, {mode} ...");
            rows.push(one(&launch, &hb, &work, mib, mode, paging)?);
        }
    }
    println!();
    println!(
        "om-ckpt checkpoint/restore (processes unpinned, 2 CPUs; image in {})",
        work.display()
    );
    println!(
        "{:>8} {:>6} {:>12} {:>16} {:>14} {:>16}",
        "memory", "mode", "dump ms", "restore->run ms", "all pages ms", "stopped (gap) ms"
    );
    for r in &rows {
        println!(
            "{:>5}MiB {:>6} {:>12.1} {:>16.2} {:>14} {:>16.1}",
            r.mib,
            r.mode,
            r.dump.as_secs_f64() * 1e3,
            r.restore.as_secs_f64() * 1e3,
            r.all_in
                .map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3)),
            r.gap_us as f64 / 1e3
        );
    }
    // Where restore->run goes: the rebuild's steps (the rest is forking the stub and
    // reading the image).
    if let Some(first) = rows.first() {
        println!("\nrestore steps, ms (the process stopped throughout)");
        print!("{:>8} {:>6}", "memory", "mode");
        for (name, _) in &first.steps {
            print!(" {name:>8}");
        }
        println!();
        for r in &rows {
            print!("{:>5}MiB {:>6}", r.mib, r.mode);
            for (_, t) in &r.steps {
                print!(" {:>8.2}", t.as_secs_f64() * 1e3);
            }
            println!();
        }
    }
    if criu {
        println!("\ncriu is on the PATH and `criu check` passes, but its rows are not measured by this version.");
    } else {
        println!("\ncriu: not measured (no working criu on the PATH: `criu check` fails or criu is missing).");
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn start(launch: &Path, hb: &Path, mib: u64, result: &Path) -> Result<Child> {
    let mut child = Command::new(launch)
        .arg(hb)
        .arg(mib.to_string())
        .arg(result)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting heartbeat")?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().context("stdout")?).read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("heartbeat did not start: {line:?}");
    }
    Ok(child)
}

fn one(
    launch: &Path,
    hb: &Path,
    work: &Path,
    mib: u64,
    mode: &'static str,
    paging: Paging,
) -> Result<Row> {
    let result = work.join(format!("result-{mib}-{mode}"));
    let mut child = start(launch, hb, mib, &result)?;
    std::thread::sleep(Duration::from_millis(300));
    let dir = work.join(format!("img-{mib}-{mode}"));
    let t0 = Instant::now();
    let mut frozen = capture(child.id() as i32)?;
    let image = frozen.image().clone();
    checkpoint::write(&dir, &image, frozen.memory(), |_, _| {})?;
    frozen.kill()?;
    let dump = t0.elapsed();
    // kill() reaped it already (we are both its tracer and its parent).
    let _ = child.wait();
    // The image just written is in the page cache, as a migration's pages are in memory.
    let (image, pages) = checkpoint::read(&dir)?;
    let t1 = Instant::now();
    let mut restored = restore(&image, Box::new(pages), paging)?;
    let restore_t = t1.elapsed();
    let steps = restored.steps().to_vec();
    let stats = restored.finish_paging()?;
    let all_in = stats.map(|_| t1.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let pid = Pid::from_raw(restored.pid());
    kill(pid, Signal::SIGUSR1)?;
    waitpid(pid, None)?;
    let text = std::fs::read_to_string(&result).context("reading the heartbeat's result")?;
    let mut it = text.split_whitespace();
    let gap_us: u64 = it
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("bad result")?;
    if it.nth(1) != Some("1") {
        bail!("the restored heartbeat found its heap damaged ({mib} MiB, {mode})");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        mib,
        mode,
        dump,
        restore: restore_t,
        all_in: if paging == Paging::Lazy { all_in } else { None },
        gap_us,
        steps,
    })
}
