//! The live view, drawn from a [`Snapshot`]: a header line (the time, the refresh interval, how
//! many daemons, the keys), then a table, one row per daemon. Every string of a daemon's is
//! escaped with [`clean`] before it reaches a cell: a cell's text goes to the terminal as it is.

use super::model::{Row as Daemon, Snapshot};
use crate::output::clean;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use std::time::{Duration, UNIX_EPOCH};

/// The columns, in order, with their widths (the name's is set by the names; the last takes
/// what is left).
const COLUMNS: [(&str, u16); 6] = [
    ("STATE", 12),
    ("GEN", 5),
    ("IN FLIGHT", 9),
    ("CALLS/S", 8),
    ("ERRORS/S", 8),
    ("LAST", 0),
];

/// Names longer than this are cut: the other columns matter more.
const MAX_NAME: usize = 24;

/// What to draw besides the snapshot.
pub struct View<'a> {
    pub snapshot: &'a Snapshot,
    /// Colours, as `ctl status` decides them.
    pub colour: bool,
    /// What to say when there is no daemon: where they were looked for.
    pub empty: &'a str,
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, view: &View) {
    let [head, body] =
        Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(frame.area());
    frame.render_widget(Paragraph::new(header(view)), head);
    if view.snapshot.rows.is_empty() {
        frame.render_widget(Paragraph::new(view.empty), body);
        return;
    }
    table(frame, view, body);
}

fn header(view: &View) -> Line<'static> {
    let s = view.snapshot;
    let time = UNIX_EPOCH + Duration::from_millis(s.time_unix_ms);
    let n = s.rows.len();
    let text = format!(
        "ctl top  {}  every {}  {n} daemon{}  q: quit",
        humantime::format_rfc3339_seconds(time),
        humantime::format_duration(s.interval),
        if n == 1 { "" } else { "s" }
    );
    Line::styled(
        text,
        paint(view.colour, Style::new().add_modifier(Modifier::BOLD)),
    )
}

fn table(frame: &mut Frame, view: &View, area: Rect) {
    let names: Vec<String> = view
        .snapshot
        .rows
        .iter()
        .map(|d| clean(&d.name).chars().take(MAX_NAME).collect())
        .collect();
    let name_width = crate::human::widest(&names).max(4);
    let mut widths = vec![Constraint::Length(name_width as u16)];
    widths.extend(COLUMNS.iter().map(|&(_, w)| match w {
        0 => Constraint::Fill(1),
        w => Constraint::Length(w),
    }));
    let titles = std::iter::once("NAME").chain(COLUMNS.iter().map(|&(t, _)| t));
    let heading = Row::new(titles.map(Cell::from)).style(paint(
        view.colour,
        Style::new().add_modifier(Modifier::BOLD),
    ));
    // Ages as of the refresh, as the JSON document has them.
    let now = view.snapshot.time_unix_ms;
    let rows = view
        .snapshot
        .rows
        .iter()
        .zip(names)
        .map(|(d, name)| row(d, name, view.colour, now));
    frame.render_widget(
        Table::new(rows, widths).header(heading).column_spacing(2),
        area,
    );
}

/// One daemon's row.
fn row(d: &Daemon, name: String, colour: bool, now_unix_ms: u64) -> Row<'static> {
    let number = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let rate = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.1}"));
    let errors = d.rates.map(|r| r.errors);
    let errors_style = match errors {
        Some(e) if e > 0.0 => Style::new().fg(Color::Red),
        _ => Style::new(),
    };
    Row::new([
        Cell::from(name),
        Cell::from(Span::styled(d.state, paint(colour, state_style(d.state)))),
        Cell::from(number(d.generation)),
        Cell::from(number(d.in_flight)),
        Cell::from(rate(d.rates.map(|r| r.calls))),
        Cell::from(Span::styled(rate(errors), paint(colour, errors_style))),
        Cell::from(last(d, colour, now_unix_ms)),
    ])
}

/// "reload ok 3s ago: MESSAGE", "rotate FAILED ...", or why the daemon did not answer.
fn last(d: &Daemon, colour: bool, now_unix_ms: u64) -> Line<'static> {
    if let Some(error) = &d.error {
        return Line::from(clean(error).into_owned());
    }
    let Some(last) = &d.last else {
        return Line::from("-");
    };
    let (verdict, style) = match last.ok {
        true => ("ok", Style::new().fg(Color::Green)),
        false => (
            "FAILED",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let ago = humantime::format_duration(Duration::from_secs(last.ago_ms(now_unix_ms) / 1000));
    let mut said = format!(" {ago} ago");
    if !last.message.is_empty() {
        said.push_str(&format!(": {}", clean(&last.message)));
    }
    Line::from(vec![
        Span::raw(format!("{} ", last.operation)),
        Span::styled(verdict, paint(colour, style)),
        Span::raw(said),
    ])
}

fn state_style(state: &str) -> Style {
    match state {
        "serving" => Style::new().fg(Color::Green),
        "draining" => Style::new().fg(Color::Yellow),
        "-" => Style::new(),
        _ => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// `style`, or none without colours.
fn paint(colour: bool, style: Style) -> Style {
    if colour {
        style
    } else {
        Style::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::model::{Last, Rates, Reading, Totals};
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::Terminal;
    use std::time::Instant;

    fn snapshot() -> Snapshot {
        let mut web = Daemon::new("web", "/s/web.sock".into());
        let reading = Reading {
            at: Instant::now(),
            pid: 7,
            uptime_ms: 1,
            state: "serving",
            generation: 4,
            in_flight: 3,
            last: Some(Last {
                operation: "reload",
                ok: false,
                message: "bad\x1b[2J\x1b]0;owned\x07".into(),
                finished_unix_ms: 1_000_000,
            }),
            totals: Some(Totals::default()),
            own: 0,
        };
        let rates = Rates {
            calls: 12.25,
            errors: 0.5,
        };
        web.answered(&reading, Some(rates));
        let mut db = Daemon::new("db\x1b[31m", "/s/db.sock".into());
        db.failed("hung", "no answer within 1s".into());
        Snapshot {
            time_unix_ms: 1_003_000,
            interval: Duration::from_millis(200),
            rows: vec![web, db],
        }
    }

    fn render(snapshot: &Snapshot, colour: bool, width: u16) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, 6)).unwrap();
        let view = View {
            snapshot,
            colour,
            empty: "no daemons",
        };
        terminal.draw(|f| draw(f, &view)).unwrap();
        terminal.backend().buffer().clone()
    }

    fn lines(buffer: &Buffer) -> Vec<String> {
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn the_table_has_a_header_columns_and_a_row_per_daemon() {
        let shown = lines(&render(&snapshot(), false, 120));
        assert_eq!(
            shown[0],
            "ctl top  1970-01-01T00:16:43Z  every 200ms  2 daemons  q: quit"
        );
        assert_eq!(shown[1], "");
        let heading = &shown[2];
        let at = |s: &str, line: &str| line.find(s).unwrap_or_else(|| panic!("{s} in {line}"));
        for (title, _) in COLUMNS {
            at(title, heading);
        }
        assert!(heading.starts_with("NAME"), "{heading}");
        let web = &shown[3];
        assert!(web.starts_with("web "), "{shown:#?}");
        assert_eq!(at("serving", web), at("STATE", heading));
        assert_eq!(at("4", web), at("GEN", heading));
        assert_eq!(at("3", web), at("IN FLIGHT", heading));
        assert_eq!(at("12.2", web), at("CALLS/S", heading));
        assert_eq!(at("0.5", web), at("ERRORS/S", heading));
        assert_eq!(at("reload FAILED 3s ago: bad", web), at("LAST", heading));
        let db = &shown[4];
        assert_eq!(at("hung", db), at("STATE", heading));
        assert_eq!(at("-", db), at("GEN", heading));
        assert!(db.ends_with("no answer within 1s"), "{db}");
    }

    #[test]
    fn a_daemons_text_is_escaped_in_every_cell() {
        let buffer = render(&snapshot(), true, 160);
        let shown = lines(&buffer);
        assert!(
            shown[3].contains("bad\\u{1b}[2J\\u{1b}]0;owned\\u{7}"),
            "{shown:#?}"
        );
        assert!(shown[4].starts_with("db\\u{1b}[31m"), "{shown:#?}");
        for cell in buffer.content() {
            assert!(
                !cell.symbol().contains(|c: char| c.is_control()),
                "{:?}",
                cell.symbol()
            );
        }
    }

    #[test]
    fn colours_only_when_asked_and_a_narrow_screen_cuts_the_last_column() {
        let coloured = render(&snapshot(), true, 120);
        let plain = render(&snapshot(), false, 120);
        let state_x = lines(&plain)[2].find("STATE").unwrap() as u16;
        assert_eq!(coloured[(state_x, 3)].fg, Color::Green);
        assert_eq!(coloured[(state_x, 4)].fg, Color::Red);
        assert!(plain.content().iter().all(|c| c.fg == Color::Reset));
        let narrow = lines(&render(&snapshot(), false, 70));
        assert!(narrow[3].starts_with("web "), "{narrow:#?}");
        assert!(narrow.iter().all(|l| l.chars().count() <= 70));
    }

    #[test]
    fn no_daemon_says_where_they_were_looked_for() {
        let empty = Snapshot {
            rows: Vec::new(),
            ..snapshot()
        };
        let shown = lines(&render(&empty, false, 80));
        assert!(shown[0].contains("0 daemons"), "{shown:#?}");
        assert_eq!(shown[2], "no daemons");
    }
}
