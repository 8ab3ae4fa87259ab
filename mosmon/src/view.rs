//! Drawing: the bars, the per-node lines, the process pane, the help screen.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Clear, Paragraph, Row, Sparkline, Table, TableState, Widget,
};
use ratatui::Frame;

use crate::model::{bars, App, Bar, Mode, Snapshot, HISTORY};

/// Width of the axis labels left of the bars.
pub const AXIS: u16 = 7;
/// Rows of the per-node panel (without its border).
const NODE_ROWS: u16 = 4;
/// Rows of the process pane (without its border).
const PROC_ROWS: u16 = 8;

/// Columns per node: a bar as wide as the widest node number, and a gap.
pub fn column_width(snap: &Snapshot) -> u16 {
    let widest = snap.nodes.iter().map(|v| v.node).max().unwrap_or(1);
    (widest.to_string().len() as u16 + 1).max(4)
}

/// Draws everything for `snap` into the frame.
pub fn draw(f: &mut Frame, app: &mut App, snap: &Snapshot) {
    let area = f.area();
    let [title, graph, nodes, procs, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(NODE_ROWS + 2),
        Constraint::Length(if app.procs { PROC_ROWS + 2 } else { 0 }),
        Constraint::Length(1),
    ])
    .areas(area);

    let cw = column_width(snap);
    app.page = (graph.width.saturating_sub(AXIS) / cw).max(1) as usize;
    let total = snap.nodes.len();
    app.first = app.first.min(total.saturating_sub(app.page));
    let shown = &snap.nodes[app.first.min(total)..(app.first + app.page).min(total)];

    let range = match (shown.first(), shown.last()) {
        (Some(a), Some(b)) => format!("nodes {}-{} of {}", a.node, b.node, total),
        _ => "no nodes".into(),
    };
    let more = if total > shown.len() {
        "  (←/→, PgUp/PgDn)"
    } else {
        ""
    };
    Paragraph::new(Line::from(vec![
        Span::styled(
            format!(" mosmon  node {}  ", snap.me),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{}   {range}{more}", app.mode.title())),
    ]))
    .render(title, f.buffer_mut());

    let (all, top) = bars(app.mode, &snap.nodes);
    let visible: Vec<Bar> = all.into_iter().skip(app.first).take(app.page).collect();
    draw_bars(
        f.buffer_mut(),
        graph,
        &visible,
        top,
        cw,
        app.numbers,
        app.mode,
    );
    draw_nodes(f, nodes, app, snap, shown.iter().map(|v| v.node).collect());
    if app.procs {
        draw_procs(f, procs, app, snap);
    }
    let keys = "l s m r u L: mode  n: numbers  p: processes  h: help  q: quit";
    let line = if app.status.is_empty() {
        keys.to_string()
    } else {
        format!("{keys}   | {}", app.status)
    };
    Paragraph::new(line)
        .style(Style::default().add_modifier(Modifier::REVERSED))
        .render(footer, f.buffer_mut());
    if app.help {
        draw_help(f, area);
    }
}

/// The partial blocks for the top cell of a bar, in eighths.
const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn put(buf: &mut Buffer, x: u16, y: u16, c: char, style: Style) {
    if let Some(cell) = buf.cell_mut((x, y)) {
        cell.set_char(c).set_style(style);
    }
}

fn put_str(buf: &mut Buffer, x: u16, y: u16, s: &str, style: Style) {
    for (i, c) in s.chars().enumerate() {
        put(buf, x + i as u16, y, c, style);
    }
}

/// Formats an axis value without needless decimals.
fn axis_label(v: f64, mode: Mode) -> String {
    match mode {
        Mode::Util => format!("{v:.0}%"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

fn draw_bars(
    buf: &mut Buffer,
    area: Rect,
    bars: &[Bar],
    top: f64,
    cw: u16,
    numbers: bool,
    mode: Mode,
) {
    if area.height < 2 || area.width <= AXIS {
        return;
    }
    let rows = area.height - u16::from(numbers);
    let bottom = area.y + rows - 1;
    let axis = Style::default().fg(Color::DarkGray);
    for (v, y) in [(top, area.y), (top / 2.0, area.y + rows / 2), (0.0, bottom)] {
        let label = axis_label(v, mode);
        put_str(buf, area.x, y, &format!("{label:>5} ┤"), axis);
    }
    for y in area.y..=bottom {
        if buf
            .cell((area.x + AXIS - 1, y))
            .is_some_and(|c| c.symbol() == " ")
        {
            put(buf, area.x + AXIS - 1, y, '│', axis);
        }
    }
    let width = cw - 1;
    for (i, b) in bars.iter().enumerate() {
        let x = area.x + AXIS + i as u16 * cw;
        if numbers {
            let style = if b.me {
                Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            } else {
                Style::default()
            };
            let label = format!("{:>w$}", b.node, w = width as usize);
            put_str(buf, x, bottom + 1, &label, style);
        }
        if b.dead {
            let red = Style::default().fg(Color::Red);
            for (k, c) in "down".chars().enumerate() {
                let y = bottom.saturating_sub(3 - k as u16);
                if y >= area.y {
                    for dx in 0..width {
                        put(buf, x + dx, y, if dx == width / 2 { c } else { ' ' }, red);
                    }
                }
            }
            continue;
        }
        let eighths = |v: f64| ((v / top) * f64::from(rows) * 8.0).round().max(0.0) as u32;
        let used = eighths(b.used).min(u32::from(rows) * 8);
        let total = eighths(b.used + b.rest).min(u32::from(rows) * 8);
        let color = if b.me { Color::Cyan } else { Color::Green };
        for r in 0..u32::from(rows) {
            let y = bottom - r as u16;
            let lo = r * 8;
            let c = if used >= lo + 8 {
                Some(('█', Style::default().fg(color)))
            } else if used > lo {
                Some((EIGHTHS[(used - lo) as usize], Style::default().fg(color)))
            } else if total > lo {
                Some(('░', Style::default().fg(Color::DarkGray)))
            } else {
                None
            };
            if let Some((c, style)) = c {
                for dx in 0..width {
                    put(buf, x + dx, y, c, style);
                }
            }
        }
    }
}

/// One line per node in view: its load over the last minute, and the migrations between
/// it and this node.
fn draw_nodes(f: &mut Frame, area: Rect, app: &App, snap: &Snapshot, shown: Vec<u16>) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" last minute of load; this node's processes there (out) and its guests here (in) ");
    let inner = block.inner(area);
    block.render(area, f.buffer_mut());
    for (row, node) in shown.iter().take(inner.height as usize).enumerate() {
        let y = inner.y + row as u16;
        let Some(v) = snap.nodes.iter().find(|v| v.node == *node) else {
            continue;
        };
        let (out, guests) = snap.exchange(*node);
        let load = v.record.unwrap_or_default().load;
        let head = format!("{:>5}{} ", node, if v.me { '*' } else { ' ' });
        let tail = if v.up {
            format!(
                " {:>5.2}  out {out:<3} in {guests:<3}",
                f64::from(load) / 100.0
            )
        } else {
            format!(" {:>5}  out {out:<3} in {guests:<3}", "down")
        };
        let spark_w = inner
            .width
            .saturating_sub(head.len() as u16 + tail.len() as u16)
            .min(HISTORY as u16);
        put_str(f.buffer_mut(), inner.x, y, &head, Style::default());
        let hist = app.history(*node);
        let data: Vec<u64> = hist
            .iter()
            .copied()
            .skip(hist.len().saturating_sub(spark_w as usize))
            .collect();
        let spark = Rect::new(inner.x + head.len() as u16, y, spark_w, 1);
        // At least one standard CPU high, so that an idle node's line stays flat.
        let max = data.iter().copied().max().unwrap_or(0).max(100);
        Sparkline::default()
            .data(&data)
            .max(max)
            .style(Style::default().fg(Color::Yellow))
            .render(spark, f.buffer_mut());
        put_str(
            f.buffer_mut(),
            inner.x + head.len() as u16 + spark_w,
            y,
            &tail,
            Style::default(),
        );
    }
}

fn draw_procs(f: &mut Frame, area: Rect, app: &App, snap: &Snapshot) {
    let title = if app.target.is_empty() {
        format!(
            " processes of node {} (↑/↓ select, node number + Enter: migrate, H: home, b: best node) ",
            snap.me
        )
    } else {
        format!(
            " processes of node {}: migrate to node {}_ (Enter: go, Esc: cancel) ",
            snap.me, app.target
        )
    };
    let rows: Vec<Row> = snap
        .processes
        .iter()
        .map(|p| {
            let secs = p.cpu_ticks / p.ticks_per_second.max(1);
            Row::new(vec![
                p.pid.to_string(),
                p.user.clone(),
                p.node.to_string(),
                p.state.clone(),
                format!("{}:{:02}", secs / 60, secs % 60),
                if p.cmdline.is_empty() {
                    format!("[{}]", p.comm)
                } else {
                    p.cmdline.clone()
                },
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Length(2),
            Constraint::Length(7),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["PID", "USER", "NODE", "S", "TIME", "COMMAND"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .block(Block::default().borders(Borders::ALL).title(title));
    let mut state = TableState::default().with_selected(Some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

/// The keys, over everything else.
pub const HELP: &[&str] = &[
    "mosmon: the load of every node of the cluster, as this node knows it",
    "",
    "  l   load (default): one unit = one standard CPU kept busy",
    "  s   speed of each node's CPUs (1 = a standard CPU)",
    "  m   memory: used (solid) and available to new processes (light)",
    "  r   raw memory: used and raw free",
    "  u   utilisation, in percent of the node's capacity",
    "  L   load on a logarithmic scale",
    "  n   show or hide node numbers",
    "  ←/→ PgUp/PgDn Home/End   scroll through the nodes",
    "  p   processes of this node: ↑/↓ select, type a node number and",
    "      Enter to migrate it there, H to bring it home, b for the best node",
    "  h ? this help (any key leaves it)      q   quit",
    "",
    "  A dead node shows \"down\" instead of a bar; * marks this node.",
];

fn draw_help(f: &mut Frame, area: Rect) {
    let w = (HELP.iter().map(|l| l.chars().count()).max().unwrap_or(40) as u16 + 4).min(area.width);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(r, f.buffer_mut());
    Paragraph::new(HELP.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
        .block(Block::default().borders(Borders::ALL).title(" help "))
        .render(r, f.buffer_mut());
}
