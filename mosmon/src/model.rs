//! What mosmon shows, without a terminal: the modes, the bars of each, and the state the
//! keys change. Everything here is plain data, tested without drawing.

use std::collections::{HashMap, VecDeque};

use om_proto::{Controlled, MigrateTo, NodeView, Process, STANDARD_SPEED};

/// How many samples of each node's load the sparklines keep (one a refresh: a minute at
/// the default interval).
pub const HISTORY: usize = 60;

/// What the bars measure, as in openMosix's mosmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Load, in standard CPUs (one unit = one standard CPU kept busy).
    Load,
    /// Speed of one CPU, in standard CPUs.
    Speed,
    /// Memory: used and available to new processes, in GiB.
    Mem,
    /// Raw memory: used and raw free (not even cache), in GiB.
    RawMem,
    /// CPU utilisation, in percent of the node's capacity.
    Util,
    /// Load on a logarithmic scale (log2 of 1 + load), for clusters where a few nodes
    /// are far busier than the rest.
    LogLoad,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Load,
        Mode::Speed,
        Mode::Mem,
        Mode::RawMem,
        Mode::Util,
        Mode::LogLoad,
    ];

    /// The key that selects it.
    pub fn key(self) -> char {
        match self {
            Mode::Load => 'l',
            Mode::Speed => 's',
            Mode::Mem => 'm',
            Mode::RawMem => 'r',
            Mode::Util => 'u',
            Mode::LogLoad => 'L',
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Mode::Load => "load (1 = one standard CPU busy)",
            Mode::Speed => "speed (1 = a standard CPU)",
            Mode::Mem => "memory: used / available (GiB)",
            Mode::RawMem => "raw memory: used / free (GiB)",
            Mode::Util => "utilisation (%)",
            Mode::LogLoad => "load, log scale (log2 of 1 + load)",
        }
    }
}

/// One node's bar: `used` filled cells and `rest` lighter ones on top (free memory), in
/// the mode's units; `dead` nodes have no bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub node: u16,
    pub me: bool,
    pub dead: bool,
    pub used: f64,
    pub rest: f64,
}

/// The bars of `nodes` in `mode`, and the value at the top of the axis (a whole number
/// of units, at least 1, so that one unit of load is always the same height).
pub fn bars(mode: Mode, nodes: &[NodeView]) -> (Vec<Bar>, f64) {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let bars: Vec<Bar> = nodes
        .iter()
        .map(|v| {
            let r = v.record.unwrap_or_default();
            let (used, rest) = match mode {
                Mode::Load => (f64::from(r.load) / 100.0, 0.0),
                Mode::Speed => (f64::from(r.speed) / f64::from(STANDARD_SPEED), 0.0),
                Mode::Mem => (gib(r.tmem.saturating_sub(r.mem)), gib(r.mem)),
                Mode::RawMem => (gib(r.tmem.saturating_sub(r.free)), gib(r.free)),
                Mode::Util => (f64::from(om_proto::util_percent(r.util)), 0.0),
                Mode::LogLoad => ((1.0 + f64::from(r.load) / 100.0).log2(), 0.0),
            };
            Bar {
                node: v.node,
                me: v.me,
                dead: !v.up,
                used: if v.up { used } else { 0.0 },
                rest: if v.up { rest } else { 0.0 },
            }
        })
        .collect();
    let top = match mode {
        Mode::Util => 100.0,
        _ => bars
            .iter()
            .map(|b| b.used + b.rest)
            .fold(1.0f64, f64::max)
            .ceil(),
    };
    (bars, top)
}

/// Everything one refresh brings.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The node mosmon runs on.
    pub me: u16,
    /// Every node of the map, as this node sees it.
    pub nodes: Vec<NodeView>,
    /// This node's processes (what mps shows).
    pub processes: Vec<Process>,
    /// This node's moved processes and its guests.
    pub controlled: Controlled,
}

impl Snapshot {
    /// This node's processes now running at `node`, and the guests from `node` here.
    pub fn exchange(&self, node: u16) -> (usize, usize) {
        let out = self
            .controlled
            .processes
            .iter()
            .filter(|p| p.node == node)
            .count();
        let guests = self
            .controlled
            .guests
            .iter()
            .filter(|g| g.from == node)
            .count();
        (out, guests)
    }
}

/// What a key asks of the main loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    Migrate { pid: i32, to: MigrateTo },
}

/// The keys mosmon understands (a terminal's keys, reduced to what is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Left,
    Right,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
}

/// The monitor's state.
#[derive(Debug, Clone)]
pub struct App {
    pub mode: Mode,
    /// Node numbers under the bars.
    pub numbers: bool,
    pub help: bool,
    /// Index of the first node shown.
    pub first: usize,
    /// How many bars fit (set when drawing).
    pub page: usize,
    /// The process pane is open.
    pub procs: bool,
    /// Index of the selected process in the pane.
    pub selected: usize,
    /// A node number being typed in the pane.
    pub target: String,
    /// The last thing said to the user (a migration's outcome, a mistake).
    pub status: String,
    history: HashMap<u16, VecDeque<u64>>,
}

impl Default for App {
    fn default() -> Self {
        Self {
            mode: Mode::Load,
            numbers: true,
            help: false,
            first: 0,
            page: 1,
            procs: false,
            selected: 0,
            target: String::new(),
            status: String::new(),
            history: HashMap::new(),
        }
    }
}

impl App {
    /// Records each node's load for the sparklines.
    pub fn observe(&mut self, snap: &Snapshot) {
        for v in &snap.nodes {
            let h = self.history.entry(v.node).or_default();
            h.push_back(if v.up {
                u64::from(v.record.unwrap_or_default().load)
            } else {
                0
            });
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        let n = snap.processes.len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
        self.clamp(snap.nodes.len());
    }

    /// The load history of `node`, oldest first.
    pub fn history(&self, node: u16) -> Vec<u64> {
        self.history
            .get(&node)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    fn clamp(&mut self, nodes: usize) {
        let last_page = nodes.saturating_sub(self.page.max(1));
        self.first = self.first.min(last_page);
    }

    /// Handles one key.
    pub fn key(&mut self, key: Key, snap: &Snapshot) -> Action {
        if self.help {
            // Any key leaves the help screen; q still quits.
            self.help = false;
            return if key == Key::Char('q') {
                Action::Quit
            } else {
                Action::None
            };
        }
        let nodes = snap.nodes.len();
        let page = self.page.max(1);
        match key {
            Key::Char('q') => return Action::Quit,
            Key::Char('h') | Key::Char('?') => self.help = true,
            Key::Char('n') => self.numbers = !self.numbers,
            Key::Char('p') => {
                self.procs = !self.procs;
                self.target.clear();
            }
            Key::Char(c) if Mode::ALL.iter().any(|m| m.key() == c) => {
                self.mode = Mode::ALL
                    .into_iter()
                    .find(|m| m.key() == c)
                    .unwrap_or(Mode::Load);
            }
            Key::Left => self.first = self.first.saturating_sub(1),
            Key::Right => self.first += 1,
            Key::PageUp => self.first = self.first.saturating_sub(page),
            Key::PageDown => self.first += page,
            Key::Home => self.first = 0,
            Key::End => self.first = nodes,
            Key::Up if self.procs => self.selected = self.selected.saturating_sub(1),
            Key::Down if self.procs => {
                self.selected = (self.selected + 1).min(snap.processes.len().saturating_sub(1))
            }
            Key::Char(c) if self.procs && c.is_ascii_digit() && self.target.len() < 5 => {
                self.target.push(c)
            }
            Key::Backspace if self.procs => {
                self.target.pop();
            }
            Key::Esc => self.target.clear(),
            Key::Char('H') if self.procs => return self.send(snap, MigrateTo::Home),
            Key::Char('b') if self.procs => return self.send(snap, MigrateTo::Balance),
            Key::Enter if self.procs => match self.target.parse::<u16>() {
                Ok(n) => return self.send(snap, MigrateTo::Node(n)),
                Err(_) => self.status = "type a node number, then Enter (H: home)".into(),
            },
            _ => {}
        }
        self.clamp(nodes);
        Action::None
    }

    fn send(&mut self, snap: &Snapshot, to: MigrateTo) -> Action {
        self.target.clear();
        match snap.processes.get(self.selected) {
            Some(p) => Action::Migrate { pid: p.pid, to },
            None => {
                self.status = "no process selected".into();
                Action::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use om_proto::NodeRecord;

    fn view(node: u16, up: bool, load: u32) -> NodeView {
        NodeView {
            node,
            addr: format!("198.18.0.{node}"),
            me: node == 1,
            up,
            age_ms: Some(100),
            record: Some(NodeRecord {
                load,
                speed: 10_000,
                cpus: 1,
                util: 5000,
                flags: 0,
                mem: 3 << 30,
                free: 2 << 30,
                tmem: 4 << 30,
            }),
        }
    }

    #[test]
    fn load_bars_are_in_standard_cpus_and_the_axis_is_whole() {
        let (b, top) = bars(Mode::Load, &[view(1, true, 50), view(2, true, 250)]);
        assert_eq!(b[0].used, 0.5);
        assert_eq!(b[1].used, 2.5);
        assert_eq!(top, 3.0);
        let (_, top) = bars(Mode::Load, &[view(1, true, 0)]);
        assert_eq!(top, 1.0, "an idle cluster still shows one unit");
    }

    #[test]
    fn memory_bars_split_used_and_free_and_dead_nodes_are_empty() {
        let (b, top) = bars(Mode::Mem, &[view(1, true, 0), view(2, false, 900)]);
        assert_eq!((b[0].used, b[0].rest), (1.0, 3.0));
        assert!(b[1].dead && b[1].used == 0.0);
        assert_eq!(top, 4.0);
        let (b, _) = bars(Mode::RawMem, &[view(1, true, 0)]);
        assert_eq!((b[0].used, b[0].rest), (2.0, 2.0));
        let (b, top) = bars(Mode::Util, &[view(1, true, 0)]);
        assert_eq!((b[0].used, top), (50.0, 100.0));
        let (b, _) = bars(Mode::LogLoad, &[view(1, true, 300)]);
        assert_eq!(b[0].used, 2.0);
    }

    #[test]
    fn keys_switch_modes_scroll_and_quit() {
        let snap = Snapshot {
            me: 1,
            nodes: (1..=64).map(|n| view(n, true, 0)).collect(),
            ..Default::default()
        };
        let mut app = App {
            page: 10,
            ..Default::default()
        };
        for m in Mode::ALL {
            app.key(Key::Char(m.key()), &snap);
            assert_eq!(app.mode, m);
        }
        app.key(Key::PageDown, &snap);
        assert_eq!(app.first, 10);
        app.key(Key::Right, &snap);
        assert_eq!(app.first, 11);
        app.key(Key::End, &snap);
        assert_eq!(app.first, 54, "the last page is full");
        app.key(Key::Home, &snap);
        assert_eq!(app.first, 0);
        app.key(Key::Char('n'), &snap);
        assert!(!app.numbers);
        app.key(Key::Char('?'), &snap);
        assert!(app.help);
        assert_eq!(app.key(Key::Char('x'), &snap), Action::None);
        assert!(!app.help);
        assert_eq!(app.key(Key::Char('q'), &snap), Action::Quit);
    }

    #[test]
    fn history_keeps_the_last_minute() {
        let mut app = App::default();
        for load in 0..100 {
            let snap = Snapshot {
                me: 1,
                nodes: vec![view(1, true, load)],
                ..Default::default()
            };
            app.observe(&snap);
        }
        let h = app.history(1);
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.last(), Some(&99));
    }
}
