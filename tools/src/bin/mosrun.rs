//! mosrun: run a program under migration control, as openMosix's mosrun(1).

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use om_proto::{JobKind, MigrateTo, Request};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Run PROG under migration control: it starts here, at its home node, moves at once to
/// the best node of the cluster (or the node asked for), and stays this shell's child.
/// Unless locked, the load balancer moves it on whenever another node would run it
/// clearly better, and so do its children.
///
/// Options (openMosix style, before PROG):
///   -h        start at home (and stay there, unless -l)
///   -b        start at the best node now (the default)
///   -NODE     move to node NODE (e.g. -2)
///   -jLIST    move to one node of LIST, chosen at random (e.g. -j2,3 or -j2-4)
///   -L        lock: no automatic migration (the default with -h, -NODE and -j)
///   -l        unlock: the load balancer may move it (the default otherwise)
///   -c        a CPU job: the balancer may move it whatever its calls look like
///   -i        an I/O job: the balancer keeps it at home
///
/// Called as `cpujob`, `iojob` or `nomig` (links to mosrun), it is `mosrun -c`,
/// `mosrun -i` or `mosrun -h -L`.
///
/// The program's output, files, signals and exit status stay at home exactly as if it
/// had never left. If it cannot move (see `migrate --wait`), it runs on at home and
/// mosrun says why on standard error. A locked program still moves when asked to
/// (`migrate`, `/run/hpc/PID/goto`); its lock shows in and can be changed through
/// `/run/hpc/PID/lock`.
#[derive(Parser)]
#[command(
    version,
    disable_help_flag = true,
    after_help = "Examples:\n  mosrun ./job input         at the best node, balanced from then on\n  mosrun -2 ./job input      run ./job at node 2\n  mosrun -j2-4 sha256sum big  at node 2, 3 or 4\n  mosrun -h ./job            at home\n  mosrun -2 -l ./job         at node 2, free to move on\n  iojob ./copy-files         at home, never balanced away"
)]
struct Args {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Options, then the program and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    om_tools::sigpipe::restore_default();
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 3 && argv[1] == "--om-move" {
        return om_tools::finish("mosrun", mover(&argv[2]));
    }
    // cpujob, iojob and nomig are mosrun with an option.
    let called = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let implied: &[&str] = match called.as_str() {
        "cpujob" => &["-c"],
        "iojob" => &["-i"],
        "nomig" => &["-h", "-L"],
        _ => &[],
    };
    let mut args = Args::parse();
    args.command
        .splice(0..0, implied.iter().map(|s| s.to_string()));
    om_tools::finish("mosrun", run(args))
}

/// Where the helper moves PROG.
#[derive(Clone, Copy)]
enum Place {
    Home,
    Best,
    Node(u16),
}

/// Nodes of a -j list: "2,3" or "2-4" or both.
fn node_list(s: &str) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
                if a > b {
                    bail!("`{part}` is not a range");
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse()?),
        }
    }
    Ok(out)
}

fn run(args: Args) -> Result<ExitCode> {
    let mut it = args.command.into_iter().peekable();
    let mut to = Place::Best;
    let (mut placed, mut lock, mut job) = (false, None, JobKind::Any);
    while let Some(opt) = it.peek() {
        if !opt.starts_with('-') || opt == "-" {
            break;
        }
        let opt = it.next().unwrap_or_default();
        if opt == "--" {
            break;
        }
        if opt == "-h" {
            (to, placed) = (Place::Home, true);
        } else if opt == "-b" {
            (to, placed) = (Place::Best, false);
        } else if opt == "-c" {
            job = JobKind::Cpu;
        } else if opt == "-i" {
            job = JobKind::Io;
        } else if opt == "-l" || opt == "-L" {
            lock = Some(opt == "-L");
        } else if let Some(list) = opt.strip_prefix("-j") {
            let nodes = node_list(list).with_context(|| format!("bad node list `{list}`"))?;
            if nodes.is_empty() {
                bail!("empty node list");
            }
            // std's hasher keys are random per process: a fair pick without a crate.
            let seed = {
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish() as usize
            };
            (to, placed) = (Place::Node(nodes[seed % nodes.len()]), true);
        } else if let Ok(n) = opt[1..].parse::<u16>() {
            (to, placed) = (Place::Node(n), true);
        } else {
            bail!("unknown option `{opt}` (see mosrun --help)");
        }
    }
    let prog: Vec<String> = it.collect();
    let Some((cmd, rest)) = prog.split_first() else {
        bail!("no program given (see mosrun --help)");
    };
    // Under migration control from now on (this pid becomes PROG's).
    let on = lock.unwrap_or(placed);
    let pid = std::process::id() as i32;
    if let Err(e) = om_tools::ask(Request::Lock { pid, on }) {
        eprintln!("mosrun: {cmd} runs at home without migration control: {e}");
        to = Place::Home;
    } else if job != JobKind::Any {
        om_tools::ask(Request::Hint { pid, job })?;
    }
    // An I/O job starts at home too.
    if job == JobKind::Io && matches!(to, Place::Best) {
        to = Place::Home;
    }
    let target = match to {
        Place::Home => None,
        Place::Best => Some("best".to_string()),
        Place::Node(n) => Some(n.to_string()),
    };
    if let Some(n) = target {
        // A helper outside this process asks omd to move us once we are PROG; it is not
        // our child (it leaves at once, its own helper carries on), so PROG inherits no
        // child of ours.
        let me = std::env::current_exe().context("cannot find mosrun itself")?;
        let st = Command::new(&me)
            .arg("--om-move")
            .arg(format!("{}:{n}", std::process::id()))
            .stdin(Stdio::null())
            .status()
            .context("cannot start the migration helper")?;
        if !st.success() {
            bail!("the migration helper failed");
        }
    }
    let err = Command::new(cmd).args(rest).exec();
    bail!("cannot run {cmd}: {err}")
}

/// `--om-move PID:NODE` (or `PID:best`): first call starts a detached copy and returns;
/// the copy waits until PID runs another program, then asks omd to move it.
fn mover(spec: &str) -> Result<ExitCode> {
    let (pid, node) = spec.split_once(':').context("bad helper argument")?;
    let pid: i32 = pid.parse()?;
    let to = match node {
        "best" => MigrateTo::Balance,
        n => MigrateTo::Node(n.parse()?),
    };
    if std::env::var_os("OM_MOSRUN_HELPER").is_none() {
        let me = std::env::current_exe()?;
        Command::new(me)
            .arg("--om-move")
            .arg(spec)
            .env("OM_MOSRUN_HELPER", "1")
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the migration helper")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mine = std::fs::read_link("/proc/self/exe")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) if exe != mine => break,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            // A program its user may run but not read (mode 0111) makes the process
            // undumpable, and its exe link unreadable even to that user: mosrun, which
            // the user could read, has been replaced.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => break,
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
    // Let the dynamic loader finish at home: mapping its libraries would bring the
    // process straight back.
    std::thread::sleep(Duration::from_millis(30));
    if let Err(e) = om_tools::ask(Request::Migrate {
        pid,
        to,
        wait: true,
        eager: false,
    }) {
        // A program that ended before it could move needs no word (and the shell would
        // print it into whatever runs next).
        if !ended(pid) {
            eprintln!("mosrun: process {pid} stays at home: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether process `pid` has ended (gone, or a zombie its parent has not reaped yet).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}
