//! mosmon: watch the cluster, as openMosix's mosmon(1).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use om_mosmon::model::{Action, App, Key, Snapshot};
use om_mosmon::source::{Omd, Simulated, Source};
use om_mosmon::view::draw;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

/// Watch every node of the cluster: a bar per node of its load (or speed, memory,
/// utilisation), with the node numbers below, as this node's omd knows them.
///
/// Keys: l load, s speed, m memory, r raw memory, u utilisation, L log-scale load,
/// n node numbers on/off, arrows and PgUp/PgDn to scroll through many nodes, p the
/// process pane (select a process, type a node number and Enter to migrate it), h or ?
/// help, q quit. One unit of load is one standard CPU kept busy; dead nodes show "down".
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  mosmon                  watch the cluster, refreshed every second\n  mosmon -d 0.5           twice a second\n  mosmon --simulate 64    try it on a simulated cluster of 64 nodes"
)]
struct Args {
    /// Seconds between two refreshes.
    #[arg(short = 'd', long, default_value_t = 1.0)]
    delay: f64,
    /// Show a simulated cluster of N nodes instead of asking omd.
    #[arg(long, value_name = "N")]
    simulate: Option<u16>,
}

fn main() -> std::process::ExitCode {
    om_docgen::generate_if_asked(Args::command, "1");
    let args = Args::parse();
    let mut source: Box<dyn Source> = match args.simulate {
        Some(n) => Box::new(Simulated::new(n.max(1))),
        None => Box::new(Omd),
    };
    // Ask once before taking over the terminal, so that "omd is not running" is
    // printed plainly.
    let first = match source.snapshot() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mosmon: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut terminal = ratatui::init();
    let r = run(&mut terminal, source.as_mut(), first, args.delay);
    ratatui::restore();
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mosmon: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn key_of(code: KeyCode) -> Option<Key> {
    Some(match code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

fn run(
    terminal: &mut ratatui::DefaultTerminal,
    source: &mut dyn Source,
    first: Snapshot,
    delay: f64,
) -> Result<()> {
    let every = Duration::from_secs_f64(delay.clamp(0.1, 60.0));
    let mut app = App::default();
    let mut snap = first;
    app.observe(&snap);
    let mut next = Instant::now() + every;
    loop {
        terminal
            .draw(|f| draw(f, &mut app, &snap))
            .context("drawing")?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait).context("reading the terminal")? {
            match event::read().context("reading the terminal")? {
                Event::Key(k) if k.kind == KeyEventKind::Press => {
                    if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
                        return Ok(());
                    }
                    let Some(key) = key_of(k.code) else { continue };
                    match app.key(key, &snap) {
                        Action::Quit => return Ok(()),
                        Action::Migrate { pid, to } => {
                            app.status = match source.migrate(pid, to) {
                                Ok(m) => m,
                                Err(e) => format!("{e:#}"),
                            };
                        }
                        Action::None => {}
                    }
                }
                // A resize is drawn at once by the next loop.
                _ => {}
            }
            continue;
        }
        match source.snapshot() {
            Ok(s) => {
                snap = s;
                app.observe(&snap);
            }
            Err(e) => app.status = format!("{e:#}"),
        }
        next = Instant::now() + every;
    }
}
