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

#[test]
fn refuses_to_start_without_a_good_map_key_or_node() {
    let d = tempfile::tempdir().unwrap();
    let map = d.path().join("openmosix.map");
    let key = d.path().join("cluster.key");
    let s = |p: &std::path::Path| p.display().to_string();
    std::fs::write(&map, "1 198.18.200.1 3\n").unwrap();

    let o = omd(&[
        "--foreground",
        "--map",
        "/nonexistent/map",
        "--key",
        &s(&key),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("/nonexistent/map"), "{}", err(&o));

    let o = omd(&["--foreground", "--map", &s(&map), "--key", &s(&key)]);
    assert!(err(&o).contains("cannot read the cluster key") && err(&o).contains("omd keygen"));

    let o = omd(&["keygen", "--out", &s(&key)]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = omd(&["keygen", "--out", &s(&key)]);
    assert!(err(&o).contains("already exists"), "{}", err(&o));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = omd(&["--foreground", "--map", &s(&map), "--key", &s(&key)]);
    assert!(err(&o).contains("chmod 600"), "{}", err(&o));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // None of this machine's addresses is in the map.
    let o = omd(&["--foreground", "--map", &s(&map), "--key", &s(&key)]);
    assert!(
        err(&o).contains("give the node number with --node N"),
        "{}",
        err(&o)
    );
    let o = omd(&[
        "--foreground",
        "--map",
        &s(&map),
        "--key",
        &s(&key),
        "--node",
        "9",
    ]);
    assert!(
        err(&o).contains("--node 9: node 9 is not in"),
        "{}",
        err(&o)
    );

    // In the background, the reason is shown all the same.
    let o = omd(&[
        "--map",
        &s(&map),
        "--key",
        &s(&key),
        "--node",
        "9",
        "--log",
        &s(&d.path().join("log")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--node 9: node 9 is not in"),
        "{}",
        err(&o)
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
