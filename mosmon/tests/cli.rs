//! mosmon as a command: its man page, and a plain error when there is no omd.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mosmon");

#[test]
fn writes_its_man_page() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .env("OM_GENERATE_DOCS", d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let page = std::fs::read_to_string(d.path().join("man/man1/mosmon.1")).unwrap();
    assert!(page.contains(".TH mosmon 1"), "{page}");
    assert!(page.contains("simulate"), "{page}");
}

#[test]
fn says_plainly_that_omd_is_not_running() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .env("OM_CONTROL_SOCKET", d.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("mosmon: omd is not running"), "{err}");
    assert!(o.stdout.is_empty(), "the terminal was left alone");
}
