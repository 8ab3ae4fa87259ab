//! showmap and setpe as a user runs them: real binaries, real files, exit codes.

use std::process::{Command, Output, Stdio};

fn run(bin: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("OM_CONTROL_SOCKET", "/nonexistent/omd-control.sock")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn map_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openmosix.map");
    std::fs::write(&path, contents).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

const SHOWMAP: &str = env!("CARGO_BIN_EXE_showmap");
const SETPE: &str = env!("CARGO_BIN_EXE_setpe");

#[test]
fn showmap_prints_the_expanded_table() {
    let (_d, path) = map_file("1 198.18.0.1 3 # three\n3 198.18.1.3 ALIAS\n");
    let out = run(SHOWMAP, &["-f", &path], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "NODE  ADDRESS     ALIASES\n\
         1     198.18.0.1  -\n\
         2     198.18.0.2  -\n\
         3     198.18.0.3  198.18.1.3\n"
    );
}

#[test]
fn showmap_json_is_the_same_table() {
    let (_d, path) = map_file("7 fd00::7 2\n");
    let out = run(SHOWMAP, &["-f", &path, "--json"], None);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"nodes": [
            {"node": 7, "address": "fd00::7", "aliases": []},
            {"node": 8, "address": "fd00::8", "aliases": []},
        ]})
    );
}

#[test]
fn showmap_reads_standard_input_and_refuses_bad_maps() {
    let out = run(SHOWMAP, &["-f", "-"], Some("1 10.0.0.1 1\n"));
    assert!(text(&out.stdout).contains("10.0.0.1"));
    let out = run(SHOWMAP, &["-f", "-"], Some("1 10.0.0.1 1\n1 10.0.0.1 1\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("<stdin>:2: duplicate of line 1"));
    assert!(out.stdout.is_empty());
}

#[test]
fn showmap_names_a_missing_file() {
    let out = run(SHOWMAP, &["-f", "/nonexistent/x.map"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "showmap: cannot read map /nonexistent/x.map: No such file or directory (os error 2)\n"
    );
}

#[test]
fn setpe_check_lists_every_error_and_fails() {
    let (_d, path) = map_file("0 10.0.0.1 1\n1 10.0.0.1 4\n2 10.1.0.1 1\n9 10.9.9.9 ALIAS\n");
    let out = run(SETPE, &["-c", "-f", &path], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with(&format!("{path}:1: node number `0` is out of range")));
    assert!(lines[1].starts_with(&format!(
        "{path}:3: nodes 2 to 2 overlap nodes 1 to 4 of line 2"
    )));
    assert!(lines[2].starts_with(&format!("{path}:4: ALIAS for node 9")));
    assert_eq!(
        lines[3],
        format!("setpe: {path}: 3 error(s); map not accepted")
    );
}

#[test]
fn setpe_check_accepts_a_good_map_and_checks_own_node() {
    let (_d, path) = map_file("1 198.18.0.1 4\n");
    let out = run(SETPE, &["-c", "-f", &path], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{path}: OK: 4 node(s), numbers 1 to 4, 0 alias address(es)\n")
    );
    let out = run(SETPE, &["-c", "-p", "9", "-f", &path], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("node 9 (given with -p) is not in the map"));
}

#[test]
fn setpe_daemon_modes_say_no_daemon_is_running() {
    let (_d, path) = map_file("1 198.18.0.1 4\n");
    for args in [vec!["-w", "-f", path.as_str()], vec!["-r"], vec!["-off"]] {
        let out = run(SETPE, &args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(
                "omd is not running on this node (cannot connect to /nonexistent/omd-control.sock"
            ),
            "{args:?}: {err}"
        );
    }
    // -w checks the map before it looks for the daemon.
    let (_d2, bad) = map_file("0 1.1.1.1 1\n");
    let out = run(SETPE, &["-w", "-f", &bad], None);
    assert!(text(&out.stderr).contains(":1: node number `0`"));
}

#[test]
fn setpe_needs_a_mode() {
    let out = run(SETPE, &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("required"));
}

#[test]
fn every_tool_writes_its_man_page_and_completions() {
    let d = tempfile::tempdir().unwrap();
    let tools = [
        ("showmap", env!("CARGO_BIN_EXE_showmap")),
        ("setpe", env!("CARGO_BIN_EXE_setpe")),
        ("omckpt", env!("CARGO_BIN_EXE_omckpt")),
        ("mosctl", env!("CARGO_BIN_EXE_mosctl")),
        ("mps", env!("CARGO_BIN_EXE_mps")),
        ("mtop", env!("CARGO_BIN_EXE_mtop")),
        ("migrate", env!("CARGO_BIN_EXE_migrate")),
        ("mosrun", env!("CARGO_BIN_EXE_mosrun")),
    ];
    for (name, bin) in tools {
        let out = Command::new(bin)
            .env("OM_GENERATE_DOCS", d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        let page = std::fs::read_to_string(d.path().join(format!("man/man1/{name}.1"))).unwrap();
        assert!(page.contains(&format!(".TH {name} 1")), "{name}: {page}");
        assert!(page.contains("\\-\\-help"), "{name}: options are listed");
        let bash = d.path().join(format!("completions/bash/{name}"));
        let check = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
        assert!(check.status.success(), "{name}: {check:?}");
        assert!(d.path().join(format!("completions/zsh/_{name}")).is_file());
        assert!(d
            .path()
            .join(format!("completions/fish/{name}.fish"))
            .is_file());
    }
    let mosctl = std::fs::read_to_string(d.path().join("man/man1/mosctl.1")).unwrap();
    for sub in [
        "getload", "setspeed", "noquiet", "whois", "expel", "bring", "where",
    ] {
        assert!(mosctl.contains(sub), "mosctl(1) documents {sub}");
    }
}

#[test]
fn daemon_tools_explain_that_omd_is_not_running() {
    for (bin, args) in [
        (env!("CARGO_BIN_EXE_mosctl"), vec!["status"]),
        (env!("CARGO_BIN_EXE_mosctl"), vec!["getload", "2"]),
        (env!("CARGO_BIN_EXE_mps"), vec![]),
        (env!("CARGO_BIN_EXE_mtop"), vec!["--json"]),
        (env!("CARGO_BIN_EXE_migrate"), vec!["1", "2"]),
        (env!("CARGO_BIN_EXE_mosctl"), vec!["where", "1"]),
    ] {
        let out = run(bin, &args, None);
        assert_eq!(out.status.code(), Some(1), "{bin} {args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("omd is not running on this node (cannot connect to /nonexistent/")
                && err.contains("omd --foreground"),
            "{bin} {args:?}: {err}"
        );
    }
}

#[test]
fn migrate_and_mosrun_name_bad_input() {
    let out = run(env!("CARGO_BIN_EXE_migrate"), &["1", "nowhere"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`nowhere` is not a node number, `home` or `balance`"),
        "{}",
        text(&out.stderr)
    );
    let out = run(env!("CARGO_BIN_EXE_mosrun"), &["-x", "true"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown option `-x`"),
        "{}",
        text(&out.stderr)
    );
    let out = run(env!("CARGO_BIN_EXE_mosrun"), &["-jfoo", "true"], None);
    assert!(
        text(&out.stderr).contains("bad node list `foo`"),
        "{}",
        text(&out.stderr)
    );
    // At home (-h) it simply runs the program, which keeps its exit status.
    let out = run(
        env!("CARGO_BIN_EXE_mosrun"),
        &["-h", "sh", "-c", "echo hi; exit 3"],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "hi\n");
}

/// A reader that stops early (`showmap | head -1`) ends the tool quietly by SIGPIPE, as
/// it ends C tools, instead of a panic message from a failed print.
#[test]
fn a_closed_pipe_ends_showmap_quietly() {
    let (_d, path) = map_file("1 10.0.0.1 60000\n");
    let mut child = Command::new(SHOWMAP)
        .args(["-f", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here; 60000 lines cannot all have fitted in the pipe.
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
    assert_eq!(text(&out.stderr), "", "showmap complained");
    assert!(first.starts_with(b"NODE"));
}
