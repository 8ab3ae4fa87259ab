//! `omd --metrics ADDR`: this node's view of the cluster in the Prometheus text format,
//! at `http://ADDR/metrics` (off by default; bound to localhost unless an address says
//! otherwise). The numbers are those of `mosctl status` (one source for both): every
//! node's load, speed, CPUs, memory, utilisation, whether it is up and how old its news
//! is; the gossip counters with the reasons packets were dropped; the migration port's
//! links; the balancer's moves; the guests running here and this node's processes away.
//! The format is written by the `prometheus-client` crate.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::control::Omd;

pub use crate::http::parse_addr;
use crate::http::{HttpRequest, Reply};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemLabel {
    node: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MoveLabel {
    direction: &'static str,
    result: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailLabel {
    kind: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabel {
    how: &'static str,
}

/// What the migrations of this node did since omd started, heard from them as it
/// happened ([`om_migrate::MoveEvent`]): kept here, between scrapes.
pub struct Recorder {
    freeze: Histogram,
    all_away: Histogram,
    bytes_away: Counter<u64>,
    moves: Family<KindLabel, Counter<u64>>,
    failures: Family<FailLabel, Counter<u64>>,
    guests: Family<HowLabel, Counter<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            // 1 ms to about 4 s, doubling.
            freeze: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
            // 10 ms to about 80 s, doubling.
            all_away: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            bytes_away: Counter::default(),
            moves: Family::default(),
            failures: Family::default(),
            guests: Family::default(),
        }
    }
}

impl Recorder {
    /// Takes in one event.
    pub fn record(&self, e: om_migrate::MoveEvent) {
        use om_migrate::MoveEvent::*;
        let how = |auto: bool| if auto { "automatic" } else { "requested" };
        match e {
            Left { frozen, auto } => {
                self.freeze.observe(frozen.as_secs_f64());
                self.moves
                    .get_or_create(&KindLabel {
                        kind: how(auto),
                        result: "done",
                    })
                    .inc();
            }
            Failed { auto, reason } => {
                self.moves
                    .get_or_create(&KindLabel {
                        kind: how(auto),
                        result: "failed",
                    })
                    .inc();
                self.failures
                    .get_or_create(&FailLabel {
                        kind: how(auto),
                        reason,
                    })
                    .inc();
            }
            AllAway { after, bytes } => {
                self.all_away.observe(after.as_secs_f64());
                self.bytes_away.inc_by(bytes);
            }
            CameHome => {
                self.moves
                    .get_or_create(&KindLabel {
                        kind: "home",
                        result: "done",
                    })
                    .inc();
            }
            GuestArrived => {
                self.guests
                    .get_or_create(&HowLabel { how: "arrived" })
                    .inc();
            }
            GuestLeft => {
                self.guests.get_or_create(&HowLabel { how: "left" }).inc();
            }
        }
    }

    fn register(&self, reg: &mut Registry) {
        reg.register_with_unit(
            "migration_freeze",
            "How long each process of this node that left was frozen",
            Unit::Seconds,
            self.freeze.clone(),
        );
        reg.register_with_unit(
            "migration_total",
            "How long after its freeze began all the memory of a process that left was at its node",
            Unit::Seconds,
            self.all_away.clone(),
        );
        reg.register_with_unit(
            "memory_moved_away",
            "Memory of processes that left, released here once all of it was at their node",
            Unit::Bytes,
            self.bytes_away.clone(),
        );
        reg.register(
            "migrations",
            "Moves of this node's processes: automatic or requested, done or failed; home",
            self.moves.clone(),
        );
        reg.register(
            "migration_failures",
            "Moves of this node's processes that failed, by kind and reason (gone, not_allowed, no_node, busy, cannot_move, link, refused, not_started)",
            self.failures.clone(),
        );
        reg.register(
            "guest_moves",
            "Guests that arrived here and that left",
            self.guests.clone(),
        );
    }
}

/// A reading of [`om_migrate::Migrations::call_latencies`], encoded as a histogram.
#[derive(Debug)]
struct CallLatencies(om_remote::relay::LatencySnapshot);

impl prometheus_client::metrics::TypedMetric for CallLatencies {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for CallLatencies {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let bounds = om_remote::relay::LATENCY_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds.zip(self.0.buckets.iter().copied()).collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.0.sum.as_secs_f64(),
            self.0.count(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        <Self as prometheus_client::metrics::TypedMetric>::TYPE
    }
}

/// The metrics text of `omd` now.
pub fn render(omd: &Omd) -> String {
    let s = crate::control::status(omd);
    let mut reg = Registry::with_prefix("omd");
    let node_gauge = |reg: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
        let f = Family::<NodeLabel, FloatGauge>::default();
        match unit {
            Some(u) => reg.register_with_unit(name, help, u, f.clone()),
            None => reg.register(name, help, f.clone()),
        }
        f
    };
    let load = node_gauge(
        &mut reg,
        "node_load",
        "Load, in standard CPUs kept busy",
        None,
    );
    let speed = node_gauge(
        &mut reg,
        "node_speed",
        "Speed of one CPU (10000: a standard CPU)",
        None,
    );
    let cpus = node_gauge(&mut reg, "node_cpus", "CPUs the node may use", None);
    let util = node_gauge(
        &mut reg,
        "node_utilisation",
        "CPU utilisation over the last second, 0 to 1",
        None,
    );
    let up = node_gauge(
        &mut reg,
        "node_up",
        "1 while news of the node is fresher than the down time",
        None,
    );
    let age = node_gauge(
        &mut reg,
        "node_age",
        "Age of the freshest news of the node",
        Some(Unit::Seconds),
    );
    let me = node_gauge(&mut reg, "node_self", "1 for the node that answers", None);
    let mem = Family::<MemLabel, FloatGauge>::default();
    reg.register_with_unit(
        "node_memory",
        "Memory: available to new processes, free, and total",
        Unit::Bytes,
        mem.clone(),
    );
    for v in &s.nodes {
        let l = NodeLabel {
            node: v.node.to_string(),
        };
        up.get_or_create(&l).set(f64::from(u8::from(v.up)));
        me.get_or_create(&l).set(f64::from(u8::from(v.me)));
        if let Some(a) = v.age_ms {
            age.get_or_create(&l).set(a as f64 / 1e3);
        }
        let Some(r) = v.record else { continue };
        load.get_or_create(&l).set(f64::from(r.load) / 100.0);
        speed.get_or_create(&l).set(f64::from(r.speed));
        cpus.get_or_create(&l).set(f64::from(r.cpus));
        util.get_or_create(&l).set(f64::from(r.util) / 10_000.0);
        for (kind, bytes) in [("available", r.mem), ("free", r.free), ("total", r.tmem)] {
            let ml = MemLabel {
                node: l.node.clone(),
                kind,
            };
            mem.get_or_create(&ml).set(bytes as f64);
        }
    }
    let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    };
    let c = &s.counters;
    counter(
        &mut reg,
        "gossip_sent_packets",
        "Gossip packets sent",
        c.sent,
    );
    counter(
        &mut reg,
        "gossip_send_errors",
        "Gossip packets that could not be sent",
        c.send_errors,
    );
    counter(
        &mut reg,
        "gossip_received_packets",
        "Gossip packets received",
        c.received,
    );
    counter(
        &mut reg,
        "gossip_accepted_packets",
        "Gossip packets taken in",
        c.accepted,
    );
    counter(
        &mut reg,
        "discovered_nodes",
        "Nodes added to the map by their announcements (--discover)",
        c.discovered,
    );
    let dropped = Family::<ReasonLabel, Counter<u64>>::default();
    reg.register(
        "gossip_dropped_packets",
        "Gossip packets dropped, by reason",
        dropped.clone(),
    );
    for (reason, n) in [
        ("bad_tag", c.bad_tag),
        ("malformed", c.malformed),
        ("replayed", c.replayed),
        ("unknown_node", c.unknown_node),
        ("misplaced", c.misplaced),
    ] {
        dropped.get_or_create(&ReasonLabel { reason }).inc_by(n);
    }
    if let Some(l) = s.links {
        let links = Family::<ReasonLabel, Counter<u64>>::default();
        reg.register(
            "migration_links",
            "Connections to the migration port, by what became of them",
            links.clone(),
        );
        for (reason, n) in [
            ("accepted", l.accepted),
            ("not_in_map", l.not_in_map),
            ("busy", l.busy),
            ("bad_handshake", l.bad_handshake),
            ("wrong_node", l.wrong_node),
            ("stray_pages", l.stray_pages),
        ] {
            links.get_or_create(&ReasonLabel { reason }).inc_by(n);
        }
    }
    if let Some(b) = &s.balancer {
        let moves = Family::<MoveLabel, Counter<u64>>::default();
        reg.register(
            "automatic_migrations",
            "Moves the balancers decided: out of this node (done or failed), and in",
            moves.clone(),
        );
        for (direction, result, n) in [
            ("out", "done", b.moved_out),
            ("out", "failed", b.failed),
            ("in", "done", b.moved_in),
        ] {
            moves
                .get_or_create(&MoveLabel { direction, result })
                .inc_by(n);
        }
        counter(
            &mut reg,
            "ushered_processes",
            "Moves out that relieved this node of a shortage of memory",
            b.ushered,
        );
        let g = Gauge::<i64>::default();
        g.set(b.candidates as i64);
        reg.register(
            "balancer_candidates",
            "Processes the balancer may move now",
            g,
        );
        let g = Gauge::<i64>::default();
        g.set(b.arriving as i64);
        reg.register("arriving_guests", "Guests arriving now", g);
    }
    if let Some(r) = &omd.recorder {
        r.register(&mut reg);
    }
    if let Some(m) = &omd.migrations {
        let g = Gauge::<i64>::default();
        g.set(m.guests().len() as i64);
        reg.register("guests", "Processes of other nodes running here", g);
        let g = Gauge::<i64>::default();
        g.set(m.away() as i64);
        reg.register(
            "processes_away",
            "Processes of this node running at other nodes",
            g,
        );
        let c = Counter::<u64>::default();
        c.inc_by(m.pages_served());
        reg.register_with_unit(
            "pages_served",
            "Memory served to the nodes this node's processes run at, on their request (lazy pages)",
            Unit::Bytes,
            c,
        );
        reg.register_with_unit(
            "forwarded_call",
            "How long the calls the guests here forwarded home took, from the guest's stop to its answer",
            Unit::Seconds,
            CallLatencies(m.call_latencies()),
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// Answers `GET /metrics` on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, omd: Omd) {
    crate::http::serve(listener, move |r: HttpRequest| {
        let omd = omd.clone();
        async move {
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/metrics") => Reply::Whole(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    render(&omd).into_bytes(),
                ),
                ("GET", _) => Reply::text("404 Not Found", "only /metrics is served here\n"),
                _ => Reply::text("405 Method Not Allowed", "only GET is served here\n"),
            }
        }
    })
    .await
}
