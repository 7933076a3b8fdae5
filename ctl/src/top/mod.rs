//! `ctl top`: a live view of the daemons, refreshed every `--interval`. On a terminal, a table
//! redrawn in place until `q`; piped or with `--json`, one JSON document per refresh, one line
//! each. `--count N` stops after N refreshes either way.
//!
//! - `model`: readings, rates, rows and the JSON document (pure);
//! - `watch`: asking the daemons, with one kept connection each;
//! - `view`: the table, drawn with ratatui;
//! - `term`: the terminal's modes, restored by a guard.

mod model;
mod term;
mod view;
mod watch;

use crate::cli::Global;
use crate::exit::Exit;
use crate::human::Paint;
use crate::output::{json_line, print_err};
use clap::Args;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use model::Snapshot;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use watch::Fleet;

/// How long each daemon has to answer a refresh when `--timeout` is not given: about a
/// refresh, so that a hung daemon shows as such at once and holds up the others little.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The long help of `ctl top`.
pub const LONG_ABOUT: &str = "\
Watch daemons live: state, configuration generation, work in flight, calls and errors per \
second, and the last reload or rotate with its result

Every daemon `ctl list` would list (as they come and go), or only each NAME (a name or a \
socket path), is asked for its status and the server's counters once per --interval (1s), in \
parallel, each within --timeout (1s here) on a connection kept from one refresh to the next. \
CALLS/S counts every call the daemon's server answered or refused since the refresh before, \
ctl top's own excepted; ERRORS/S those that failed or were refused; both are - on the first \
refresh, after a daemon did not answer, and when it restarted. A daemon that does not answer \
in time is hung; STATE is otherwise one of ctl list's (serving, draining, stopping, died, \
denied, untrusted, ...), or stopped for a NAME with no socket.

On a terminal: a table redrawn in place; q, Esc or Ctrl-C quits, and the terminal is given \
back as it was. Colours as ctl status has them (NO_COLOR, CLICOLOR, TERM=dumb). Piped, or with \
--json: one JSON document per refresh, one line each, {\"time_unix_ms\", \"interval_ms\", \
\"daemons\": [{\"name\", \"socket\", \"state\", \"generation\", \"in_flight\", \
\"calls_per_second\", \"errors_per_second\", \"last\": {\"operation\", \"ok\", \"message\", \
\"ago_ms\"}, \"error\"}]}, a value not known being null; it runs until killed, or a closed \
stdout (ctl top | head -1) ends it quietly.

Exits 0 when it ends (q, --count, a closed stdout, SIGTERM, SIGQUIT), whatever the daemons' states: \
for a health check, use ctl list. 2: usage (a bad NAME or --interval); 1: the terminal could \
not be set up; 74: stdout could not be written.";

/// Arguments of `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only these daemons (names or socket paths); every listed one without
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// How often to refresh (e.g. 500ms, 2s)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after this many refreshes
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// Shortest `--interval`: asking every daemon more often than this is a load, not a view.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 2s)"))?;
    if !(MIN_INTERVAL..=Duration::from_secs(3600)).contains(&d) {
        return Err("the interval must be between 50ms and 1h".into());
    }
    Ok(d)
}

/// `ctl top`.
pub async fn run(global: &Global, args: &TopArgs) -> Exit {
    let timeout = if global.timeout_given {
        global.timeout
    } else {
        DEFAULT_TIMEOUT
    };
    let fleet = match Fleet::new(&args.names, timeout, args.interval) {
        Ok(fleet) => fleet,
        Err(err) => {
            print_err(&format!("ctl: top: {err}"));
            return err.exit();
        }
    };
    if global.json || !io::stdout().is_terminal() {
        return documents(fleet, args).await;
    }
    let colour = Paint::for_stdout().0;
    let guard = match term::Guard::enter(term::Tty) {
        Ok(guard) => guard,
        Err(err) => {
            print_err(&format!("ctl: top: cannot set up the terminal: {err}"));
            return Exit::Failed;
        }
    };
    term::restore_on_panic();
    let result = live(fleet, args, colour).await;
    // The terminal back first: the error is for the shell's screen, not the view's.
    drop(guard);
    match result {
        Ok(()) => Exit::Ok,
        Err(err) => {
            print_err(&format!("ctl: top: {err}"));
            Exit::Output
        }
    }
}

/// Piped or `--json`: one document per refresh. A reader that closed the pipe has what it
/// wanted: exit 0.
async fn documents(mut fleet: Fleet, args: &TopArgs) -> Exit {
    let mut ticks = Ticks::new(args.interval);
    for n in 1.. {
        let snapshot = fleet.refresh().await;
        let line = json_line(&snapshot.to_json()) + "\n";
        let mut out = io::stdout().lock();
        match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Exit::Ok,
            Err(e) => {
                print_err(&format!("ctl: top: cannot write the output: {e}"));
                return Exit::Output;
            }
        }
        drop(out);
        if args.count == Some(n) {
            break;
        }
        ticks.wait().await;
    }
    Exit::Ok
}

/// When the next refresh is due: one interval after the one before started, or at once
/// when that is past (a refresh that took longer than the interval).
struct Ticks {
    interval: Duration,
    next: Instant,
}

impl Ticks {
    fn new(interval: Duration) -> Ticks {
        Ticks {
            interval,
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        self.next = (self.next + self.interval).max(Instant::now());
        tokio::time::sleep_until(self.next.into()).await;
    }
}

/// What a key or a signal asks of the view.
enum Asked {
    Quit,
    Redraw,
    Nothing,
}

/// The live view until a key, a signal or `--count` ends it.
async fn live(mut fleet: Fleet, args: &TopArgs, colour: bool) -> io::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut input = Input::new()?;
    let mut ticks = Ticks::new(args.interval);
    let empty = format!(
        "no daemons found in {} (ctl list looks in the same places)",
        fleet.where_looked()
    );
    for n in 1.. {
        // Keys are read while the daemons are asked: q quits at once, even with one hung.
        let snapshot = {
            let refresh = fleet.refresh();
            tokio::pin!(refresh);
            loop {
                tokio::select! {
                    snapshot = &mut refresh => break snapshot,
                    asked = input.next() => if let Asked::Quit = asked? { return Ok(()) },
                }
            }
        };
        let draw = |terminal: &mut Terminal<_>, snapshot: &Snapshot| {
            let view = view::View {
                snapshot,
                colour,
                empty: &empty,
            };
            terminal.draw(|frame| view::draw(frame, &view)).map(drop)
        };
        draw(&mut terminal, &snapshot)?;
        test_panic();
        if args.count == Some(n) {
            break;
        }
        let wait = ticks.wait();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                asked = input.next() => match asked? {
                    Asked::Quit => return Ok(()),
                    // A resized terminal is drawn anew at its new size.
                    Asked::Redraw => draw(&mut terminal, &snapshot)?,
                    Asked::Nothing => {}
                },
            }
        }
    }
    Ok(())
}

/// A panic in the view, for the test that proves the terminal is restored after one (debug
/// builds only: a release ctl reads no such variable).
fn test_panic() {
    #[cfg(debug_assertions)]
    if std::env::var_os("CTL_TOP_TEST_PANIC").is_some() {
        panic!("CTL_TOP_TEST_PANIC is set: a panic in the view, as a bug would cause");
    }
}

/// Keys and signals, as one stream of what they ask. In raw mode Ctrl-C is a key; SIGTERM,
/// SIGHUP (the terminal closed), SIGINT and SIGQUIT (from `kill`) end the view as q
/// does, so that the terminal is restored: SIGQUIT's default (a core dump) would leave it raw.
struct Input {
    keys: Option<EventStream>,
    signals: [Signal; 4],
}

impl Input {
    fn new() -> io::Result<Input> {
        Ok(Input {
            keys: Some(EventStream::new()),
            signals: [
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::quit())?,
            ],
        })
    }

    async fn next(&mut self) -> io::Result<Asked> {
        let [term, hup, int, quit] = &mut self.signals;
        let event = tokio::select! {
            _ = term.recv() => return Ok(Asked::Quit),
            _ = hup.recv() => return Ok(Asked::Quit),
            _ = int.recv() => return Ok(Asked::Quit),
            _ = quit.recv() => return Ok(Asked::Quit),
            event = next_key(&mut self.keys) => event,
        };
        match event {
            Some(Ok(event)) => Ok(asked(&event)),
            Some(Err(err)) => Err(err),
            // No more input (it was closed): the view goes on until a signal or --count.
            None => {
                self.keys = None;
                Ok(Asked::Nothing)
            }
        }
    }
}

/// The next terminal event; never, once there are none.
async fn next_key(keys: &mut Option<EventStream>) -> Option<io::Result<Event>> {
    match keys {
        Some(keys) => keys.next().await,
        None => std::future::pending().await,
    }
}

/// What a terminal event asks.
fn asked(event: &Event) -> Asked {
    match event {
        Event::Key(KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            ..
        }) => match code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => Asked::Quit,
            KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Asked::Quit,
            _ => Asked::Nothing,
        },
        Event::Resize(..) => Asked::Redraw,
        _ => Asked::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_esc_and_ctrl_c_quit_and_a_resize_redraws() {
        let key = |code, modifiers| Event::Key(KeyEvent::new(code, modifiers));
        for quit in [
            key(KeyCode::Char('q'), KeyModifiers::NONE),
            key(KeyCode::Esc, KeyModifiers::NONE),
            key(KeyCode::Char('c'), KeyModifiers::CONTROL),
        ] {
            assert!(matches!(asked(&quit), Asked::Quit), "{quit:?}");
        }
        let c = key(KeyCode::Char('c'), KeyModifiers::NONE);
        assert!(matches!(asked(&c), Asked::Nothing));
        assert!(matches!(asked(&Event::Resize(80, 24)), Asked::Redraw));
    }

    #[test]
    fn the_interval_is_a_duration_within_bounds() {
        assert_eq!(parse_interval("200ms"), Ok(Duration::from_millis(200)));
        for bad in ["0s", "10ms", "2h", "soon"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
