//! Starting omd: checks before anything runs, the background start with readiness, and
//! the tasks of a running daemon (measure, send, receive, serve the tools).

use crate::cli::RunArgs;
use crate::load::{self, Smoothed};
use crate::measure::{self, Cgroups};
use crate::node::{self, Config, Node};
use anyhow::{bail, Context, Result};
use om_map::{ClusterMap, NodeId};
use om_proto::NodeRecord;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `omd` without a subcommand.
pub fn run(args: RunArgs) -> Result<()> {
    if !args.foreground && !args.background_child {
        return start_in_background(&args);
    }
    init_logging();
    let prepared = match prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            if args.background_child {
                // The starting omd waits for this line and shows it to the user.
                println!("error: {e:#}");
            }
            return Err(e);
        }
    };
    serve(prepared, &args)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OMD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Starts a copy of omd in the background (its own process group, logging to the log
/// file) and returns once it says it is ready, or with the reason it could not start.
fn start_in_background(args: &RunArgs) -> Result<()> {
    if let Some(dir) = args.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("cannot open the log file {}", args.log.display()))?;
    let exe = std::env::current_exe().context("cannot find the omd binary")?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--background-child")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .context("cannot start omd in the background")?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    BufReader::new(out).read_line(&mut line)?;
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("ready ") {
        println!(
            "omd: {rest}; pid {}, log in {}",
            child.id(),
            args.log.display()
        );
        return Ok(());
    }
    if let Some(e) = line.strip_prefix("error: ") {
        let _ = child.wait();
        bail!("{e}");
    }
    let status = child.wait()?;
    bail!(
        "omd stopped while starting ({status}); see {}",
        args.log.display()
    )
}

/// Everything checked and bound before the daemon reports ready.
struct Prepared {
    cfg: Config,
    map: ClusterMap,
    map_origin: String,
    /// `--discover`'s address.
    discover: Option<Ipv4Addr>,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    /// `--metrics`' listener.
    metrics: Option<std::net::TcpListener>,
    /// `--view`'s listener.
    view: Option<std::net::TcpListener>,
    control: std::os::unix::net::UnixListener,
    cgroups: Cgroups,
    /// Speed of one unthrottled CPU, before the quota is applied.
    raw_speed: u32,
    /// Users all of whose processes are balanced (`--balance-users`).
    balance_users: Vec<u32>,
}

fn interface_addrs() -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|s| IpAddr::V4(s.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
            })
            .collect()
        })
        .unwrap_or_default()
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s < 86_400.0) {
        bail!("{what} {s}: give a number of seconds above 0");
    }
    Ok(Duration::from_secs_f64(s))
}

/// The multicast group of `--discover`.
pub const DISCOVERY_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 72, 3);

/// `--discover` without an address: the machine's one IPv4 address that is neither
/// loopback nor link-local.
fn discovery_addr() -> Result<Ipv4Addr> {
    let mut found: Vec<Ipv4Addr> = interface_addrs()
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() => Some(v4),
            _ => None,
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("--discover: this machine has no IPv4 address to discover from"),
        many => bail!(
            "--discover: this machine has several IPv4 addresses ({}); say which is on the \
             cluster network: --discover=ADDRESS",
            many.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The map to start from, this node's number when discovery gives it (else it is found
/// in the map once the key is read: [`own_number`]), where the map came from, and the
/// address discovery runs on (`--discover`).
fn initial_map(args: &RunArgs) -> Result<(ClusterMap, Option<NodeId>, String, Option<Ipv4Addr>)> {
    if let Some(given) = args.discover {
        let addr = match given {
            Some(a) => a,
            None => discovery_addr()?,
        };
        if !interface_addrs().contains(&IpAddr::V4(addr)) {
            bail!("--discover={addr}: this machine has no such address");
        }
        let node = match args.node {
            Some(n) => n,
            None => node::node_from_addr(IpAddr::V4(addr))
                .map_err(|e| anyhow::anyhow!("--discover: {e}"))?,
        };
        if node == 0 {
            bail!("--node 0: node numbers are 1 to 65535");
        }
        let map = ClusterMap::from_nodes([om_map::Node {
            id: node,
            addr: IpAddr::V4(addr),
            aliases: Vec::new(),
        }])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let origin = format!("discovery on {addr} (group {DISCOVERY_GROUP})");
        return Ok((map, Some(node), origin, Some(addr)));
    }
    let map = ClusterMap::load(&args.map).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((map, None, args.map.display().to_string(), None))
}

/// This node's number in `map` (the map file's): `--node N`, or found from this
/// machine's addresses.
fn own_number(args: &RunArgs, map: &ClusterMap) -> Result<NodeId> {
    Ok(match args.node {
        Some(n) if map.node(n).is_some() => n,
        Some(n) => bail!("--node {n}: node {n} is not in {}", args.map.display()),
        None => node::own_node(map, &interface_addrs())
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.map.display()))?,
    })
}

fn prepare(args: &RunArgs) -> Result<Prepared> {
    // The map, then the key, then the node: each error in that order.
    let (map, node, map_origin, discover) = initial_map(args)?;
    let key = crate::key::load(&args.key)?;
    let node = match node {
        Some(n) => n,
        None => own_number(args, &map)?,
    };
    let interval = seconds("--interval", args.interval)?;
    let down_after = seconds("--down-after", args.down_after)?;
    if down_after <= interval {
        bail!(
            "--down-after {} must be longer than --interval {}",
            args.down_after,
            args.interval
        );
    }
    let own_addr = map.node(node).expect("checked").addr;
    let any: IpAddr = if own_addr.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    let udp = std::net::UdpSocket::bind((any, args.port))
        .with_context(|| format!("cannot listen for gossip on UDP port {}", args.port))?;
    udp.set_nonblocking(true)?;
    if let Some(addr) = discover {
        udp.join_multicast_v4(&DISCOVERY_GROUP, &addr)
            .with_context(|| format!("--discover: cannot join {DISCOVERY_GROUP} on {addr}"))?;
        // Announcements stay on the cluster's network, leave by its interface, and do
        // not come back to this node.
        let s = socket2::SockRef::from(&udp);
        s.set_multicast_if_v4(&addr)
            .and_then(|_| s.set_multicast_ttl_v4(1))
            .and_then(|_| s.set_multicast_loop_v4(false))
            .with_context(|| format!("--discover: cannot send to {DISCOVERY_GROUP} from {addr}"))?;
    }
    let tcp = std::net::TcpListener::bind((any, args.port))
        .with_context(|| format!("cannot listen for migrations on TCP port {}", args.port))?;
    let listen = |addr: Option<std::net::SocketAddr>, what: &str, flag: &str| {
        addr.map(|a| {
            std::net::TcpListener::bind(a)
                .with_context(|| format!("cannot serve {what} at {a} ({flag})"))
        })
        .transpose()
    };
    let metrics = listen(args.metrics, "metrics", "--metrics")?;
    let view = listen(args.view, "omview", "--view")?;
    let balance_users = args
        .balance_users
        .iter()
        .map(|u| user_id(u))
        .collect::<Result<Vec<u32>>>()?;
    let control = crate::control::bind(&args.control_socket)?;
    let cgroups = Cgroups::detect();
    let raw_speed = match args.speed {
        Some(s) => s,
        None => measure::benchmark(Duration::from_millis(150)),
    };
    Ok(Prepared {
        cfg: Config {
            node,
            port: args.port,
            interval,
            down_after,
            window: usize::from(args.window),
            key,
        },
        map,
        map_origin,
        discover,
        udp,
        tcp,
        metrics,
        view,
        control,
        cgroups,
        raw_speed,
        balance_users,
    })
}

/// The uid of user `u` (a name or a number); root is refused.
fn user_id(u: &str) -> Result<u32> {
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => nix::unistd::User::from_name(u)
            .ok()
            .flatten()
            .map(|x| x.uid.as_raw())
            .with_context(|| format!("--balance-users: no user `{u}`"))?,
    };
    if uid == 0 {
        bail!("--balance-users: root's processes are not balanced (system daemons run as root)");
    }
    Ok(uid)
}

/// What one measurement gives besides the run queue.
fn capacity_now(cg: &Cgroups, raw_speed: u32) -> (u16, f64, u32) {
    let (cpus, cap) = load::capacity(measure::online_cpus(), cg.cpu_quota());
    (cpus, cap, load::node_speed(raw_speed, cpus, cap))
}

fn serve(p: Prepared, args: &RunArgs) -> Result<()> {
    let (cpus, cap, speed) = capacity_now(&p.cgroups, p.raw_speed);
    let id = p.cfg.node;
    let node = Arc::new(Mutex::new(Node::new(p.cfg, p.map, p.map_origin, speed)));
    if let Some(addr) = p.discover {
        node.lock().expect("node lock").discover(IpAddr::V4(addr));
    }
    // A first record at once, so that the tools have numbers before the first second.
    node.lock().expect("node lock").set_measured(record(
        measure::memory(&p.cgroups),
        0,
        speed,
        cpus,
        0,
    ));
    let (migrations, balancing) =
        crate::migrate::start(node.clone(), args.guest_ids, p.balance_users.clone(), p.tcp);
    let recorder = Arc::new(crate::metrics::Recorder::default());
    let heard = recorder.clone();
    migrations.observe(Box::new(move |e| heard.record(e)));
    let omd = crate::control::Omd {
        node: node.clone(),
        migrations: Some(migrations.clone()),
        balancing: Some(balancing),
        recorder: Some(recorder),
    };
    // The tree: through the kernel module's device when it is loaded, else over FUSE.
    let device = !args.no_hpc
        && crate::hpcdev::serve(omd.clone(), &args.hpc_device).with_context(|| {
            format!(
                "cannot serve /proc/hpc through {} (is another omd using it? --no-hpc runs without the tree)",
                args.hpc_device.display()
            )
        })?;
    let fuse = if args.no_hpc || device {
        None
    } else {
        Some(
            crate::hpcfs::mount(omd.clone(), &args.hpc_root).with_context(|| {
                format!(
                    "cannot mount the /proc-style tree at {} (use --hpc-root DIR, or --no-hpc)",
                    args.hpc_root.display()
                )
            })?,
        )
    };
    if device {
        tracing::info!("serving /proc/hpc through {}", args.hpc_device.display());
    }
    write_pidfile(&args.pidfile)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let udp = Arc::new(tokio::net::UdpSocket::from_std(p.udp)?);
        p.control.set_nonblocking(true)?;
        let control = tokio::net::UnixListener::from_std(p.control)?;
        let metrics = match p.metrics {
            Some(l) => {
                l.set_nonblocking(true)?;
                tracing::info!("serving metrics at http://{}/metrics", l.local_addr()?);
                Some(tokio::net::TcpListener::from_std(l)?)
            }
            None => None,
        };
        let metrics = async {
            match metrics {
                Some(l) => crate::metrics::serve(l, omd.clone()).await,
                None => std::future::pending().await,
            }
        };
        let view = match p.view {
            Some(l) => {
                l.set_nonblocking(true)?;
                let token = crate::view::new_token(&args.view_token).with_context(|| {
                    format!(
                        "cannot write the omview token {}",
                        args.view_token.display()
                    )
                })?;
                tracing::info!(
                    "serving omview at http://{}/ (moves need the token in {})",
                    l.local_addr()?,
                    args.view_token.display()
                );
                Some((tokio::net::TcpListener::from_std(l)?, token))
            }
            None => None,
        };
        let view = async {
            match view {
                Some((l, token)) => crate::view::serve(l, omd.clone(), token).await,
                None => std::future::pending().await,
            }
        };
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let cfg = node.lock().expect("node lock").cfg.clone();
        tracing::info!(
            node = id,
            speed,
            cpus,
            capacity = cap,
            "omd started: port {}, every {:?}, down after {:?}",
            cfg.port,
            cfg.interval,
            cfg.down_after
        );
        if args.background_child {
            println!("ready node {id}");
            let _ = std::io::stdout().flush();
        }
        tokio::select! {
            _ = measure_loop(node.clone(), p.cgroups, p.raw_speed, args.speed.is_some()) => {}
            _ = send_loop(node.clone(), udp.clone()) => {}
            _ = receive_loop(node.clone(), udp) => {}
            _ = crate::control::serve(control, omd.clone()) => {}
            _ = metrics => {}
            _ = view => {}
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        Ok::<(), anyhow::Error>(())
    });
    migrations.shutdown();
    drop(fuse);
    let _ = std::fs::remove_file(&args.control_socket);
    let _ = std::fs::remove_file(&args.pidfile);
    if args.view.is_some() {
        let _ = std::fs::remove_file(&args.view_token);
    }
    result
}

fn write_pidfile(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// This node's record from its memory ([`measure::memory`]), load, speed, CPUs and
/// utilisation (the settings flags are added by [`Node::set_measured`]).
fn record(memory: (u64, u64, u64), load: u32, speed: u32, cpus: u16, util: u16) -> NodeRecord {
    let (mem, free, tmem) = memory;
    NodeRecord {
        load,
        speed,
        cpus,
        util,
        flags: 0,
        mem,
        free,
        tmem,
    }
}

/// Samples the run queue four times a second; once a second turns the samples into
/// this node's record.
async fn measure_loop(node: Arc<Mutex<Node>>, cg: Cgroups, raw_speed: u32, fixed: bool) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut smoothed = Smoothed::default();
    let (mut sum, mut samples) = (0usize, 0u32);
    let mut last = (Instant::now(), cg.cpu_usage_ns());
    let mut was_up: Vec<NodeId> = Vec::new();
    loop {
        tick.tick().await;
        sum += measure::runnable();
        samples += 1;
        if samples < 4 {
            continue;
        }
        let runq = sum as f64 / f64::from(samples);
        (sum, samples) = (0, 0);
        let (cpus, cap, calibrated) = capacity_now(&cg, raw_speed);
        let now = (Instant::now(), cg.cpu_usage_ns());
        let util = match (last.1, now.1) {
            (Some(a), Some(b)) => load::utilisation(
                b.saturating_sub(a),
                now.0.duration_since(last.0).as_nanos() as u64,
                cap,
            ),
            _ => 0,
        };
        last = now;
        let memory = measure::memory(&cg); // read before taking the lock
        let mut n = node.lock().expect("node lock");
        if !fixed {
            n.set_calibrated(calibrated);
        }
        let speed = n.speed();
        smoothed.update(load::raw_load(runq, speed, cpus));
        n.set_local_load(smoothed.local.round() as u32);
        n.set_measured(record(
            memory,
            smoothed.exported.round() as u32,
            speed,
            cpus,
            util,
        ));
        let me = n.cfg.node;
        let up: Vec<NodeId> = n.up_nodes().into_iter().filter(|&i| i != me).collect();
        for id in up.iter().filter(|i| !was_up.contains(i)) {
            tracing::info!("node {id} is up");
        }
        for id in was_up.iter().filter(|i| !up.contains(i)) {
            tracing::warn!(
                "node {id} is down (not heard of for {:?})",
                n.cfg.down_after
            );
        }
        was_up = up;
    }
}

/// Once per interval (at a random phase): one packet to one random peer; when
/// discovering, every other interval (the first at once) an announcement to the group.
async fn send_loop(node: Arc<Mutex<Node>>, udp: Arc<tokio::net::UdpSocket>) {
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    let (interval, port) = {
        let n = node.lock().expect("node lock");
        (n.cfg.interval, n.cfg.port)
    };
    tokio::time::sleep(interval.mul_f64(rng.random::<f64>())).await;
    let mut tick = tokio::time::interval(interval);
    for round in 0u64.. {
        tick.tick().await;
        if round % 2 == 0 {
            let hello = node.lock().expect("node lock").announcement();
            if let Some(hello) = hello {
                let sent = udp.send_to(&hello, (DISCOVERY_GROUP, port)).await;
                if let Err(e) = &sent {
                    tracing::debug!("announcement to {DISCOVERY_GROUP}: {e}");
                }
                node.lock().expect("node lock").note_sent(sent.is_ok());
            }
        }
        let out = node.lock().expect("node lock").outgoing(&mut rng);
        let Some((to, packet)) = out else { continue };
        let sent = udp.send_to(&packet, to).await;
        if let Err(e) = &sent {
            tracing::debug!("gossip to {to}: {e}");
        }
        node.lock().expect("node lock").note_sent(sent.is_ok());
    }
}

async fn receive_loop(node: Arc<Mutex<Node>>, udp: Arc<tokio::net::UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    let mut conflicts = std::collections::HashSet::new();
    loop {
        let (len, from) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("gossip receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let heard = node
            .lock()
            .expect("node lock")
            .incoming(from.ip(), &buf[..len]);
        match heard {
            Ok(node::Heard::Discovered { node, addr }) => {
                tracing::info!("node {node} discovered at {addr}");
            }
            Ok(node::Heard::Records(_)) => {}
            // Two nodes with one number or one address: said once for each.
            Err(e @ (node::Dropped::Taken { .. } | node::Dropped::AddressHeld { .. })) => {
                if conflicts.len() < 1024 && conflicts.insert(e.to_string()) {
                    tracing::warn!("refused {e}");
                }
            }
            Err(e) => tracing::debug!("dropped a packet from {from}: {e}"),
        }
    }
}
