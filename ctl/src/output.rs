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
use crate::exit::Exit;
use crate::human::{human, Paint};
use control_api::field::format_duration;
use control_api::{
    CallReply, CheckReply, CountersReply, Description, DrainReply, FieldValue, Hello, HistoryReply,
    LogLevelReply, ReloadReply, ResumeReply, RotateReply, Status,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// A successful reply, of whichever operation was asked for.
// Untagged: each as the reply it holds, which is its `--json` result but for those `to_json`
// shows its own way (hello, a status, a call, a line said).
#[derive(Serialize)]
#[serde(untagged)]
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
    /// A daemon command's reply, as the daemon sent it, and whether it said the call changed
    /// anything.
    Call(CallReply),
    History(HistoryReply),
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
#[derive(Default, Serialize)]
struct Envelope<'a> {
    ok: bool,
    exit_code: u8,
    /// `None` for a command line that was not understood.
    operation: Option<&'a str>,
    target: Option<&'a str>,
    socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon: Option<Daemon>,
    /// `call` only: whether the daemon said the command changed anything (`null`: it did not
    /// say).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<Option<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc>,
    /// `--missing-ok` found no daemon: what was not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

/// Who answered (as another host's ctl says it, too).
#[derive(Serialize, Deserialize)]
pub struct Daemon {
    pub name: String,
    pub version: String,
    pub pid: u32,
    pub protocol: u32,
}

/// Why the operation failed: `kind` is one of the documented error kinds (as another host's
/// ctl says it, any kind).
#[derive(Serialize, Deserialize)]
pub struct ErrorDoc {
    pub kind: Cow<'static, str>,
    pub message: String,
    /// The daemon's own error ([`OpError`](control_api::OpError)), when it gave one.
    #[serde(default)]
    pub detail: Value,
}

impl Reply {
    /// The exit code the reply itself means: 1 for a drain that did not complete (past its
    /// deadline, or undone by a resume), else 0.
    pub fn exit(&self) -> Exit {
        match self {
            Reply::Drain(d) if !d.completed => Exit::Failed,
            _ => Exit::Ok,
        }
    }

    fn to_json(&self, hello: &Hello) -> Value {
        match self {
            Reply::Hello => to_value(hello),
            Reply::Status(r) => status_json(r),
            Reply::Call(r) => r.reply.clone(),
            Reply::Said { doc, .. } => doc.clone(),
            other => to_value(other),
        }
    }
}

/// A status as `--json` shows it, in `ctl status` and `ctl list` alike: the wire's list of typed
/// fields becomes one object, in the daemon's order.
pub fn status_json(status: &Status) -> Value {
    let mut doc = to_value(status);
    doc["values"] = values_json(status);
    doc
}

/// The inverse of [`status_json`], for a status another host's `ctl --json` printed: its
/// `values` object back into the wire's typed fields, in its order. A value that is `null`
/// there (a NaN, a type that ctl did not know) becomes the field's text from `fields`.
pub fn status_from_json(mut doc: Value) -> Result<Status, serde_json::Error> {
    let texts = doc.get("fields").cloned().unwrap_or(Value::Null);
    if let Some(Value::Object(values)) = doc.get_mut("values").map(Value::take) {
        let wire = values
            .into_iter()
            .map(|(name, value)| {
                let text = texts.get(&name).and_then(Value::as_str).unwrap_or_default();
                let (kind, value) = match value {
                    Value::Bool(b) => ("bool", b.into()),
                    Value::Number(n) if n.is_u64() => ("unsigned", n.into()),
                    Value::Number(n) if n.is_i64() => ("integer", n.into()),
                    Value::Number(n) => ("float", n.into()),
                    Value::String(s) => ("string", s.into()),
                    Value::Object(d) if d.get("ms").is_some_and(Value::is_number) => {
                        let ms = d["ms"].as_f64().unwrap_or_default().max(0.0);
                        let nanos = (ms * 1e6).round() as u128;
                        let secs = (nanos / 1_000_000_000) as u64;
                        let sub = (nanos % 1_000_000_000) as u32;
                        ("duration", json!({"secs": secs, "nanos": sub}))
                    }
                    _ => ("string", text.into()),
                };
                json!({"name": name, "type": kind, "value": value})
            })
            .collect();
        doc["values"] = Value::Array(wire);
    }
    serde_json::from_value(doc)
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

impl<'a> Output<'a> {
    /// Output for `operation` on `target`, at no socket yet.
    pub fn new(global: &'a Global, operation: &'a str, target: &'a str) -> Self {
        Output {
            global,
            operation,
            target,
            socket: None,
        }
    }

    fn envelope(&self, ok: bool, exit_code: u8) -> Envelope<'_> {
        Envelope {
            ok,
            exit_code,
            operation: Some(self.operation),
            target: Some(self.target),
            socket: self.socket.as_ref().map(|p| p.display().to_string()),
            ..Envelope::default()
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
                    name: hello.name.clone(),
                    version: hello.version.clone(),
                    pid: hello.pid,
                    protocol: hello.protocol,
                }),
                changed: match reply {
                    Reply::Call(r) => Some(r.changed),
                    _ => None,
                },
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
                CtlError::Ssh(e) => e.detail(),
                _ => Value::Null,
            };
            let doc = Envelope {
                error: Some(ErrorDoc {
                    kind: err.kind().into(),
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

    /// Prints the result of an operation that asks no daemon (`ctl signal`, `ctl doctor`): `doc`
    /// in the envelope's `result`, or `text` for people. `exit_code` is 0 unless the result is
    /// itself a failure (`ctl doctor` finding a line that would kill): then `ok` is false and
    /// `exit_code` in the envelope; with `--quiet`, the text still goes to stderr.
    pub fn said(&self, doc: Value, text: &str, exit_code: u8) -> Result<(), CtlError> {
        if self.global.quiet && (exit_code == 0 || !self.global.json) {
            if exit_code != 0 {
                // Already escaped line by line: written as it is.
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
            return Ok(());
        }
        if self.global.json {
            let doc = Envelope {
                result: Some(doc),
                ..self.envelope(exit_code == 0, exit_code)
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

/// Text a daemon (or another user) supplied, fit for one row of human output: the one helper
/// for it, [`control_api::text::escape`]. Newlines (which would forge rows), control characters
/// (which drive a terminal), bidi overrides and invisible characters (which reorder or hide
/// text) are written as visible escapes, and a backslash doubled.
pub use control_api::text::escape as clean;

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

/// A command line that was not understood, under `--json` (wherever it was given): one document
/// like every other failure's, of the kind `usage`, with clap's message; exit 2.
pub fn usage_json(err: &clap::Error) -> Result<(), CtlError> {
    let rendered = err.render().to_string();
    // clap's first paragraph is the error; the usage line and the `--help` hint follow.
    let message = rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("error: ");
    let doc = Envelope {
        ok: false,
        exit_code: Exit::Usage.code(),
        error: Some(ErrorDoc {
            kind: "usage".into(),
            message: message.to_owned(),
            detail: Value::Null,
        }),
        ..Envelope::default()
    };
    print_json(&to_value(&doc))
}

/// Writes a line of text to stdout. Callers clean daemon-supplied text before (only they know
/// which parts are ctl's own colours).
pub fn print_out(s: &str) -> Result<(), CtlError> {
    write_out(format!("{s}\n").as_bytes())
}

/// Writes one JSON document to stdout, as one line.
pub fn print_json(doc: &Value) -> Result<(), CtlError> {
    print_out(&json_line(doc))
}

/// One JSON document as [`print_json`] writes it, without its newline.
pub fn json_line(doc: &Value) -> String {
    escape_c1(doc.to_string())
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

    #[test]
    fn status_json_from_an_older_daemon_has_its_text_fields() {
        let old = Status {
            fields: [("queue".to_owned(), "4".to_owned())].into(),
            ..Status::default()
        };
        assert_eq!(values_json(&old), json!({"queue": "4"}));
    }

    #[test]
    fn status_json_has_native_values_in_the_daemons_order() {
        let hello = Hello::default();
        let doc = Reply::Status(crate::human::tests::typed_status()).to_json(&hello);
        let values = doc["values"].as_object().unwrap();
        let names: Vec<&str> = values.keys().map(String::as_str).collect();
        assert_eq!(names, crate::human::tests::TYPED_NAMES);
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
