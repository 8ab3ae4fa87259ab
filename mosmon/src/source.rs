//! Where the numbers come from: the local omd, or a simulated cluster (to try the
//! monitor, and for tests of many nodes).

use anyhow::{bail, Result};
use om_proto::{MigrateTo, NodeRecord, NodeView, Process, Request, Response};

use crate::model::Snapshot;

/// A source of snapshots that can also move processes.
pub trait Source {
    fn snapshot(&mut self) -> Result<Snapshot>;
    /// Asks for process `pid` to move, as `migrate` does; returns what was said.
    fn migrate(&mut self, pid: i32, to: MigrateTo) -> Result<String>;
}

/// The omd of this node, through its control socket.
pub struct Omd;

impl Source for Omd {
    fn snapshot(&mut self) -> Result<Snapshot> {
        let Response::Status(status) = om_proto::call(Request::Status)? else {
            bail!("omd answered status with something else");
        };
        let Response::Processes(p) = om_proto::call(Request::Processes)? else {
            bail!("omd answered with something else than a process list");
        };
        // An omd without migration has no moved processes or guests to show.
        let controlled = match om_proto::call(Request::Controlled) {
            Ok(Response::Controlled(c)) => c,
            _ => Default::default(),
        };
        Ok(Snapshot {
            me: status.node,
            nodes: status.nodes,
            processes: p.processes,
            controlled,
        })
    }

    fn migrate(&mut self, pid: i32, to: MigrateTo) -> Result<String> {
        match om_proto::call(Request::Migrate {
            pid,
            to,
            wait: false,
            eager: false,
        })? {
            Response::Done { message } => Ok(message),
            _ => bail!("omd answered with something unexpected"),
        }
    }
}

/// A cluster of `n` nodes whose loads wander, every seventh node down, and one process.
pub struct Simulated {
    pub n: u16,
    tick: u64,
    moved: Vec<String>,
}

impl Simulated {
    pub fn new(n: u16) -> Self {
        Self {
            n,
            tick: 0,
            moved: Vec::new(),
        }
    }
}

impl Source for Simulated {
    fn snapshot(&mut self) -> Result<Snapshot> {
        self.tick += 1;
        let t = self.tick;
        let nodes = (1..=self.n)
            .map(|i| {
                let phase = u64::from(i) * 7 + t;
                NodeView {
                    node: i,
                    addr: format!("198.18.{}.{}", i / 256, i % 256),
                    me: i == 1,
                    up: i % 7 != 0,
                    age_ms: Some(500),
                    record: Some(NodeRecord {
                        load: ((phase * 37) % 400) as u32,
                        speed: 5_000 + (u32::from(i) % 4) * 5_000,
                        cpus: 1 + (i % 4),
                        util: ((phase * 731) % 10_000) as u16,
                        flags: 0,
                        mem: (1 + u64::from(i % 3)) << 30,
                        free: 1 << 29,
                        tmem: 4 << 30,
                    }),
                }
            })
            .collect();
        Ok(Snapshot {
            me: 1,
            nodes,
            processes: vec![Process {
                pid: 4242,
                ppid: 1,
                uid: 0,
                user: "root".into(),
                state: "R".into(),
                tty: "?".into(),
                cpu_ticks: t * 100,
                away_ticks: 0,
                ticks_per_second: 100,
                rss: 1 << 20,
                nice: 0,
                threads: 1,
                comm: "spin".into(),
                cmdline: "spin --forever".into(),
                node: 0,
            }],
            controlled: Default::default(),
        })
    }

    fn migrate(&mut self, pid: i32, to: MigrateTo) -> Result<String> {
        let m = format!("simulated: process {pid} to {to:?}");
        self.moved.push(m.clone());
        Ok(m)
    }
}
