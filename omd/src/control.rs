//! The Unix control socket: one JSON request line in, one JSON reply line out. Who asks
//! is taken from the socket's peer credentials.

use crate::migrate::Migrations;
use crate::node::Node;
use om_proto::{Envelope, ErrorKind, Processes, Request, Response, MAX_LINE, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// This omd, as what answers requests: its node's state and, once started, its
/// migrations. Cloned into each server (the control socket, the tree).
#[derive(Clone)]
pub struct Omd {
    /// The node's state.
    pub node: Arc<Mutex<Node>>,
    /// Its migrations (none in a tree served without them, as in tests).
    pub migrations: Option<Arc<Migrations>>,
    /// Its balancer (with the migrations).
    pub balancing: Option<Arc<crate::balancer::Balancing>>,
    /// What its migrations did, for `--metrics`.
    pub recorder: Option<Arc<crate::metrics::Recorder>>,
}

impl Omd {
    /// An omd of `node` alone, without migrations.
    pub fn node_only(node: Arc<Mutex<Node>>) -> Self {
        Self {
            node,
            migrations: None,
            balancing: None,
            recorder: None,
        }
    }
}

/// Answers one request from user `uid`. Shared by the socket and the /proc-style tree.
pub fn answer(omd: &Omd, request: Request, uid: u32) -> Response {
    let node = &*omd.node;
    let migrations = || {
        omd.migrations.as_ref().ok_or_else(|| Response::Error {
            kind: ErrorKind::Invalid,
            message: "migration is not running in this omd".into(),
        })
    };
    let outcome = |r: crate::migrate::Outcome| match r {
        Ok(message) => Response::Done { message },
        Err(e) => Response::Error {
            kind: e.kind(),
            message: e.to_string(),
        },
    };
    match request {
        Request::Migrate {
            pid,
            to,
            wait,
            eager,
        } => {
            let m = match migrations() {
                Ok(m) => m,
                Err(e) => return e,
            };
            let target = to;
            outcome(m.request(pid, target, uid, wait, eager))
        }
        Request::Lock { pid, on } => match migrations() {
            Ok(m) => outcome(m.set_lock(pid, on, uid)),
            Err(e) => e,
        },
        Request::Hint { pid, job } => match migrations() {
            Ok(m) => outcome(m.set_hint(pid, job, uid)),
            Err(e) => e,
        },
        Request::Group { pid, group } => match migrations() {
            Ok(m) => outcome(m.set_group(pid, group, uid)),
            Err(e) => e,
        },
        Request::Proc { pid } => match migrations() {
            Ok(m) => match m.proc_state(pid) {
                Some(p) => Response::Proc(p),
                None => Response::Error {
                    kind: ErrorKind::NotFound,
                    message: format!("no process {pid} at this node"),
                },
            },
            Err(e) => e,
        },
        Request::Controlled => match migrations() {
            Ok(m) => Response::Controlled(m.controlled()),
            Err(e) => e,
        },
        Request::Expel | Request::Bring if uid != 0 => Response::Error {
            kind: ErrorKind::PermissionDenied,
            message: format!("expel and bring need root (you are uid {uid})"),
        },
        Request::Expel | Request::Bring => {
            let m = match migrations() {
                Ok(m) => m,
                Err(e) => return e,
            };
            let message = if matches!(request, Request::Expel) {
                // As MOSIX: expelled guests must not come straight back.
                node.lock()
                    .expect("node lock")
                    .set(om_proto::Setting::Block, true);
                format!(
                    "sending {} guest(s) home; node blocked (mosctl noblock accepts guests again)",
                    m.expel()
                )
            } else {
                format!("bringing {} process(es) home", m.bring())
            };
            Response::Done { message }
        }
        Request::Processes => {
            let (id, record) = {
                let n = node.lock().expect("node lock");
                (n.cfg.node, n.own())
            };
            Response::Processes(Processes {
                node: id,
                record,
                processes: crate::procs::list(omd.migrations.as_deref()),
            })
        }
        r => {
            let changes = !matches!(
                r,
                Request::Status | Request::Node { .. } | Request::Whois { .. } | Request::GetMap
            );
            let what = if changes {
                format!("{r:?}")
            } else {
                String::new()
            };
            let (mut reply, interval) = {
                let mut n = node.lock().expect("node lock");
                let interval = n.cfg.interval;
                (n.handle(r, uid), interval)
            };
            if let Response::Status(s) = &mut reply {
                add_migration_status(omd, s, interval);
            }
            if changes {
                match &reply {
                    Response::Done { message } => tracing::info!(uid, "{message}"),
                    Response::Error { message, .. } => {
                        tracing::warn!(uid, "refused {what}: {message}")
                    }
                    _ => {}
                }
            }
            reply
        }
    }
}

/// The migration part of a status: the balancer and the migration port's links.
fn add_migration_status(omd: &Omd, s: &mut om_proto::Status, interval: std::time::Duration) {
    if let Some(m) = &omd.migrations {
        s.balancer = omd
            .balancing
            .as_ref()
            .map(|b| b.status(m, crate::balancer::interval(interval)));
        s.links = Some(m.link_counters());
    }
}

/// This node's status, as `mosctl status` shows it.
pub fn status(omd: &Omd) -> om_proto::Status {
    let (mut s, interval) = {
        let n = omd.node.lock().expect("node lock");
        (n.status(), n.cfg.interval)
    };
    add_migration_status(omd, &mut s, interval);
    s
}

/// Binds the control socket at `path`: refuses if another omd answers there, removes a
/// stale socket, and lets every user connect (each request is checked on its own).
pub fn bind(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "another omd is already running here (it answers at {})",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen at {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot open {} to users", path.display()))?;
    Ok(l)
}

/// The longest request line an ordinary user may send: every request but root's
/// `LoadMap` fits in a few hundred bytes.
pub const USER_REQUEST: usize = 64 << 10;
/// How many connections one ordinary user may hold open at a time.
pub const PER_USER: usize = 32;
/// How long a client has to send its whole request line.
pub const REQUEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The connections open per uid, and a place for each (see [`PER_USER`]).
#[derive(Default, Clone)]
struct Open(Arc<Mutex<HashMap<u32, usize>>>);

/// One of a uid's places; giving it back when dropped.
struct Place(Open, u32);

impl Open {
    /// A place for `uid`, unless an ordinary user holds [`PER_USER`] already.
    fn take(&self, uid: u32) -> Option<Place> {
        let mut m = self.0.lock().expect("open lock");
        let n = m.entry(uid).or_insert(0);
        if uid != 0 && *n >= PER_USER {
            return None;
        }
        *n += 1;
        Some(Place(self.clone(), uid))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().expect("open lock");
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Serves the tools until the task is dropped. What one user can make omd hold is
/// bounded, so that nobody can starve or exhaust it for the others: an ordinary user has
/// [`PER_USER`] connections at a time, each request line [`USER_REQUEST`] bytes and
/// [`REQUEST_WITHIN`] to arrive; root's lines may be [`MAX_LINE`] long (a whole map).
pub async fn serve(listener: UnixListener, omd: Omd) {
    let open = Open::default();
    let mut last_refusal = None::<std::time::Instant>;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(uid) = stream.peer_cred().map(|c| c.uid()) else {
                    continue;
                };
                let Some(place) = open.take(uid) else {
                    // Said once in a while, not once per connection of a flood.
                    if last_refusal.is_none_or(|t| t.elapsed().as_secs() >= 10) {
                        tracing::warn!(uid, "too many control connections: refusing more");
                        last_refusal = Some(std::time::Instant::now());
                    }
                    tokio::spawn(refuse(stream, uid));
                    continue;
                };
                let omd = omd.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, omd, uid).await {
                        tracing::debug!("control connection: {e}");
                    }
                    drop(place);
                });
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Tells a user over their limit of connections so, and closes.
async fn refuse(mut stream: UnixStream, uid: u32) {
    let reply = Response::Error {
        kind: ErrorKind::Invalid,
        message: format!(
            "too many connections from uid {uid} (at most {PER_USER} at a time); try again"
        ),
    };
    if let Ok(mut out) = serde_json::to_string(&reply) {
        out.push('\n');
        let _ = tokio::time::timeout(REQUEST_WITHIN, stream.write_all(out.as_bytes())).await;
    }
}

async fn connection(stream: UnixStream, omd: Omd, uid: u32) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let limit = if uid == 0 { MAX_LINE } else { USER_REQUEST };
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(limit as u64));
    let read = reader.read_line(&mut line);
    let reply = match tokio::time::timeout(REQUEST_WITHIN, read).await {
        Err(_) => Response::Error {
            kind: ErrorKind::Invalid,
            message: format!("no whole request within {} s", REQUEST_WITHIN.as_secs()),
        },
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if !line.ends_with('\n') && line.len() >= limit => Response::Error {
            kind: ErrorKind::Invalid,
            message: format!("request longer than {limit} bytes"),
        },
        Ok(Ok(_)) => match serde_json::from_str::<Envelope>(&line) {
            Err(e) => Response::Error {
                kind: ErrorKind::Invalid,
                message: format!("not a request: {e}"),
            },
            Ok(env) if env.version != PROTOCOL_VERSION => Response::Error {
                kind: ErrorKind::Version,
                message: format!(
                    "this omd speaks protocol version {PROTOCOL_VERSION}, the tool {}; \
                     install matching versions",
                    env.version
                ),
            },
            Ok(env) => tokio::task::spawn_blocking(move || answer(&omd, env.request, uid))
                .await
                .unwrap_or_else(|e| Response::Error {
                    kind: ErrorKind::Invalid,
                    message: format!("omd failed to answer: {e}"),
                }),
        },
    };
    let mut out = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    out.push('\n');
    w.write_all(out.as_bytes()).await?;
    w.shutdown().await
}
