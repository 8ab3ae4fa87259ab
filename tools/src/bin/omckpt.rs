//! omckpt: checkpoint a running process to a directory and restart it later.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap::{Parser, Subcommand};
use nix::unistd::Pid;
use om_ckpt::{capture, checkpoint, restore, Paging};
use om_sys::foreground::{end_like, Foreground};

/// Checkpoint a running process to a directory and restart it from there, in the spirit of
/// MOSIX's checkpoint/recovery and of criu.
///
/// `omckpt dump` freezes the process, writes its whole user context (registers, FPU/AVX
/// state, memory, signal state, timers, open files, limits, ...) and then ends it (or, with
/// --leave-running, lets it continue). `omckpt restore` brings it back as a child of
/// omckpt, which stays in the foreground and exits with the process's status.
///
/// What can be checkpointed: single-threaded processes whose descriptors beyond 0, 1 and
/// 2 are regular files or directories, without SysV or other shared memory, device
/// mappings or POSIX timers. Anything else is refused with the reason, and the process is
/// left running unharmed.
///
/// The restored process gets a NEW pid. Its standard input, output and error are those of
/// `omckpt restore`; other files are reopened by path with the same flags and offset (its
/// own /proc/PID/... files as the new process's).
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  omckpt dump 4242 /var/tmp/job.ckpt\n  omckpt restore /var/tmp/job.ckpt\n  omckpt restore --lazy --detach /var/tmp/job.ckpt"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the image of process PID into DIR, then end the process.
    Dump {
        /// The process to checkpoint.
        pid: i32,
        /// Directory for the image (created if missing; `image.json` and `pages.img`).
        dir: PathBuf,
        /// Let the process continue after the dump instead of ending it.
        #[arg(long)]
        leave_running: bool,
        /// Print what was written and how long it took.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Restart the process saved in DIR.
    Restore {
        /// Directory written by `omckpt dump`.
        dir: PathBuf,
        /// Start the process at once and page its memory in on demand from the image
        /// (Linux 6.6 or later). Should the image become unreadable meanwhile, the pages
        /// not yet in place are poisoned: the process dies of SIGBUS if it touches one.
        #[arg(long)]
        lazy: bool,
        /// Do not wait for the process: return once it runs (and, with --lazy, once all
        /// of its memory is in place), printing its pid on standard error.
        #[arg(long)]
        detach: bool,
        /// Print timings and paging statistics on standard error.
        #[arg(short, long)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::finish("omckpt", run(Args::parse()))
}

fn run(args: Args) -> Result<ExitCode> {
    match args.cmd {
        Cmd::Dump {
            pid,
            dir,
            leave_running,
            verbose,
        } => dump(pid, &dir, leave_running, verbose).map(|()| ExitCode::SUCCESS),
        Cmd::Restore {
            dir,
            lazy,
            detach,
            verbose,
        } => restart(&dir, lazy, detach, verbose),
    }
}

fn dump(pid: i32, dir: &Path, leave_running: bool, verbose: bool) -> Result<()> {
    let t0 = Instant::now();
    let mut frozen = capture(pid)?;
    // Checked once it is stopped, so that it cannot fork in between. A restored process
    // would not be the parent of these children: it could never wait for them.
    let children = children_of(pid);
    if !children.is_empty() {
        drop(frozen);
        bail!(
            "pid {pid} has child processes ({}); a checkpoint cannot take them along, \
             so it is not made (the process runs on)",
            children.join(", ")
        );
    }
    let image = frozen.image().clone();
    let total = image.page_bytes();
    let show = total >= 256 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last = 0;
    let written = checkpoint::write(dir, &image, frozen.memory(), |done, all| {
        if show && (done - last >= 64 << 20 || done == all) {
            last = done;
            eprint!("\romckpt: {} of {} MiB", done >> 20, all >> 20);
        }
    });
    if show {
        eprintln!();
    }
    if let Err(e) = written {
        // The process runs on; take away the partial image so it is never restored.
        drop(frozen);
        let _ = std::fs::remove_file(dir.join(checkpoint::IMAGE_FILE));
        let _ = std::fs::remove_file(dir.join(checkpoint::PAGES_FILE));
        return Err(e).with_context(|| format!("dump of pid {pid} failed; it is still running"));
    }
    let frozen_for = t0.elapsed();
    if leave_running {
        frozen.resume()?;
    } else {
        frozen
            .kill()
            .with_context(|| format!("the image is complete, but pid {pid} could not be ended"))?;
    }
    if verbose {
        eprintln!(
            "omckpt: pid {pid}: {} mappings, {:.1} MiB of pages, {} open files; frozen {:.1} ms; {}",
            image.vmas.len(),
            total as f64 / (1 << 20) as f64,
            image.files.len(),
            frozen_for.as_secs_f64() * 1e3,
            if leave_running { "left running" } else { "ended" }
        );
    }
    Ok(())
}

fn restart(dir: &Path, lazy: bool, detach: bool, verbose: bool) -> Result<ExitCode> {
    let (image, pages) = checkpoint::read(dir)?;
    // Block the signals we wait for or pass on before any thread starts (threads inherit
    // the mask; the restored process gets its own mask from the image).
    let foreground = Foreground::block().context("cannot block signals")?;
    let t0 = Instant::now();
    let paging = if lazy { Paging::Lazy } else { Paging::Eager };
    let mut restored = restore(&image, Box::new(pages), paging)
        .with_context(|| format!("cannot restore {}", dir.display()))?;
    let pid = Pid::from_raw(restored.pid());
    if verbose {
        eprintln!(
            "omckpt: restored pid {} as pid {pid} ({} paging) in {:.2} ms",
            image.pid,
            if lazy { "lazy" } else { "eager" },
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    if detach {
        let stats = restored.finish_paging()?;
        if let (true, Some(s)) = (verbose, stats) {
            eprintln!("omckpt: paging done: {s:?}");
        }
        eprintln!("omckpt: restored as pid {pid}");
        return Ok(ExitCode::SUCCESS);
    }
    // Like a shell waiting for a foreground job: Ctrl-C and Ctrl-\ reach the process from
    // the terminal directly; TERM, HUP, USR1 and USR2 sent to omckpt are passed on.
    let status = foreground
        .wait(pid)
        .context("waiting for the restored process")?;
    let stats = restored.finish_paging()?;
    if let (true, Some(s)) = (verbose, stats) {
        eprintln!("omckpt: paging: {s:?}");
    }
    Ok(end_like(status))
}

/// The pids of `pid`'s children (running or not yet reaped), as /proc lists them.
fn children_of(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
