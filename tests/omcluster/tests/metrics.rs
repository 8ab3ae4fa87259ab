//! `omd --metrics`: a running 3-node cluster scraped over HTTP from inside its nodes,
//! parsed with a Prometheus text-format parser, and checked against `mosctl status` and
//! against what runs where. Needs root.

use omcluster::harness::TestCluster;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omcluster");
const PORT: &str = "9723";

fn tool(name: &str) -> String {
    omcluster::harness::workspace_tool(BIN, name)
}

/// What `GET path` at `addr`:PORT answers, asked from node `node` (bash's /dev/tcp).
fn get(c: &TestCluster, node: u16, addr: &str, path: &str) -> String {
    let o = c
        .command(node, "bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/{addr}/{PORT} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The samples of node `node`'s metrics, by name and labels (`name{k="v",...}`, labels
/// sorted), parsed by `prometheus-parse`.
fn scrape(c: &TestCluster, node: u16) -> HashMap<String, f64> {
    let reply = get(c, node, "127.0.0.1", "/metrics");
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the text format parses");
    assert!(!scrape.docs.is_empty(), "HELP lines");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let name = match &s.value {
                prometheus_parse::Value::Histogram(_) => format!("{}_count", s.metric),
                _ => s.metric.clone(),
            };
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                _ => f64::NAN,
            };
            (format!("{name}{{{}}}", labels.join(",")), v)
        })
        .collect()
}

fn status(c: &TestCluster, node: u16) -> om_proto::Status {
    let o = c
        .command(node, &tool("mosctl"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn metrics_of_a_running_cluster_parse_and_agree_with_mosctl_status() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let c = omcluster::harness::private_cluster_with(
        BIN,
        "t-metrics",
        3,
        (None, None),
        &checkout,
        &["--metrics", PORT],
    );
    let m = scrape(&c, 1);
    let s = status(&c, 1);
    for v in &s.nodes {
        let node = format!("node=\"{}\"", v.node);
        assert_eq!(
            m[&format!("omd_node_up{{{node}}}")],
            1.0,
            "node {} up",
            v.node
        );
        let r = v.record.expect("a record of every node");
        assert_eq!(m[&format!("omd_node_speed{{{node}}}")], f64::from(r.speed));
        assert_eq!(m[&format!("omd_node_cpus{{{node}}}")], f64::from(r.cpus));
        assert_eq!(
            m[&format!("omd_node_memory_bytes{{kind=\"total\",{node}}}")],
            r.tmem as f64
        );
        assert!(m[&format!("omd_node_age_seconds{{{node}}}")] < 10.0);
    }
    assert_eq!(m["omd_node_self{node=\"1\"}"], 1.0);
    assert!(m["omd_gossip_received_packets_total{}"] > 0.0);
    assert_eq!(
        m["omd_gossip_dropped_packets_total{reason=\"bad_tag\"}"],
        0.0
    );
    assert_eq!(m["omd_guests{}"], 0.0);

    // A process of node 1 at node 2: a guest there, away here; counters only grow.
    let spin = om_testprogs::build(
        "balance/spin",
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-programs"),
    );
    let mut job = c
        .command(1, &tool("mosrun"))
        .args(["-2", &spin.display().to_string(), "8"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let (at1, at2) = (scrape(&c, 1), scrape(&c, 2));
        // Lazily moved, all of its memory follows within moments.
        let all_away = at1.get("omd_migration_total_seconds_count{}") == Some(&1.0);
        if at1["omd_processes_away{}"] == 1.0 && at2["omd_guests{}"] == 1.0 && all_away {
            assert!(
                at1["omd_gossip_received_packets_total{}"]
                    >= m["omd_gossip_received_packets_total{}"]
            );
            assert!(at2["omd_migration_links_total{reason=\"accepted\"}"] >= 1.0);
            // mosrun -2 asked for it: one requested move, one freeze time.
            assert_eq!(
                at1["omd_migrations_total{kind=\"requested\",result=\"done\"}"],
                1.0
            );
            assert_eq!(at1["omd_migration_freeze_seconds_count{}"], 1.0);
            assert!(at1["omd_memory_moved_away_bytes_total{}"] > 0.0);
            // Lazily moved: its pages were served on request.
            assert!(at1["omd_pages_served_bytes_total{}"] > 0.0);
            assert_eq!(at2["omd_pages_served_bytes_total{}"], 0.0);
            assert_eq!(at2["omd_guest_moves_total{how=\"arrived\"}"], 1.0);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never seen away: {:?} {:?}",
            at1.get("omd_processes_away{}"),
            at2.get("omd_guests{}")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(job.wait().unwrap().success());
    // The guest left node 2 as the process ended.
    let t = Instant::now();
    while scrape(&c, 2).get("omd_guest_moves_total{how=\"left\"}") != Some(&1.0) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the guest never left"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its output went home as a forwarded write at least: counted, and timed no faster
    // than any round trip can be.
    let at2 = scrape(&c, 2);
    let calls = at2["omd_forwarded_call_seconds_count{}"];
    assert!(calls >= 1.0, "forwarded calls: {calls}");
    let sum = at2["omd_forwarded_call_seconds_sum{}"];
    assert!(sum > 0.0 && sum < calls * 5.0, "{sum} s for {calls} calls");
    // Node 1 had no guest, and so no forwarded call.
    assert_eq!(scrape(&c, 1)["omd_forwarded_call_seconds_count{}"], 0.0);

    // A move that fails is counted with its reason: node 9 is not in the map.
    let o = c
        .command(1, "sh")
        .arg("-c")
        .arg(format!(
            "sleep 30 & {} --wait $! 9; s=$?; kill $!; exit $s",
            tool("migrate")
        ))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a move to node 9: {o:?}");
    let at1 = scrape(&c, 1);
    assert_eq!(
        at1["omd_migration_failures_total{kind=\"requested\",reason=\"no_node\"}"],
        1.0
    );
    assert_eq!(
        at1["omd_migrations_total{kind=\"requested\",result=\"failed\"}"],
        1.0
    );

    // Only /metrics, and only on localhost unless told otherwise.
    assert!(get(&c, 1, "127.0.0.1", "/other").starts_with("HTTP/1.1 404"));
    let far = get(&c, 2, &omcluster::net::node_addr(1).to_string(), "/metrics");
    assert!(far.is_empty(), "node 2 reached node 1's metrics: {far}");
}
