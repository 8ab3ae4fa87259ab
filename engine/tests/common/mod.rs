//! Helpers shared by the engine's integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Compiles the test program `tests/programs/NAME.c` and returns the executable's path.
pub fn build(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs");
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("relay-programs");
    std::fs::create_dir_all(&d).unwrap();
    let out = d.join(name);
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let st = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&tmp)
        .arg(programs.join(format!("{name}.c")))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::rename(&tmp, &out).unwrap();
    out
}
