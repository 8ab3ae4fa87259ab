//! `omd --view ADDR`: omview, the web view of the cluster (openMosixView's successor).
//! Off by default, bound to localhost unless an address says otherwise, like `--metrics`.
//!
//! - `GET /` the page (one file, `view/index.html`: no build step, no library);
//! - `GET /state` this node's view now, as JSON ([`State`]); `GET /events` the same once
//!   a second as server-sent events;
//! - `POST /migrate` `{"pid": PID, "to": "2" | "home" | "balance"}` moves a process of
//!   this node, through the very request `migrate` sends. It needs the header
//!   `X-Omview-Token` with the token omd wrote at start to `--view-token` (root only,
//!   mode 0600): who can read that file may move any process, as root may.
//!
//! Requests whose `Host` is a name other than `localhost` are refused, so that a web page
//! elsewhere cannot reach the view through a name it points at 127.0.0.1 (DNS
//! rebinding); the token is sent in a header no other site's page can set.

use crate::control::{answer, Omd};
use crate::http::{HttpRequest, Reply};
use om_proto::{MigrateTo, Request, Response};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const PAGE: &str = include_str!("view/index.html");

/// One node as the page draws it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewNode {
    pub node: u16,
    pub up: bool,
    /// The node serving the page.
    pub me: bool,
    /// In standard CPUs kept busy.
    pub load: f64,
    pub speed: u32,
    pub cpus: u16,
    /// 0 to 1.
    pub util: f64,
    /// Available to new processes, and in all, bytes.
    pub mem: u64,
    pub tmem: u64,
}

/// One process of this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewProcess {
    pub pid: i32,
    pub user: String,
    pub comm: String,
    pub cmdline: String,
    /// 0: here, its home; else the node it runs at.
    pub node: u16,
    /// CPU seconds, at home and away.
    pub cpu: f64,
}

/// What `/state` and `/events` give.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub node: u16,
    pub nodes: Vec<ViewNode>,
    pub processes: Vec<ViewProcess>,
}

/// This node's view now.
pub fn state(omd: &Omd) -> State {
    let s = crate::control::status(omd);
    let nodes = s
        .nodes
        .iter()
        .map(|v| {
            let r = v.record.unwrap_or_default();
            ViewNode {
                node: v.node,
                up: v.up,
                me: v.me,
                load: f64::from(r.load) / 100.0,
                speed: r.speed,
                cpus: r.cpus,
                util: f64::from(r.util) / 10_000.0,
                mem: r.mem,
                tmem: r.tmem,
            }
        })
        .collect();
    let me = std::process::id() as i32;
    let processes = crate::procs::list(omd.migrations.as_deref())
        .into_iter()
        // Neither omd nor the node's init: moving them means nothing.
        .filter(|p| p.pid != me && p.pid != 1 && !p.cmdline.is_empty())
        .map(|p| ViewProcess {
            pid: p.pid,
            user: p.user,
            comm: p.comm,
            cmdline: p.cmdline,
            node: p.node,
            cpu: p.cpu_ticks as f64 / p.ticks_per_second.max(1) as f64,
        })
        .collect();
    State {
        node: s.node,
        nodes,
        processes,
    }
}

/// A new token, written to `path` (mode 0600) for root to read.
pub fn new_token(path: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let token: String = crate::key::random()?
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{token}")?;
    Ok(token)
}

/// What `POST /migrate` is sent.
#[derive(Debug, Deserialize)]
struct MoveRequest {
    pid: i32,
    to: String,
}

/// What `POST /migrate` answers.
#[derive(Debug, Serialize)]
struct MoveAnswer {
    ok: bool,
    message: String,
}

/// Whether `host` (a `Host` header) names this machine by address or as localhost.
fn local_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

fn json(status: &'static str, v: &impl Serialize) -> Reply {
    Reply::Whole(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// A move not made, and why.
fn refused(status: &'static str, message: String) -> Reply {
    json(status, &MoveAnswer { ok: false, message })
}

async fn handle(r: HttpRequest, omd: Omd, token: Arc<String>) -> Reply {
    if r.header("host").is_some_and(|h| !local_host(h)) {
        return Reply::text(
            "421 Misdirected Request",
            "omview answers to an address or localhost only\n",
        );
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/") => Reply::Whole(
            "200 OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
        ),
        ("GET", "/state") => {
            let s = tokio::task::spawn_blocking(move || state(&omd)).await;
            match s {
                Ok(s) => json("200 OK", &s),
                Err(_) => Reply::text("500 Internal Server Error", "no state\n"),
            }
        }
        ("GET", "/events") => {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                loop {
                    let omd = omd.clone();
                    let Ok(s) = tokio::task::spawn_blocking(move || state(&omd)).await else {
                        return;
                    };
                    let text = serde_json::to_string(&s).unwrap_or_default();
                    if tx.send(text).await.is_err() {
                        return; // the page went away
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            Reply::Events(rx)
        }
        ("POST", "/migrate") => {
            let given = r.header("x-omview-token").unwrap_or("");
            if !om_wire::same(given.as_bytes(), token.as_bytes()) {
                return refused(
                    "403 Forbidden",
                    "moving a process needs the token (X-Omview-Token)".into(),
                );
            }
            let m: MoveRequest = match serde_json::from_slice(&r.body) {
                Ok(m) => m,
                Err(e) => {
                    return refused(
                        "400 Bad Request",
                        format!("expected {{\"pid\": PID, \"to\": NODE}}: {e}"),
                    )
                }
            };
            let to: MigrateTo = match m.to.parse() {
                Ok(t) => t,
                Err(e) => return refused("400 Bad Request", e.to_string()),
            };
            let request = Request::Migrate {
                pid: m.pid,
                to,
                wait: false,
                eager: false,
            };
            let reply = tokio::task::spawn_blocking(move || answer(&omd, request, 0)).await;
            match reply {
                Ok(Response::Done { message }) => json("200 OK", &MoveAnswer { ok: true, message }),
                Ok(Response::Error { message, .. }) => {
                    json("409 Conflict", &MoveAnswer { ok: false, message })
                }
                _ => Reply::text("500 Internal Server Error", "no answer\n"),
            }
        }
        ("GET", _) => Reply::text("404 Not Found", "not here: see /\n"),
        _ => Reply::text("405 Method Not Allowed", "GET, or POST /migrate\n"),
    }
}

/// Serves omview on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, omd: Omd, token: String) {
    let token = Arc::new(token);
    crate::http::serve(listener, move |r| handle(r, omd.clone(), token.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_hosts() {
        for ok in [
            "127.0.0.1:9724",
            "localhost:9724",
            "localhost",
            "[::1]:80",
            "198.18.0.1",
        ] {
            assert!(local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9724",
            "evil.example",
            "127.0.0.1.evil.example:80",
        ] {
            assert!(!local_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_token_is_new_each_time_and_readable_by_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("view.token");
        let a = new_token(&p).unwrap();
        let b = new_token(&p).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{b}\n"));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
