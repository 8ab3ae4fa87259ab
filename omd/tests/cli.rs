//! omd's command line: it refuses to start, with the reason, when the map, the key or
//! the node is wrong; keygen; simulate; its man page.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

const OMD: &str = env!("CARGO_BIN_EXE_omd");

fn omd(args: &[&str]) -> Output {
    Command::new(OMD)
        .args(args)
        .env("OM_CONTROL_SOCKET", "/nonexistent/omd.sock")
        .output()
        .unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs omd with `args` and checks that it exits 1 saying `why`.
fn refuses(args: &[&str], why: &str) {
    let o = omd(args);
    assert_eq!(o.status.code(), Some(1), "{args:?}");
    assert!(err(&o).contains(why), "{args:?}: {}", err(&o));
}

#[test]
fn refuses_to_start_without_a_good_map_key_or_node() {
    let d = tempfile::tempdir().unwrap();
    let map = d.path().join("openmosix.map").display().to_string();
    let key = d.path().join("cluster.key").display().to_string();
    let log = d.path().join("log").display().to_string();
    std::fs::write(&map, "1 198.18.200.1 3\n").unwrap();
    let check = |extra: &[&str], why: &str| {
        let mut a = vec!["--foreground", "--map", map.as_str(), "--key", key.as_str()];
        a.extend_from_slice(extra);
        refuses(&a, why);
    };

    refuses(
        &["--foreground", "--map", "/nonexistent/map", "--key", &key],
        "/nonexistent/map",
    );
    check(&[], "cannot read the cluster key");
    check(&[], "omd keygen");

    let o = omd(&["keygen", "--out", &key]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    refuses(&["keygen", "--out", &key], "already exists");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    check(&[], "chmod 600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // None of this machine's addresses is in the map.
    check(&[], "give the node number with --node N");
    check(&["--node", "9"], "--node 9: node 9 is not in");
    // In the background, the reason is shown all the same.
    refuses(
        &["--map", &map, "--key", &key, "--node", "9", "--log", &log],
        "--node 9: node 9 is not in",
    );
}

#[test]
fn simulate_prints_a_table_or_json() {
    let o = omd(&["simulate", "--nodes", "50,200", "--seconds", "20", "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(
            (r["sent_per_node_s"].as_f64().unwrap() - 1.0).abs() < 0.05,
            "{r}"
        );
        assert!(r["mean_age_s"].as_f64().unwrap() > 0.0);
        assert!(r["max_age_s"].as_f64().unwrap() >= r["mean_age_s"].as_f64().unwrap());
    }
    // More nodes, older information.
    assert!(runs[1]["mean_age_s"].as_f64() > runs[0]["mean_age_s"].as_f64());
    let o = omd(&["simulate", "--nodes", "16", "--seconds", "10"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("NODES  WINDOW"), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("16 "), "{table}");
    let o = omd(&["simulate", "--nodes", "16", "--loss", "1.5"]);
    assert!(err(&o).contains("--loss 1.5"), "{}", err(&o));
}

#[test]
fn writes_its_man_page_in_section_8() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(OMD)
        .env("OM_GENERATE_DOCS", d.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let page = std::fs::read_to_string(d.path().join("man/man8/omd.8")).unwrap();
    for s in [
        ".TH omd 8",
        "keygen",
        "simulate",
        "\\-\\-down\\-after",
        "\\-\\-hpc\\-root",
    ] {
        assert!(page.contains(s), "omd(8) has {s}");
    }
    assert!(d.path().join("completions/bash/omd").is_file());
}
