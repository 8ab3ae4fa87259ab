//! Helpers shared by the engine's integration tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

/// Compiles the test program `tests/programs/NAME.c` (unless an up-to-date build is
/// there) and returns the executable's path.
///
/// Each test runs in a process of its own, and several may ask for the same program at
/// once: the builds take turns under a file lock, and a binary newer than its sources is
/// kept, never replaced under a test that may be running it (a process whose executable
/// was replaced cannot be checkpointed: its executable is a deleted file).
pub fn build(name: &str) -> PathBuf {
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs");
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("relay-programs");
    std::fs::create_dir_all(&d).unwrap();
    let lock = File::create(d.join(".lock")).unwrap();
    let _turn = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let src = programs.join(format!("{name}.c"));
    let out = d.join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = [&src, &programs.join("prog.h")]
        .iter()
        .filter_map(|p| modified(p))
        .max();
    if matches!((modified(&out), newest_source), (Some(b), Some(s)) if b > s) {
        return out;
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let st = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc failed on {}", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    out
}
