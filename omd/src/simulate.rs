//! `omd simulate`: the daemon's gossip code ([`crate::gossip::Table`] and
//! [`crate::gossip::pick_peer`]) run for thousands of nodes on a simulated clock and
//! network, to see how old the information held at each node is and how fast news
//! spreads.
//!
//! Every node sends once per interval, at its own fixed phase within the interval (as
//! real nodes, started at different moments, do); a message is lost with probability
//! `loss` and otherwise arrives after `latency`. The payload is a load value; halfway
//! through, one loaded node becomes idle (load 0), and the simulation measures how long
//! until every node holds a record of it from after that moment.

use crate::gossip::{pick_peer, Millis, Table};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    pub seconds: u64,
    pub window: usize,
    pub loss: f64,
    pub interval_ms: Millis,
    pub latency_ms: Millis,
    pub seed: u64,
}

/// What a simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub nodes: usize,
    pub seconds: u64,
    pub window: usize,
    pub loss: f64,
    /// Messages sent per node per second.
    pub sent_per_node_s: f64,
    /// Messages received per node per second (after loss).
    pub received_per_node_s: f64,
    /// Bytes of one message on the wire.
    pub message_bytes: usize,
    /// Mean age (s) of the records every node holds about every other node, averaged
    /// over the samples taken once the first interval of warm-up is over.
    pub mean_age_s: f64,
    /// Largest age (s) of any record any node held, at any sample.
    pub max_age_s: f64,
    /// Largest per-node mean age (s): the worst-informed node.
    pub worst_node_mean_age_s: f64,
    /// Fraction of (node, other node) pairs known at the end.
    pub known_fraction: f64,
    /// When the news "node X is idle" was first known by half, 90% and all nodes
    /// (seconds after X became idle); `None` = not within the simulation.
    pub idle_news_half_s: Option<f64>,
    pub idle_news_90_s: Option<f64>,
    pub idle_news_all_s: Option<f64>,
    /// Fraction of nodes that knew the news when the simulation ended.
    pub idle_news_reached: f64,
    /// Wall time the simulation took (s).
    pub wall_s: f64,
}

pub fn run(p: &Params) -> Report {
    let started = std::time::Instant::now();
    let n = p.nodes.max(2);
    let mut rng = SmallRng::seed_from_u64(p.seed);
    let mut tables: Vec<Table<u16>> = (0..n).map(|i| Table::new(n, i, p.window)).collect();
    let mut order: Vec<(Millis, usize)> = (0..n)
        .map(|i| (rng.random_range(0..p.interval_ms), i))
        .collect();
    order.sort_unstable();
    let end = p.seconds as Millis * 1000;
    let idle_at = end / 2;
    let idle_node = rng.random_range(0..n);
    let mut knows = vec![false; n];
    let mut knowing = 0usize;
    let (mut half, mut ninety, mut all) = (None, None, None);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut msg = Vec::with_capacity(p.window + 1);
    let mut ages = AgeStats::default();
    let sample_every = (p.seconds / 6).max(1) as Millis * 1000;
    let mut next_sample = sample_every;
    let mut round = 0;
    loop {
        let base = round * p.interval_ms;
        if base >= end {
            break;
        }
        for &(phase, i) in &order {
            let now = base + phase;
            if now >= end {
                break;
            }
            if now >= next_sample {
                ages.sample(&tables, now);
                next_sample += sample_every;
            }
            let load = if i == idle_node && now >= idle_at {
                0
            } else {
                100
            };
            tables[i].set_own(now, load);
            if i == idle_node && now >= idle_at && !knows[i] {
                knows[i] = true;
                knowing += 1;
            }
            tables[i].message(now, &mut msg);
            let Some(peer) = pick_peer(&mut rng, n, i) else {
                continue;
            };
            sent += 1;
            if rng.random::<f64>() < p.loss {
                continue;
            }
            received += 1;
            let arrive = now + p.latency_ms;
            tables[peer].merge(
                arrive,
                msg.iter().map(|&(j, age, l)| (j, age + p.latency_ms, l)),
            );
            if !knows[peer] {
                if let Some((stamp, _)) = tables[peer].get(idle_node) {
                    if stamp >= idle_at {
                        knows[peer] = true;
                        knowing += 1;
                        let t = (arrive - idle_at) as f64 / 1000.0;
                        if half.is_none() && knowing * 2 >= n {
                            half = Some(t);
                        }
                        if ninety.is_none() && knowing * 10 >= n * 9 {
                            ninety = Some(t);
                        }
                        if all.is_none() && knowing == n {
                            all = Some(t);
                        }
                    }
                }
            }
        }
        round += 1;
    }
    let known = ages.sample(&tables, end);
    let pairs = (n * (n - 1)) as f64;
    Report {
        nodes: n,
        seconds: p.seconds,
        window: p.window,
        loss: p.loss,
        sent_per_node_s: sent as f64 / n as f64 / p.seconds.max(1) as f64,
        received_per_node_s: received as f64 / n as f64 / p.seconds.max(1) as f64,
        message_bytes: crate::wire::PACKET_LEN,
        mean_age_s: if ages.records > 0 {
            ages.sum / ages.records as f64 / 1000.0
        } else {
            0.0
        },
        max_age_s: ages.max as f64 / 1000.0,
        worst_node_mean_age_s: ages.worst / 1000.0,
        known_fraction: known as f64 / pairs,
        idle_news_half_s: half,
        idle_news_90_s: ninety,
        idle_news_all_s: all,
        idle_news_reached: knowing as f64 / n as f64,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// Ages (in ms) of the records the nodes hold about the others, over all samples.
#[derive(Default)]
struct AgeStats {
    sum: f64,
    records: u64,
    max: Millis,
    /// The largest per-node mean age of any sample.
    worst: f64,
}

impl AgeStats {
    /// Adds what every node holds at `now`; returns how many records that was.
    fn sample(&mut self, tables: &[Table<u16>], now: Millis) -> u64 {
        let mut count = 0u64;
        for t in tables {
            let me = t.me();
            let (mut s, mut c) = (0.0, 0u64);
            t.for_each_stamp(|j, stamp| {
                if j != me {
                    let a = now - stamp;
                    s += a as f64;
                    c += 1;
                    self.max = self.max.max(a);
                }
            });
            if c > 0 {
                self.worst = self.worst.max(s / c as f64);
            }
            self.sum += s;
            count += c;
        }
        self.records += count;
        count
    }
}

/// The report as the table `omd simulate` prints.
pub fn table(reports: &[Report]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "NODES  WINDOW  LOSS  MSG/NODE/S  BYTES  MEAN-AGE  WORST-NODE  MAX-AGE  KNOWN   IDLE-NEWS 50%/90%/ALL  REACHED  WALL\n",
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1}"));
    for r in reports {
        let _ = writeln!(
            out,
            "{:<5}  {:<6}  {:<4.2}  {:<10.2}  {:<5}  {:<8}  {:<10}  {:<7}  {:<6}  {:<22}  {:<7}  {:.1}s",
            r.nodes,
            r.window,
            r.loss,
            r.sent_per_node_s,
            r.message_bytes,
            format!("{:.2}s", r.mean_age_s),
            format!("{:.2}s", r.worst_node_mean_age_s),
            format!("{:.1}s", r.max_age_s),
            format!("{:.1}%", r.known_fraction * 100.0),
            format!(
                "{}/{}/{} s",
                opt(r.idle_news_half_s),
                opt(r.idle_news_90_s),
                opt(r.idle_news_all_s)
            ),
            format!("{:.1}%", r.idle_news_reached * 100.0),
            r.wall_s
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: usize, loss: f64) -> Params {
        Params {
            nodes,
            seconds: 30,
            window: 16,
            loss,
            interval_ms: 1000,
            latency_ms: 1,
            seed: 1,
        }
    }

    #[test]
    fn small_cluster_is_well_informed() {
        let r = run(&params(16, 0.0));
        assert!((r.sent_per_node_s - 1.0).abs() < 0.05, "{r:?}");
        assert_eq!(r.received_per_node_s, r.sent_per_node_s);
        assert_eq!(r.known_fraction, 1.0);
        assert!(r.mean_age_s < 5.0, "{r:?}");
        assert!(r.idle_news_all_s.is_some_and(|t| t < 15.0), "{r:?}");
    }

    #[test]
    fn loss_slows_news_but_does_not_stop_it() {
        let clean = run(&params(64, 0.0));
        let lossy = run(&params(64, 0.3));
        assert!(lossy.received_per_node_s < clean.received_per_node_s * 0.8);
        assert!(lossy.mean_age_s > clean.mean_age_s, "{clean:?} {lossy:?}");
        assert!(lossy.idle_news_half_s.is_some(), "{lossy:?}");
        assert!(
            clean.idle_news_half_s < lossy.idle_news_half_s,
            "{clean:?} {lossy:?}"
        );
    }
}
