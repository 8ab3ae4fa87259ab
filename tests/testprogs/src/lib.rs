//! Builds the C test programs that live beside this crate (`tests/testprogs/NAME.c`, each
//! including `prog.h`) for the integration tests of several crates.
//!
//! Tests run in processes of their own, and several may ask for the same program at
//! once. The builds therefore take turns under a file lock in the output directory, and
//! a binary newer than its sources is kept, never replaced under a test that may be
//! running it: a process whose executable was replaced cannot be checkpointed or
//! migrated (its executable is a deleted file). Each build is written to a file of its
//! own and renamed into place, so nobody ever runs a half-written binary.
//!
//! Tests that checkpoint or migrate at random moments draw them from [`seeded_rng`], which
//! prints its seed so that a failing run can be replayed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// A random generator for a test's moments, seeded from the environment variable `var`
/// when it holds a number (to replay a run) or else from the clock. The seed is printed
/// to standard error as `VAR=N`, which a test harness shows when the test fails.
pub fn seeded_rng(var: &str) -> SmallRng {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{var}={seed}");
    SmallRng::seed_from_u64(seed)
}

/// The directory of the programs' sources.
pub fn sources() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles program `name` (a path below `tests/testprogs` without `.c`, e.g. `fpu` or
/// `refuse/threads`) into `out_dir` unless an up-to-date build is there, and returns the
/// executable's path (`/` in `name` becomes `_`). Panics, naming the program, if it
/// cannot be built: it is meant for tests.
pub fn build(name: &str, out_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(out_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let lock = File::create(out_dir.join(".lock"))
        .unwrap_or_else(|e| panic!("cannot create the build lock in {}: {e}", out_dir.display()));
    let _turn = Flock::lock(lock, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("cannot lock {}: {e}", out_dir.display()));
    let src = sources().join(format!("{name}.c"));
    let out = out_dir.join(name.replace('/', "_"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = [src.clone(), sources().join("prog.h")]
        .iter()
        .filter_map(|p| modified(p))
        .max();
    if matches!((modified(&out), newest_source), (Some(b), Some(s)) if b > s) {
        return out;
    }
    let tmp = out_dir.join(format!(
        ".{}.{}",
        name.replace('/', "_"),
        std::process::id()
    ));
    let st = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run gcc for {}: {e}", src.display()));
    assert!(st.success(), "cannot compile {}", src.display());
    std::fs::rename(&tmp, &out)
        .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", out.display()));
    out
}

/// The engine's self-checking test programs, declared once for every runner that moves
/// or checkpoints them: `with_programs!(RUNNER, CALLBACK)` calls `CALLBACK!(name, args,
/// stdin, window)` for each program RUNNER takes.
///
/// `window` (a `bool`) is whether the program has a `window()` (`prog.h`): a runner that
/// sets `OMTEST_SYNC` waits for its "ready", moves it, and then says "go", so its moves
/// land at a known point however long they take. A `timed` program (one whose subject
/// is time, or a computation without a point to stop at) is moved at moments the runner
/// picks while it runs.
///
/// - `relay`: remote/tests/relay.rs, migrated in-process, and there and back.
/// - `ckpt`: tools/tests/omckpt.rs, dumped at random moments and restored, eagerly and
///   lazily (with `args` and `stdin`).
/// - `cluster`: tests/omcluster/tests/migrate.rs, the fidelity runner: moved through a
///   3-node cluster whose nodes have files of their own.
///
/// A program a runner does not take says why beside it.
#[macro_export]
macro_rules! with_programs {
    ($runner:ident, $callback:ident) => {
        $crate::with_programs!(@each $runner $callback [
            altstack: [relay ckpt cluster], [], None, window;
            attrs: [relay ckpt cluster], [], None, window;
            avx: [relay ckpt cluster], [], None, timed;
            bigheap: [relay ckpt cluster], [], None, window;
            brk: [relay ckpt cluster], [], None, window;
            checksum: [relay ckpt cluster], [], None, timed;
            // A checkpoint restores no chroot.
            chroot_home: [relay cluster], [], None, window;
            // A checkpoint restores no child (the restored process has none).
            cow_fork: [relay cluster], [], None, window;
            compat_calls: [relay ckpt cluster], [], None, window;
            cwd: [relay ckpt cluster], [], None, window;
            env_argv: [relay ckpt cluster], ["one", "two words", "--three=3"], None, window;
            file_flags: [relay ckpt cluster], [], None, window;
            file_read: [relay ckpt cluster], [], None, window;
            file_write: [relay ckpt cluster], [], None, window;
            fork_after: [relay ckpt cluster], [], None, window;
            fpu: [relay ckpt cluster], [], None, timed;
            itimer: [relay ckpt cluster], [], None, timed;
            mappings: [relay ckpt cluster], [], None, window;
            mm_state: [relay ckpt cluster], [], None, window;
            mmap_away: [relay ckpt cluster], [], None, window;
            mmap_file: [relay ckpt cluster], [], None, window;
            mprotect: [relay ckpt cluster], [], None, window;
            nanosleep: [relay ckpt cluster], [], None, timed;
            pending: [relay ckpt cluster], [], None, window;
            pid_calls: [relay ckpt cluster], [], None, window;
            posix_timer: [relay ckpt cluster], [], None, timed;
            // Its state is about processes at home (parent-death signal, subreaper).
            prctl_state: [relay cluster], [], None, window;
            recursion: [relay ckpt cluster], [], None, window;
            rseq_robust: [relay ckpt cluster], [], None, window;
            // A checkpoint holds no memfd or deleted file (only a migration's source does).
            shared_mem: [relay cluster], [], None, window;
            // A checkpoint of a process with a filter of its own is refused
            // (refuse/seccomp_filter).
            seccomp_away: [relay cluster], [], None, window;
            sighandler: [relay ckpt cluster], [], None, window;
            // A checkpoint restores no signalfd.
            signalfd: [relay cluster], [], None, window;
            // Reads its standard input, which only the checkpoint runner gives it.
            stdin_read: [ckpt], [], Some("first line\nsecond line\nthe end\n"), timed;
            stdio_buffered: [relay ckpt cluster], [], None, window;
            tls: [relay ckpt cluster], [], None, window;
            vdso_time: [relay ckpt cluster], [], None, timed;
        ]);
    };
    (@each $runner:ident $cb:ident [$($name:ident: [$($r:ident)*], [$($arg:literal),*], $stdin:expr, $when:ident;)*]) => {
        $( $crate::with_programs!(@pick $runner $cb $name [$($arg),*] $stdin, $when; $($r)*); )*
    };
    (@window window) => { true };
    (@window timed) => { false };
    (@pick relay $cb:ident $name:ident [$($arg:literal),*] $stdin:expr, $when:ident; relay $($rest:ident)*) => {
        $cb!($name, &[$($arg),*], $stdin, $crate::with_programs!(@window $when));
    };
    (@pick ckpt $cb:ident $name:ident [$($arg:literal),*] $stdin:expr, $when:ident; ckpt $($rest:ident)*) => {
        $cb!($name, &[$($arg),*], $stdin, $crate::with_programs!(@window $when));
    };
    (@pick cluster $cb:ident $name:ident [$($arg:literal),*] $stdin:expr, $when:ident; cluster $($rest:ident)*) => {
        $cb!($name, &[$($arg),*], $stdin, $crate::with_programs!(@window $when));
    };
    (@pick $runner:ident $cb:ident $name:ident [$($arg:literal),*] $stdin:expr, $when:ident; $other:ident $($rest:ident)*) => {
        $crate::with_programs!(@pick $runner $cb $name [$($arg),*] $stdin, $when; $($rest)*);
    };
    (@pick $runner:ident $cb:ident $name:ident [$($arg:literal),*] $stdin:expr, $when:ident;) => {};
}
