//! mosmon drawn into ratatui's test backend: each mode's bars, checked cell by cell.

use om_mosmon::model::{Action, App, Key, Mode, Snapshot};
use om_mosmon::source::{Simulated, Source};
use om_mosmon::view::{column_width, draw, AXIS};
use om_proto::{MigrateTo, NodeRecord, NodeView};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

const W: u16 = 80;
const H: u16 = 24;
/// The bars take rows 1..=15 of a 24-row screen (title above; node numbers, the per-node
/// panel and the key line below).
const TOP: u16 = 1;
const BOTTOM: u16 = 15;
const LABELS: u16 = 16;

fn node(n: u16, up: bool, load: u32, speed: u32, util: u16, mem_gib: (u64, u64, u64)) -> NodeView {
    let (tmem, mem, free) = mem_gib;
    NodeView {
        node: n,
        addr: format!("198.18.0.{n}"),
        me: n == 1,
        up,
        age_ms: Some(300),
        record: Some(NodeRecord {
            load,
            speed,
            cpus: 1,
            util,
            flags: 0,
            mem: mem << 30,
            free: free << 30,
            tmem: tmem << 30,
        }),
    }
}

/// Node 1 (this one) half busy, node 2 busy with two CPUs' worth, node 3 dead, node 4 idle.
fn four() -> Snapshot {
    Snapshot {
        me: 1,
        nodes: vec![
            node(1, true, 50, 10_000, 2_500, (4, 3, 2)),
            node(2, true, 200, 20_000, 10_000, (4, 1, 1)),
            node(3, false, 0, 10_000, 0, (4, 4, 4)),
            node(4, true, 0, 5_000, 0, (2, 2, 1)),
        ],
        ..Default::default()
    }
}

fn render(app: &mut App, snap: &Snapshot) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap();
    t.draw(|f| draw(f, app, snap)).unwrap();
    t.backend().buffer().clone()
}

fn text(b: &Buffer, y: u16) -> String {
    (0..b.area.width)
        .map(|x| b[(x, y)].symbol().to_string())
        .collect()
}

fn screen(b: &Buffer) -> String {
    (0..b.area.height).map(|y| text(b, y) + "\n").collect()
}

/// The x of the first cell of the bar of the `i`th node shown.
fn bar_x(snap: &Snapshot, i: u16) -> u16 {
    AXIS + i * column_width(snap)
}

/// How many cells of the bar column at `x`, from the bottom up, hold `c`.
fn count(b: &Buffer, x: u16, c: &str) -> usize {
    (TOP..=BOTTOM).filter(|&y| b[(x, y)].symbol() == c).count()
}

#[test]
fn load_mode_scales_one_unit_to_a_standard_cpu() {
    let snap = four();
    let mut app = App::default();
    let b = render(&mut app, &snap);
    let all = screen(&b);
    assert!(text(&b, 0).contains("load"), "{all}");
    assert!(text(&b, 0).contains("nodes 1-4 of 4"), "{all}");
    // Axis: 2 standard CPUs at the top, 0 at the bottom.
    assert!(text(&b, TOP).starts_with("    2 ┤"), "{all}");
    assert!(text(&b, BOTTOM).starts_with("    0 ┤"), "{all}");
    // Node 2 (load 2.00) fills its column; node 1 (0.50) a quarter; node 4 nothing.
    assert_eq!(count(&b, bar_x(&snap, 1), "█"), 15, "{all}");
    let quarter = count(&b, bar_x(&snap, 0), "█");
    assert!((3..=4).contains(&quarter), "node 1: {quarter} cells\n{all}");
    assert_eq!(count(&b, bar_x(&snap, 3), "█"), 0, "{all}");
    // Node 3 is dead: "down" instead of a bar.
    let x3 = bar_x(&snap, 2) + 1;
    let down: String = (BOTTOM - 3..=BOTTOM)
        .map(|y| b[(x3, y)].symbol().to_string())
        .collect();
    assert_eq!(down, "down", "{all}");
    // Node numbers under the bars.
    let labels = text(&b, LABELS);
    for n in 1..=4 {
        assert!(labels.contains(&format!("  {n}")), "{labels}");
    }
}

#[test]
fn node_lines_show_the_last_minute_of_load() {
    let mut snap = four();
    let mut app = App::default();
    // Node 2 was idle, then busy; node 4 stayed idle.
    for load in [0, 0, 0, 200, 200, 200] {
        snap.nodes[1].record.as_mut().unwrap().load = load;
        app.observe(&snap);
    }
    let b = render(&mut app, &snap);
    let all = screen(&b);
    let line = |n: u16| {
        all.lines()
            .find(|l| l.starts_with(&format!("│    {n}")))
            .unwrap_or_default()
            .to_string()
    };
    let two = line(2);
    assert!(two.contains("   ███"), "idle, then busy: {two}\n{all}");
    assert!(two.contains("2.00"), "{two}");
    let four_line = line(4);
    assert!(
        !four_line.contains('█') && four_line.contains("0.00"),
        "{four_line}"
    );
    assert!(line(3).contains("down"), "{all}");
    assert!(line(1).starts_with("│    1*"), "this node is marked: {all}");
}

#[test]
fn speed_memory_utilisation_and_log_modes() {
    let snap = four();
    let mut app = App::default();
    let screen_of = |app: &mut App, key| {
        app.key(Key::Char(key), &snap);
        render(app, &snap)
    };
    // Speed: node 2 (2 standard CPUs) full, node 4 (half) a quarter of the scale of 2.
    let b = screen_of(&mut app, 's');
    assert_eq!(app.mode, Mode::Speed);
    assert!(text(&b, 0).contains("speed"));
    assert_eq!(count(&b, bar_x(&snap, 1), "█"), 15, "{}", screen(&b));
    let q = count(&b, bar_x(&snap, 3), "█");
    assert!((3..=4).contains(&q), "{}", screen(&b));
    // Memory: node 2 has 4 GiB, 3 used (solid) and 1 available (light), on a 4 GiB scale.
    let b = screen_of(&mut app, 'm');
    assert!(text(&b, 0).contains("memory"));
    let solid = count(&b, bar_x(&snap, 1), "█");
    let light = count(&b, bar_x(&snap, 1), "░");
    assert!(
        (11..=12).contains(&solid) && solid + light >= 14,
        "{solid}/{light}\n{}",
        screen(&b)
    );
    // Raw memory: node 1 has 2 GiB raw free of 4: half solid, half light.
    let b = screen_of(&mut app, 'r');
    assert!(text(&b, 0).contains("raw memory"));
    let solid = count(&b, bar_x(&snap, 0), "█");
    assert!((7..=8).contains(&solid), "{}", screen(&b));
    // Utilisation: node 2 at 100%, node 1 at 25%, on a 100% axis.
    let b = screen_of(&mut app, 'u');
    assert!(text(&b, TOP).contains("100%"), "{}", screen(&b));
    assert_eq!(count(&b, bar_x(&snap, 1), "█"), 15);
    let q = count(&b, bar_x(&snap, 0), "█");
    assert!((3..=4).contains(&q), "{}", screen(&b));
    // Log scale: log2(1 + 2) = 1.58 for node 2 on an axis of 2; node 1 log2(1.5) = 0.58.
    let b = screen_of(&mut app, 'L');
    assert!(text(&b, 0).contains("log"));
    let n2 = count(&b, bar_x(&snap, 1), "█");
    let n1 = count(&b, bar_x(&snap, 0), "█");
    assert!(
        (11..=12).contains(&n2) && (4..=5).contains(&n1),
        "{n2} {n1}\n{}",
        screen(&b)
    );
    // And back to load.
    screen_of(&mut app, 'l');
    assert_eq!(app.mode, Mode::Load);
}

#[test]
fn numbers_hide_and_help_shows_the_keys() {
    let snap = four();
    let mut app = App::default();
    app.key(Key::Char('n'), &snap);
    let b = render(&mut app, &snap);
    let labels: String = text(&b, LABELS).chars().skip(AXIS as usize).collect();
    assert!(
        !labels.chars().any(|c| c.is_ascii_digit()),
        "{}",
        screen(&b)
    );
    app.key(Key::Char('h'), &snap);
    let b = render(&mut app, &snap);
    let all = screen(&b);
    assert!(
        all.contains(" help ") && all.contains("raw memory: used and raw free"),
        "{all}"
    );
    app.key(Key::Char(' '), &snap);
    assert!(!screen(&render(&mut app, &snap)).contains("any key leaves it"));
}

#[test]
fn sixty_four_nodes_page_through() {
    let mut sim = Simulated::new(64);
    let snap = sim.snapshot().unwrap();
    let mut app = App::default();
    app.observe(&snap);
    let b = render(&mut app, &snap);
    let per_page = ((W - AXIS) / column_width(&snap)) as usize;
    assert_eq!(app.page, per_page);
    assert!(
        text(&b, 0).contains(&format!("nodes 1-{per_page} of 64")),
        "{}",
        screen(&b)
    );
    // Node 7 is dead in the simulation.
    let x7 = bar_x(&snap, 6) + 1;
    assert_eq!(b[(x7, BOTTOM)].symbol(), "n", "{}", screen(&b));
    app.key(Key::PageDown, &snap);
    let b = render(&mut app, &snap);
    let first = per_page + 1;
    assert!(
        text(&b, 0).contains(&format!("nodes {first}-")),
        "{}",
        screen(&b)
    );
    assert!(text(&b, LABELS)
        .trim_start()
        .starts_with(&first.to_string()));
    app.key(Key::End, &snap);
    let b = render(&mut app, &snap);
    assert!(text(&b, 0).contains("-64 of 64"), "{}", screen(&b));
    assert!(text(&b, LABELS).trim_end().ends_with("64"));
}

#[test]
fn the_process_pane_sends_a_process_to_another_node() {
    let mut sim = Simulated::new(4);
    let mut snap = sim.snapshot().unwrap();
    snap.controlled.guests.push(om_proto::GuestState {
        pid: 99,
        from: 3,
        home_pid: 1234,
        comm: "job".into(),
    });
    let mut app = App::default();
    app.observe(&snap);
    app.observe(&snap);
    app.key(Key::Char('p'), &snap);
    let b = render(&mut app, &snap);
    let all = screen(&b);
    assert!(
        all.contains("PID") && all.contains("spin --forever"),
        "{all}"
    );
    // The per-node lines: node 3 has one guest here.
    let line3 = all
        .lines()
        .find(|l| l.starts_with("│    3  "))
        .unwrap_or_default();
    assert!(line3.contains("in 1"), "{all}");
    app.key(Key::Char('2'), &snap);
    assert!(screen(&render(&mut app, &snap)).contains("migrate to node 2_"));
    let a = app.key(Key::Enter, &snap);
    assert_eq!(
        a,
        Action::Migrate {
            pid: 4242,
            to: MigrateTo::Node(2)
        }
    );
    assert_eq!(
        app.key(Key::Char('H'), &snap),
        Action::Migrate {
            pid: 4242,
            to: MigrateTo::Home
        }
    );
}
