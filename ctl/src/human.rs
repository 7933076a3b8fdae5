//! The text `ctl` shows people for each reply: one line, or aligned rows, with ctl's own
//! colours on a terminal, and every string of the daemon's escaped with [`clean`].

use crate::output::{clean, print_err, Reply};
use control_api::{
    CountersReply, Description, Hello, HistoryReply, OperationKind, ReloadReply, RotateReply,
    Status,
};
use serde_json::Value;
use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The human text for a reply, each string of the daemon's escaped; only a status carries
/// ctl's own colours.
pub fn human(hello: &Hello, reply: &Reply, paint: Paint) -> String {
    let name = &*clean(&hello.name);
    match reply {
        Reply::Hello => format!(
            "{name} {} (pid {}), protocol {}; supports: {}",
            clean(&hello.version),
            hello.pid,
            hello.protocol,
            joined(&hello.operations)
        ),
        Reply::Reload(r) => reloaded(name, r),
        Reply::Check(r) if r.unchanged => format!(
            "{name}: the configuration is valid and equals the active one (generation {}); a \
             reload would change nothing",
            r.generation
        ),
        Reply::Check(r) => format!(
            "{name}: the configuration is valid; a reload would apply: {} (generation {} stays \
             active until then)",
            clean(&r.summary), r.generation
        ),
        Reply::Counters(r) => counters(name, r),
        Reply::Exposition(r) => {
            let (text, skipped) = crate::prometheus::exposition(&hello.name, &r.counters);
            for name in skipped {
                print_err(&format!(
                    "ctl: counters: {name} left out: its metric name is taken by another counter"
                ));
            }
            text
        }
        Reply::Rotate(r) => rotated(name, r),
        Reply::Drain(r) if r.completed => format!("{name}: drained; nothing left in flight"),
        Reply::Drain(r) if r.resumed => format!(
            "{name}: the drain was undone by a resume before it completed ({} in flight); it takes new work again",
            r.in_flight
        ),
        Reply::Drain(r) => format!(
            "{name}: drain deadline passed with {} unit{} of work still in flight; it keeps draining",
            r.in_flight,
            if r.in_flight == 1 { "" } else { "s" }
        ),
        Reply::Status(s) => status(s, paint),
        Reply::Resume(r) if r.was_draining => format!("{name}: resumed; taking new work again"),
        Reply::Resume(_) => format!("{name}: not draining; nothing to resume"),
        Reply::LogLevel(r) => match &r.previous {
            Some(previous) => format!("{name}: log filter is now `{}` (was `{}`)", clean(&r.filter), clean(previous)),
            None => format!("{name}: log filter is `{}`", clean(&r.filter)),
        },
        Reply::Describe(d) => describe(name, d),
        Reply::Call(r) => match r.changed {
            // Said by the daemon: the command found what it was asked for already so.
            Some(false) => {
                let rows = key_values(&r.reply);
                let sep = if rows.is_empty() { "" } else { "\n" };
                format!("{rows}{sep}(nothing changed: it was so already)")
            }
            _ => key_values(&r.reply),
        },
        Reply::Said { text, .. } => format!("{name}: {text}"),
        Reply::History(r) => history(name, r),
    }
}

/// The width of the widest of `texts`, in characters: what a column of them is padded to.
pub fn widest<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> usize {
    let widths = texts.into_iter().map(|s| s.as_ref().chars().count());
    widths.max().unwrap_or(0)
}

/// Strings of the daemon's, escaped, separated by commas.
fn joined(items: &[String]) -> String {
    let each: Vec<Cow<str>> = items.iter().map(|s| clean(s)).collect();
    each.join(", ")
}

fn reloaded(name: &str, r: &ReloadReply) -> String {
    let mut line = format!(
        "{name}: reloaded; configuration generation {} is active",
        r.generation
    );
    if !r.summary.is_empty() {
        line.push_str(&format!(" ({})", clean(&r.summary)));
    }
    if r.joined {
        line.push_str("; this request shared a reload another caller asked for");
    }
    line
}

/// `ctl rotate`: each file, and what became of it.
fn rotated(name: &str, r: &RotateReply) -> String {
    let mut out = format!(
        "{name}: reopened {} log file{}",
        r.files.len(),
        if r.files.len() == 1 { "" } else { "s" }
    );
    for f in &r.files {
        let path = control_api::text::escape_path(&f.path);
        let what = match (&f.error, f.old, f.new) {
            (Some(err), _, _) => format!(
                "NOT reopened, still writing to the old file: {}",
                clean(err)
            ),
            (None, Some(old), Some(new)) if old == new => {
                "same file as before (it had not been renamed)".to_owned()
            }
            (None, old, new) => format!(
                "inode {} -> {}, {} written to the old file",
                old.map_or("-".into(), |id| id.ino.to_string()),
                new.map_or("-".into(), |id| id.ino.to_string()),
                bytes(f.bytes_to_old)
            ),
        };
        out.push_str(&format!("\n  {path}: {what}"));
    }
    out
}

/// `ctl counters`: one `name  value` line each, names aligned left and values right.
fn counters(name: &str, r: &CountersReply) -> String {
    if r.counters.is_empty() {
        return format!("{name}: no counters");
    }
    let names: Vec<Cow<str>> = r.counters.iter().map(|c| clean(&c.name)).collect();
    let width = widest(&names);
    let values: Vec<String> = r.counters.iter().map(|c| c.value.to_string()).collect();
    let value_width = widest(&values);
    names
        .iter()
        .zip(&values)
        .map(|(n, v)| format!("{n:width$}  {v:>value_width$}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ctl history`: a heading, then one line per call, oldest first, columns aligned: time (UTC),
/// operation, result, duration, generation, caller, and what it said.
fn history(name: &str, r: &HistoryReply) -> String {
    let dropped = match r.dropped {
        0 => String::new(),
        n => format!("; {n} older dropped"),
    };
    if r.entries.is_empty() {
        return format!(
            "{name}: no calls recorded (it keeps the last {}{dropped})",
            r.capacity
        );
    }
    let calls = match r.entries.len() {
        1 => "1 call".to_owned(),
        n => format!("{n} calls"),
    };
    let mut out = format!(
        "{name}: {calls}, oldest first, times UTC (it keeps the last {}{dropped})",
        r.capacity
    );
    let ops: Vec<Cow<str>> = r.entries.iter().map(|e| clean(&e.operation)).collect();
    let results: Vec<Cow<str>> = r.entries.iter().map(|e| clean(&e.result)).collect();
    let took: Vec<String> = r
        .entries
        .iter()
        .map(|e| format!("{} ms", e.duration_ms))
        .collect();
    let (op_w, result_w, took_w) = (widest(&ops), widest(&results), widest(&took));
    for (i, e) in r.entries.iter().enumerate() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(e.unix_ms);
        let at = humantime::format_rfc3339_seconds(at);
        // The caller is escaped already (control_api's HistoryEntry::caller).
        out.push_str(&format!(
            "\n{at}  {:op_w$}  {:result_w$}  {:>took_w$}  gen {}  {}",
            ops[i],
            results[i],
            took[i],
            e.generation,
            e.caller()
        ));
        if !e.message.is_empty() {
            out.push_str(&format!(": {}", clean(&e.message)));
        }
    }
    out
}

/// `ctl describe`: the built-ins, then the daemon's commands with their arguments.
fn describe(name: &str, d: &Description) -> String {
    let width = widest(d.operations.iter().map(|op| clean(&op.name)));
    let mut out = String::new();
    let builtins = format!("{name}: operations (ctl OPERATION {name})");
    let commands = format!("commands (ctl call {name} COMMAND [KEY=VALUE]...)");
    for (kind, title) in [
        (OperationKind::Builtin, builtins),
        (OperationKind::Command, commands),
    ] {
        let ops: Vec<_> = d.operations.iter().filter(|op| op.kind == kind).collect();
        if ops.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&title);
        for op in ops {
            out.push_str(&format!(
                "\n  {:width$}  {:7}  {}",
                clean(&op.name),
                op.access.as_str(),
                clean(&op.doc)
            ));
            if kind == OperationKind::Command {
                for arg in control_api::args::arguments(&op.args) {
                    let required = if arg.required { "required" } else { "optional" };
                    out.push_str(&format!(
                        "\n  {:width$}    {}: {}, {required}",
                        "",
                        clean(&arg.name),
                        clean(&arg.type_name)
                    ));
                    // The field's doc comment, on its line: one row, whatever it holds.
                    if let Some(line) = arg.description.lines().next().filter(|l| !l.is_empty()) {
                        out.push_str(&format!(" ({})", clean(line.trim_end_matches('.'))));
                    }
                }
            }
        }
    }
    out
}

/// A command's reply as aligned `key  value` lines; a reply that is not an object, as JSON.
fn key_values(value: &Value) -> String {
    let Value::Object(map) = value else {
        return clean(&value.to_string()).into_owned();
    };
    let width = widest(map.keys().map(|k| clean(k)));
    map.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => clean(s).into_owned(),
                other => clean(&other.to_string()).into_owned(),
            };
            format!("{:width$}  {text}", clean(key))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// ANSI colours, or none.
#[derive(Clone, Copy)]
pub struct Paint(pub bool);

/// The SGR codes of ctl's own colours.
const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "31;1";
const BOLD: &str = "1";

impl Paint {
    /// Colours on stdout as the conventions clap and most tools follow say (anstream decides):
    /// never with `NO_COLOR` set or `CLICOLOR=0`, always with `CLICOLOR_FORCE`, else on a
    /// terminal whose `TERM` is set and not `dumb`.
    pub fn for_stdout() -> Paint {
        let choice = anstream::AutoStream::choice(&std::io::stdout());
        // anstream colours a terminal under `CI` whatever `TERM` says; a dumb terminal is
        // dumb there too, unless colour is forced.
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let dumb = var("TERM").is_some_and(|t| t == "dumb");
        let forced = var("CLICOLOR_FORCE").is_some_and(|v| v != "0");
        Paint(choice != anstream::ColorChoice::Never && (!dumb || forced))
    }

    /// `s` in the colour of the SGR `code`, or as it is.
    fn code(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn status(s: &Status, paint: Paint) -> String {
    let mut out = format!(
        "{} {} (pid {}), up {}",
        paint.code(BOLD, &clean(&s.name)),
        clean(&s.version),
        s.pid,
        humantime::format_duration(Duration::from_secs(s.uptime_ms / 1000))
    );
    let state = match s.draining {
        true => paint.code(YELLOW, "draining"),
        false => paint.code(GREEN, "serving"),
    };
    let state = format!("{state}, {} in flight", s.in_flight);
    let config = format!("generation {}", s.config_generation);
    // Gathered first, so that every row aligns to the longest name.
    let mut rows: Vec<(Cow<str>, String)> =
        vec![("state".into(), state), ("config".into(), config)];
    if let Some(last) = &s.last_reload {
        let v = outcome(paint, last.ok, last.finished_unix_ms, &last.message);
        rows.push(("last reload".into(), v));
    }
    last_rotate(s, paint, &mut rows);
    for f in &s.log_files {
        rows.push(("log file".into(), log_file(s, f, paint)));
    }
    // The typed fields in the daemon's order; from an older daemon, its text fields.
    if s.values.is_empty() {
        for (k, v) in &s.fields {
            rows.push((clean(k).into_owned().into(), clean(v).into_owned()));
        }
    }
    for f in &s.values {
        let value = clean(&f.value.to_string()).into_owned();
        rows.push((clean(&f.name).into_owned().into(), value));
    }
    // A name longer than this is not worth pushing every value off the screen for.
    const MAX_WIDTH: usize = 40;
    let width = widest(rows.iter().map(|(k, _)| k)).min(MAX_WIDTH);
    for (k, v) in rows {
        out.push_str(&format!("\n  {k:<width$} {v}"));
    }
    out
}

/// "ok 3m ago: MESSAGE" or "FAILED ...".
fn outcome(paint: Paint, ok: bool, finished_unix_ms: u64, message: &str) -> String {
    let ago = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|now| now.as_millis() as u64)
        .unwrap_or(0)
        .saturating_sub(finished_unix_ms);
    let ago = humantime::format_duration(Duration::from_secs(ago / 1000));
    let verdict = match ok {
        true => paint.code(GREEN, "ok"),
        false => paint.code(RED, "FAILED"),
    };
    let mut v = format!("{verdict} {ago} ago");
    if !message.is_empty() {
        v.push_str(&format!(": {}", clean(message)));
    }
    v
}

/// The last rotate's row, and one for each file it did not reopen.
fn last_rotate(s: &Status, paint: Paint, rows: &mut Vec<(Cow<str>, String)>) {
    let Some(last) = &s.last_rotate else {
        return;
    };
    let mut v = outcome(paint, last.ok, last.finished_unix_ms, &last.message);
    if last.late {
        v.push_str(" (finished after its caller's deadline: the caller was not told)");
    }
    if last.sighup {
        v.push_str(" (for a SIGHUP)");
    }
    rows.push(("last rotate".into(), v));
    for f in &last.files {
        if let Some(error) = &f.error {
            let path = control_api::text::escape_path(&f.path);
            rows.push(("  not reopened".into(), format!("{path}: {}", clean(error))));
        }
    }
}

/// A log file's path, and in red whether the daemon still writes a file its path no longer
/// names.
fn log_file(s: &Status, path: &Path, paint: Paint) -> String {
    let mut v = control_api::text::escape_path(path);
    if let Some(r) = s.renamed_log_files.iter().find(|r| r.path == path) {
        let now = match (&r.now_at, r.deleted) {
            (_, true) => "deleted".to_owned(),
            (Some(at), false) => format!("renamed to {}", control_api::text::escape_path(at)),
            (None, false) => "renamed".to_owned(),
        };
        let warning = format!(
            "(NOT REOPENED: still writing to the file now {now}; `ctl rotate {}` reopens it)",
            clean(&s.name)
        );
        v.push_str(&format!(" {}", paint.code(RED, &warning)));
    }
    v
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use control_api::*;

    #[test]
    fn history_is_one_aligned_line_per_call_oldest_first() {
        let hello = Hello {
            name: "demo".into(),
            ..Hello::default()
        };
        let entry = |ms, op: &str, result: &str| HistoryEntry {
            unix_ms: ms,
            operation: op.into(),
            uid: Some(0),
            user: Some("root".into()),
            pid: Some(42),
            command_line: Some("ctl reload demo".into()),
            result: result.into(),
            duration_ms: 12,
            generation: 3,
            ..HistoryEntry::default()
        };
        let mut refused = entry(1_765_099_498_000, "set-message", "denied");
        refused.message = "permission denied".into();
        let reply = HistoryReply {
            entries: vec![entry(1_765_099_497_000, "reload", "ok"), refused],
            dropped: 4,
            capacity: 100,
        };
        let text = human(&hello, &Reply::History(reply), Paint(false));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "demo: 2 calls, oldest first, times UTC (it keeps the last 100; 4 older dropped)",
                "2025-12-07T09:24:57Z  reload       ok      12 ms  gen 3  uid 0 (root) pid 42 \
                 \"ctl reload demo\"",
                "2025-12-07T09:24:58Z  set-message  denied  12 ms  gen 3  uid 0 (root) pid 42 \
                 \"ctl reload demo\": permission denied",
            ]
        );
        let empty = HistoryReply {
            capacity: 100,
            ..HistoryReply::default()
        };
        assert_eq!(
            human(&hello, &Reply::History(empty), Paint(false)),
            "demo: no calls recorded (it keeps the last 100)"
        );
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    /// Every string of every reply holds escapes, including names added later: the human text
    /// must carry none of them.
    #[test]
    fn human_output_carries_no_daemon_control_characters() {
        let evil = "\x1b]0;owned\x07\x1b[2J\u{9b}m";
        let hello = Hello {
            protocol: 1,
            name: evil.into(),
            version: evil.into(),
            pid: 7,
            operations: vec![evil.into()],
        };
        let status = Status {
            name: evil.into(),
            version: evil.into(),
            pid: 7,
            config_generation: 1,
            last_reload: Some(control_api::ReloadOutcome {
                ok: false,
                generation: 1,
                message: evil.into(),
                finished_unix_ms: 0,
            }),
            log_files: vec![evil.into()],
            fields: [(evil.to_owned(), evil.to_owned())].into(),
            values: vec![control_api::StatusField::new(evil, evil)],
            ..Status::default()
        };
        let replies = [
            Reply::Hello,
            Reply::Status(status),
            Reply::Reload(ReloadReply {
                generation: 2,
                summary: evil.into(),
                joined: true,
                unchanged: false,
            }),
            Reply::Rotate(RotateReply {
                files: vec![control_api::ReopenedFile {
                    path: evil.into(),
                    error: Some(evil.into()),
                    ..Default::default()
                }],
            }),
            Reply::Drain(DrainReply {
                completed: false,
                in_flight: 1,
                resumed: false,
            }),
            Reply::Drain(DrainReply {
                completed: false,
                in_flight: 1,
                resumed: true,
            }),
            Reply::Resume(ResumeReply { was_draining: true }),
            Reply::Check(CheckReply {
                generation: 2,
                summary: evil.into(),
                unchanged: false,
            }),
            Reply::LogLevel(LogLevelReply {
                filter: evil.into(),
                previous: Some(evil.into()),
            }),
            Reply::History(HistoryReply {
                entries: vec![HistoryEntry {
                    operation: evil.into(),
                    user: Some(evil.into()),
                    command_line: Some(evil.into()),
                    result: evil.into(),
                    message: evil.into(),
                    ..HistoryEntry::default()
                }],
                dropped: 0,
                capacity: 1,
            }),
            Reply::History(HistoryReply {
                entries: vec![HistoryEntry {
                    signal: Some(evil.into()),
                    command_line_unread: Some(evil.into()),
                    ..HistoryEntry::default()
                }],
                dropped: 0,
                capacity: 1,
            }),
        ];
        for reply in &replies {
            let coloured = human(&hello, reply, Paint(true));
            let ours = ["\x1b[1m", "\x1b[31;1m", "\x1b[32m", "\x1b[0m"];
            let theirs = ours
                .iter()
                .fold(coloured, |text, code| text.replace(code, ""));
            assert!(!theirs.contains('\x1b'), "{theirs:?}");
            let text = human(&hello, reply, Paint(false));
            assert!(
                text.contains("]0;owned"),
                "the text itself is kept: {text:?}"
            );
            assert!(
                !text.contains(|c: char| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
    }

    /// The names of [`typed_status`]'s fields, in its order.
    pub(crate) const TYPED_NAMES: [&str; 6] = [
        "zeta",
        "a_much_longer_field_name",
        "ratio",
        "ok",
        "negative",
        "message",
    ];

    pub(crate) fn typed_status() -> Status {
        use control_api::StatusField;
        Status {
            name: "d".into(),
            version: "1".into(),
            pid: 7,
            config_generation: 1,
            values: vec![
                StatusField::new("zeta", 42u64),
                StatusField::new("a_much_longer_field_name", Duration::from_millis(1500)),
                StatusField::new("ratio", 0.5),
                StatusField::new("ok", true),
                StatusField::new("negative", -3),
                StatusField::new("message", "hi"),
            ],
            ..Status::default()
        }
    }

    #[test]
    fn status_rows_align_to_the_longest_name_in_the_daemons_order() {
        let text = status(&typed_status(), Paint(false));
        let rows: Vec<&str> = text.lines().skip(1).collect();
        let width = "a_much_longer_field_name".len();
        for row in &rows {
            // Two spaces, the name padded to the longest, one space, the value.
            assert_eq!(row.as_bytes()[2 + width], b' ', "{text}");
            assert_ne!(row.as_bytes()[2 + width + 1], b' ', "{text}");
        }
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names[..2], ["state", "config"]);
        assert_eq!(names[2..], TYPED_NAMES);
        assert!(text.contains("a_much_longer_field_name 1.5s"), "{text}");
        assert!(text.contains("\n  zeta                     42"), "{text}");
    }

    #[test]
    fn status_from_an_older_daemon_shows_its_text_fields() {
        let old = Status {
            fields: [("queue".to_owned(), "4".to_owned())].into(),
            values: Vec::new(),
            ..typed_status()
        };
        assert!(status(&old, Paint(false)).contains("\n  queue  4"));
    }
}
