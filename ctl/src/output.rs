//! What `ctl` prints: one line per result for people, one JSON document with `--json` built
//! from the typed replies, nothing but errors with `--quiet`. A closed stdout (`ctl status | head
//! -1`) is not an error; any other failure to write it is ([`CtlError::Output`], exit 74).
//!
//! Text a daemon supplied is shown in human output (stdout and stderr) only through [`clean`],
//! which is [`control_api::text::escape`]: a newline, a control character or a bidi override in
//! it is written as a visible escape, on a terminal or not (text saved from a pipe ends up on a
//! terminal later too), so a daemon can neither forge rows nor reorder or hide what is shown.
//! Each string of a reply is escaped on its own, so ctl's own line breaks and colours stay.
//! `--json` keeps the daemon's text exact, escaped as JSON escapes it.

use crate::cli::Global;
use crate::error::CtlError;
use control_api::field::format_duration;
use control_api::{
    CheckReply, CountersReply, Description, DrainReply, FieldValue, Hello, LogLevelReply,
    OperationKind, ReloadReply, ResumeReply, RotateReply, Status,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A successful reply, of whichever operation was asked for.
// One per invocation, printed and dropped: a `Status` inline costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    Hello,
    Status(Status),
    Reload(ReloadReply),
    Check(CheckReply),
    Counters(CountersReply),
    /// `counters --prometheus`: the same reply, in the exposition format.
    Exposition(CountersReply),
    Rotate(RotateReply),
    Drain(DrainReply),
    LogLevel(LogLevelReply),
    Resume(ResumeReply),
    Describe(Description),
    /// A daemon command's reply, as the daemon sent it.
    Call(Value),
    /// An operation's own document and line (after the daemon's name), where it says
    /// everything itself: the text holds nothing of the daemon's.
    Said {
        doc: Value,
        text: String,
    },
}

/// The one `--json` document of every operation on one daemon (docs/operators.md, `--json`):
/// what was asked and how it ended, then the daemon and its result, the error, or why
/// nothing was done.
#[derive(Serialize)]
struct Envelope<'a> {
    ok: bool,
    exit_code: u8,
    operation: &'a str,
    target: &'a str,
    socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon: Option<Daemon<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc>,
    /// `--missing-ok` found no daemon: what was not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

/// Who answered.
#[derive(Serialize)]
struct Daemon<'a> {
    name: &'a str,
    version: &'a str,
    pid: u32,
    protocol: u32,
}

/// Why the operation failed: `kind` is one of the documented error kinds.
#[derive(Serialize)]
struct ErrorDoc {
    kind: &'static str,
    message: String,
    /// The daemon's own error ([`OpError`](control_api::OpError)), when it gave one.
    detail: Value,
}

impl Reply {
    fn to_json(&self, hello: &Hello) -> Value {
        match self {
            Reply::Hello => to_value(hello),
            Reply::Status(r) => {
                let mut doc = to_value(r);
                // The wire's list of typed fields becomes one object, in the daemon's order.
                doc["values"] = values_json(r);
                doc
            }
            Reply::Reload(r) => to_value(r),
            Reply::Check(r) => to_value(r),
            Reply::Counters(r) | Reply::Exposition(r) => to_value(r),
            Reply::Rotate(r) => to_value(r),
            Reply::Drain(r) => to_value(r),
            Reply::LogLevel(r) => to_value(r),
            Reply::Resume(r) => to_value(r),
            Reply::Describe(r) => to_value(r),
            Reply::Call(r) => r.clone(),
            Reply::Said { doc, .. } => doc.clone(),
        }
    }
}

/// The daemon's fields as one JSON object in the daemon's order, with native values: numbers,
/// booleans, strings, and durations as `{"ms": N, "human": "1.5s"}`. From a daemon that predates
/// typed fields, its text fields (in name order). A value this build cannot read is `null`.
fn values_json(s: &Status) -> Value {
    let mut map = serde_json::Map::new();
    if s.values.is_empty() {
        for (name, text) in &s.fields {
            map.insert(name.clone(), text.as_str().into());
        }
    }
    for field in &s.values {
        map.insert(field.name.clone(), native(&field.value));
    }
    Value::Object(map)
}

fn native(value: &FieldValue) -> Value {
    match value {
        FieldValue::Integer(n) => (*n).into(),
        FieldValue::Unsigned(n) => (*n).into(),
        // NaN and infinities have no JSON number.
        FieldValue::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        FieldValue::Bool(b) => (*b).into(),
        FieldValue::String(s) => s.as_str().into(),
        FieldValue::Duration(d) => {
            let ms = if d.subsec_nanos() % 1_000_000 == 0 {
                Value::from(d.as_millis() as u64)
            } else {
                Value::from(d.as_secs_f64() * 1000.0)
            };
            json!({"ms": ms, "human": format_duration(*d)})
        }
        FieldValue::Unrecognized(_) => Value::Null,
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Where one call's output goes.
pub struct Output<'a> {
    pub global: &'a Global,
    pub operation: &'a str,
    pub target: &'a str,
    pub socket: Option<PathBuf>,
}

impl Output<'_> {
    fn envelope(&self, ok: bool, exit_code: u8) -> Envelope<'_> {
        Envelope {
            ok,
            exit_code,
            operation: self.operation,
            target: self.target,
            socket: self.socket.as_ref().map(|p| p.display().to_string()),
            daemon: None,
            result: None,
            error: None,
            skipped: None,
        }
    }

    /// Prints a reply. `exit_code` is 0 unless the reply itself reports a failure (a drain
    /// that did not complete).
    pub fn reply(&self, hello: &Hello, reply: &Reply, exit_code: u8) -> Result<(), CtlError> {
        if self.global.json {
            if self.global.quiet && exit_code == 0 {
                return Ok(());
            }
            let doc = Envelope {
                daemon: Some(Daemon {
                    name: &hello.name,
                    version: &hello.version,
                    pid: hello.pid,
                    protocol: hello.protocol,
                }),
                result: Some(reply.to_json(hello)),
                ..self.envelope(exit_code == 0, exit_code)
            };
            return print_json(&to_value(&doc));
        }
        let text = human(hello, reply, Paint::for_stdout());
        if exit_code == 0 {
            if !self.global.quiet {
                return print_out(&text);
            }
        } else {
            print_err(&format!("ctl: {text}"));
        }
        Ok(())
    }

    /// Prints an error.
    pub fn error(&self, err: &CtlError) -> Result<(), CtlError> {
        let exit_code = err.exit().code();
        if self.global.json {
            let detail = match err {
                CtlError::Op(op) => to_value(op),
                CtlError::Signal(e) => e.detail(),
                _ => Value::Null,
            };
            let doc = Envelope {
                error: Some(ErrorDoc {
                    kind: err.kind(),
                    message: format!("{err}{}", missing_ok_hint(err)),
                    detail,
                }),
                ..self.envelope(false, exit_code)
            };
            print_json(&to_value(&doc))
        } else {
            print_err(&format!(
                "ctl: {} {}: {err}{}",
                self.operation,
                self.target,
                missing_ok_hint(err)
            ));
            Ok(())
        }
    }

    /// Prints the result of an operation that asks no daemon (`ctl signal`): `doc` in the
    /// envelope's `result`, or `text` for people.
    pub fn said(&self, doc: Value, text: &str) -> Result<(), CtlError> {
        if self.global.quiet {
            return Ok(());
        }
        if self.global.json {
            let doc = Envelope {
                result: Some(doc),
                ..self.envelope(true, 0)
            };
            return print_json(&to_value(&doc));
        }
        print_out(text)
    }

    /// Prints that there was nothing to do because no daemon is there (`--missing-ok`).
    pub fn skipped(&self, err: &CtlError) -> Result<(), CtlError> {
        if self.global.quiet {
            return Ok(());
        }
        if self.global.json {
            let doc = Envelope {
                skipped: Some(err.to_string()),
                ..self.envelope(true, 0)
            };
            print_json(&to_value(&doc))
        } else {
            let what = match err {
                CtlError::NoDaemon { path, why, also } => {
                    format!(
                        "no daemon at {}{}: {why}",
                        path.display(),
                        crate::error::nor(also)
                    )
                }
                other => other.to_string(),
            };
            print_out(&format!("ctl: {what}; nothing to do (--missing-ok)"))
        }
    }
}

/// The human text for a reply, each string of the daemon's escaped.
fn human(hello: &Hello, reply: &Reply, paint: Paint) -> String {
    match reply {
        // Carries ctl's own colours.
        Reply::Status(s) => status(s, paint),
        other => plain(hello, other),
    }
}

/// The human text for a reply without colours, each string of the daemon's escaped.
fn plain(hello: &Hello, reply: &Reply) -> String {
    let name = &*clean(&hello.name);
    match reply {
        Reply::Hello => format!(
            "{name} {} (pid {}), protocol {}; supports: {}",
            clean(&hello.version),
            hello.pid,
            hello.protocol,
            hello
                .operations
                .iter()
                .map(|op| clean(op))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reply::Reload(r) => {
            let mut line = format!("{name}: reloaded; configuration generation {} is active", r.generation);
            if !r.summary.is_empty() {
                line.push_str(&format!(" ({})", clean(&r.summary)));
            }
            if r.joined {
                line.push_str("; this request shared a reload another caller asked for");
            }
            line
        }
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
        Reply::Rotate(r) => {
            let mut out = format!(
                "{name}: reopened {} log file{}",
                r.files.len(),
                if r.files.len() == 1 { "" } else { "s" }
            );
            for f in &r.files {
                out.push_str(&format!("\n  {}: ", control_api::text::escape_path(&f.path)));
                match (&f.error, f.old, f.new) {
                    (Some(err), _, _) => out.push_str(&format!("NOT reopened, still writing to the old file: {}", clean(err))),
                    (None, Some(old), Some(new)) if old == new => {
                        out.push_str("same file as before (it had not been renamed)")
                    }
                    (None, old, new) => out.push_str(&format!(
                        "inode {} -> {}, {} written to the old file",
                        old.map_or("-".into(), |id| id.ino.to_string()),
                        new.map_or("-".into(), |id| id.ino.to_string()),
                        bytes(f.bytes_to_old)
                    )),
                }
            }
            out
        }
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
        Reply::Status(s) => status(s, Paint(false)),
        Reply::Resume(r) if r.was_draining => format!("{name}: resumed; taking new work again"),
        Reply::Resume(_) => format!("{name}: not draining; nothing to resume"),
        Reply::LogLevel(r) => match &r.previous {
            Some(previous) => format!("{name}: log filter is now `{}` (was `{}`)", clean(&r.filter), clean(previous)),
            None => format!("{name}: log filter is `{}`", clean(&r.filter)),
        },
        Reply::Describe(d) => describe(name, d),
        Reply::Call(value) => key_values(value),
        Reply::Said { text, .. } => format!("{name}: {text}"),
    }
}

/// `ctl counters`: one `name  value` line each, names aligned left and values right.
fn counters(name: &str, r: &CountersReply) -> String {
    if r.counters.is_empty() {
        return format!("{name}: no counters");
    }
    let names: Vec<Cow<str>> = r.counters.iter().map(|c| clean(&c.name)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let values: Vec<String> = r.counters.iter().map(|c| c.value.to_string()).collect();
    let value_width = values.iter().map(String::len).max().unwrap_or(0);
    names
        .iter()
        .zip(&values)
        .map(|(n, v)| format!("{n:width$}  {v:>value_width$}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ctl describe`: the built-ins, then the daemon's commands with their arguments.
fn describe(name: &str, d: &Description) -> String {
    let width = d
        .operations
        .iter()
        .map(|op| clean(&op.name).chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (kind, title) in [
        (
            OperationKind::Builtin,
            format!("{name}: operations (ctl OPERATION {name})"),
        ),
        (
            OperationKind::Command,
            format!("commands (ctl call {name} COMMAND [KEY=VALUE]...)"),
        ),
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
                for (arg, ty, required) in control_api::args::arguments(&op.args) {
                    let required = if required { "required" } else { "optional" };
                    out.push_str(&format!(
                        "\n  {:width$}    {}: {}, {required}",
                        "",
                        clean(&arg),
                        clean(&ty)
                    ));
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
    let width = map
        .keys()
        .map(|k| clean(k).chars().count())
        .max()
        .unwrap_or(0);
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

/// ANSI colours for a terminal, unless `NO_COLOR` is set (no-color.org).
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn for_stdout() -> Paint {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint(!no_color && std::io::stdout().is_terminal())
    }

    fn green(self, s: &str) -> String {
        self.code("32", s)
    }

    fn yellow(self, s: &str) -> String {
        self.code("33", s)
    }

    fn red(self, s: &str) -> String {
        self.code("31;1", s)
    }

    fn bold(self, s: &str) -> String {
        self.code("1", s)
    }

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
        paint.bold(&clean(&s.name)),
        clean(&s.version),
        s.pid,
        humantime::format_duration(Duration::from_secs(s.uptime_ms / 1000))
    );
    // Gathered first, so that every row aligns to the longest name.
    let mut rows: Vec<(Cow<str>, String)> = Vec::new();
    let mut row = |k: Cow<'static, str>, v: String| rows.push((k, v));
    row(
        "state".into(),
        format!(
            "{}, {} in flight",
            if s.draining {
                paint.yellow("draining")
            } else {
                paint.green("serving")
            },
            s.in_flight
        ),
    );
    row(
        "config".into(),
        format!("generation {}", s.config_generation),
    );
    let outcome = |ok: bool, finished_unix_ms: u64, message: &str| {
        let ago = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|now| now.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(finished_unix_ms);
        let ago = humantime::format_duration(Duration::from_secs(ago / 1000));
        let verdict = if ok {
            paint.green("ok")
        } else {
            paint.red("FAILED")
        };
        let mut v = format!("{verdict} {ago} ago");
        if !message.is_empty() {
            v.push_str(&format!(": {}", clean(message)));
        }
        v
    };
    if let Some(last) = &s.last_reload {
        row(
            "last reload".into(),
            outcome(last.ok, last.finished_unix_ms, &last.message),
        );
    }
    if let Some(last) = &s.last_rotate {
        let mut v = outcome(last.ok, last.finished_unix_ms, &last.message);
        if last.late {
            v.push_str(" (finished after its caller's deadline: the caller was not told)");
        }
        if last.sighup {
            v.push_str(" (for a SIGHUP)");
        }
        row("last rotate".into(), v);
        for f in last.files.iter().filter(|f| f.error.is_some()) {
            let error = f.error.as_deref().unwrap_or_default();
            row(
                "  not reopened".into(),
                format!(
                    "{}: {}",
                    control_api::text::escape_path(&f.path),
                    clean(error)
                ),
            );
        }
    }
    for f in &s.log_files {
        let mut v = control_api::text::escape_path(f);
        // A file the daemon still writes although its path names something else now.
        if let Some(r) = s.renamed_log_files.iter().find(|r| &r.path == f) {
            let now = match (&r.now_at, r.deleted) {
                (_, true) => "deleted".to_owned(),
                (Some(at), false) => format!("renamed to {}", control_api::text::escape_path(at)),
                (None, false) => "renamed".to_owned(),
            };
            v.push_str(&format!(
                " {}",
                paint.red(&format!(
                    "(NOT REOPENED: still writing to the file now {now}; `ctl rotate {}` \
                     reopens it)",
                    clean(&s.name)
                ))
            ));
        }
        row("log file".into(), v);
    }
    // The typed fields in the daemon's order; from an older daemon, its text fields.
    if s.values.is_empty() {
        for (k, v) in &s.fields {
            row(clean(k).into_owned().into(), clean(v).into_owned());
        }
    }
    for f in &s.values {
        row(
            clean(&f.name).into_owned().into(),
            clean(&f.value.to_string()).into_owned(),
        );
    }
    // A name longer than this is not worth pushing every value off the screen for.
    const MAX_WIDTH: usize = 40;
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_WIDTH);
    for (k, v) in rows {
        out.push_str(&format!("\n  {k:<width$} {v}"));
    }
    out
}

/// Text a daemon (or another user) supplied, fit for one row of human output: the one helper
/// for it, [`control_api::text::escape`]. Newlines (which would forge rows), control characters
/// (which drive a terminal), bidi overrides and invisible characters (which reorder or hide
/// text) are written as visible escapes, and a backslash doubled.
pub fn clean(text: &str) -> Cow<'_, str> {
    control_api::text::escape(text)
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

/// Shows a drain's in-flight count falling: a spinner on a terminal, a line per change
/// otherwise, nothing with `--quiet` or `--json`. On stderr: stdout carries only the result.
pub enum DrainProgress {
    Silent,
    Lines { name: String, last: Option<u64> },
    Bar(indicatif::ProgressBar),
}

impl DrainProgress {
    pub fn new(global: &Global, name: &str) -> Self {
        use std::io::IsTerminal;
        if global.quiet || global.json {
            DrainProgress::Silent
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("draining {}", clean(name)));
            bar.enable_steady_tick(Duration::from_millis(100));
            DrainProgress::Bar(bar)
        } else {
            DrainProgress::Lines {
                name: name.to_owned(),
                last: None,
            }
        }
    }

    pub fn update(&mut self, in_flight: u64) {
        match self {
            DrainProgress::Silent => {}
            DrainProgress::Lines { name, last } => {
                if *last != Some(in_flight) {
                    print_err(&format!("ctl: draining {name}: {in_flight} in flight"));
                    *last = Some(in_flight);
                }
            }
            DrainProgress::Bar(bar) => bar.set_message(format!("draining: {in_flight} in flight")),
        }
    }

    pub fn finish(&mut self) {
        if let DrainProgress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Writes a line of text to stdout. Callers clean daemon-supplied text before (only they know
/// which parts are ctl's own colours).
pub fn print_out(s: &str) -> Result<(), CtlError> {
    write_out(format!("{s}\n").as_bytes())
}

/// Writes one JSON document to stdout, as one line.
pub fn print_json(doc: &Value) -> Result<(), CtlError> {
    print_out(&escape_c1(doc.to_string()))
}

/// serde_json escapes C0 control characters but writes DEL and C1 ones (U+007F..U+009F) raw;
/// escaping them too keeps the document the same JSON and makes it safe to show on a terminal.
/// Outside strings a JSON document is ASCII without controls, so only string contents change.
fn escape_c1(json: String) -> String {
    if !json.contains(|c: char| c.is_control()) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes bytes to stdout and flushes them, so that a failure is seen here and not lost at
/// exit. A closed pipe is not an error: the reader has all it wanted (`ctl status | head -1`).
pub fn write_out(bytes: &[u8]) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CtlError::Output),
    }
}

/// Writes a line to stderr, escaped with [`clean`] as a whole: it carries daemon-supplied
/// error text and is one line, never with ctl's own colours or line breaks. A failure is
/// ignored: there is nowhere left to report it, and the exit code still tells.
pub fn print_err(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(s));
}

/// " (--missing-ok makes this exit 0)" for an error `--missing-ok` would have turned into
/// success: said where an operation on one target failed, not in `ctl list`, where the option
/// changes nothing.
fn missing_ok_hint(err: &CtlError) -> &'static str {
    if err.is_missing() && !matches!(err, CtlError::Op(_)) {
        " (--missing-ok makes this exit 0)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn daemon_text_is_escaped_to_stay_on_its_row() {
        assert_eq!(clean("plain text"), "plain text");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(clean("\x1b[2Jevil\x07"), "\\u{1b}[2Jevil\\u{7}");
        assert_eq!(clean("line 1\n\tline 2"), "line 1\\n\\tline 2");
        assert_eq!(clean("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
        assert_eq!(clean("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn json_output_escapes_c1_controls_and_stays_the_same_document() {
        let doc = json!({"message": "\x1b[2J \u{9b}31m \x7f é"});
        let text = escape_c1(doc.to_string());
        assert!(!text.contains(|c: char| c.is_control()), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
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
            uptime_ms: 0,
            config_generation: 1,
            last_reload: Some(control_api::ReloadOutcome {
                ok: false,
                generation: 1,
                message: evil.into(),
                finished_unix_ms: 0,
            }),
            draining: false,
            in_flight: 0,
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
                    old: None,
                    new: None,
                    bytes_to_old: 0,
                    error: Some(evil.into()),
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

    fn typed_status() -> Status {
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
        assert_eq!(
            names,
            [
                "state",
                "config",
                "zeta",
                "a_much_longer_field_name",
                "ratio",
                "ok",
                "negative",
                "message"
            ]
        );
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
        assert_eq!(values_json(&old), json!({"queue": "4"}));
    }

    #[test]
    fn status_json_has_native_values_in_the_daemons_order() {
        let hello = Hello::default();
        let doc = Reply::Status(typed_status()).to_json(&hello);
        let values = doc["values"].as_object().unwrap();
        let names: Vec<&str> = values.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "zeta",
                "a_much_longer_field_name",
                "ratio",
                "ok",
                "negative",
                "message"
            ]
        );
        assert_eq!(values["zeta"], json!(42));
        assert_eq!(
            values["a_much_longer_field_name"],
            json!({"ms": 1500, "human": "1.5s"})
        );
        assert_eq!(values["ratio"], json!(0.5));
        assert_eq!(values["ok"], json!(true));
        assert_eq!(values["negative"], json!(-3));
        assert_eq!(values["message"], json!("hi"));
        assert_eq!(native(&FieldValue::Float(f64::NAN)), Value::Null);
        assert_eq!(
            native(&FieldValue::Duration(Duration::from_micros(1500)))["ms"],
            json!(1.5)
        );
    }
}
