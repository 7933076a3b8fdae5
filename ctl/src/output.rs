//! What `ctl` prints: one line per result for people, one JSON document with `--json` built
//! from the typed replies, nothing but errors with `--quiet`. A closed stdout (`ctl status | head
//! -1`) is not an error.

use crate::cli::Global;
use crate::error::CtlError;
use control_api::{DrainReply, Hello, LogLevelReply, ReloadReply, RotateReply, Status};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A successful reply, of whichever operation was asked for.
pub enum Reply {
    Hello,
    Status(Status),
    Reload(ReloadReply),
    Rotate(RotateReply),
    Drain(DrainReply),
    LogLevel(LogLevelReply),
}

impl Reply {
    fn to_json(&self, hello: &Hello) -> Value {
        match self {
            Reply::Hello => to_value(hello),
            Reply::Status(r) => to_value(r),
            Reply::Reload(r) => to_value(r),
            Reply::Rotate(r) => to_value(r),
            Reply::Drain(r) => to_value(r),
            Reply::LogLevel(r) => to_value(r),
        }
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
    pub socket: Option<&'a Path>,
}

impl Output<'_> {
    fn envelope(&self, ok: bool, exit_code: u8) -> serde_json::Map<String, Value> {
        let mut doc = serde_json::Map::new();
        doc.insert("ok".into(), ok.into());
        doc.insert("exit_code".into(), exit_code.into());
        doc.insert("operation".into(), self.operation.into());
        doc.insert("target".into(), self.target.into());
        doc.insert(
            "socket".into(),
            self.socket
                .map_or(Value::Null, |p| p.display().to_string().into()),
        );
        doc
    }

    /// Prints a reply. `exit_code` is 0 unless the reply itself reports a failure (a drain
    /// that did not complete).
    pub fn reply(&self, hello: &Hello, reply: &Reply, exit_code: u8) {
        if self.global.json {
            if self.global.quiet && exit_code == 0 {
                return;
            }
            let mut doc = self.envelope(exit_code == 0, exit_code);
            doc.insert(
                "daemon".into(),
                json!({"name": hello.name, "version": hello.version, "pid": hello.pid, "protocol": hello.protocol}),
            );
            doc.insert("result".into(), reply.to_json(hello));
            print_out(&Value::Object(doc).to_string());
            return;
        }
        let text = human(hello, reply);
        if exit_code == 0 {
            if !self.global.quiet {
                print_out(&text);
            }
        } else {
            print_err(&format!("ctl: {text}"));
        }
    }

    /// Prints an error.
    pub fn error(&self, err: &CtlError) {
        let exit_code = err.exit().code();
        if self.global.json {
            let mut doc = self.envelope(false, exit_code);
            let detail = match err {
                CtlError::Op(op) => to_value(op),
                _ => Value::Null,
            };
            doc.insert(
                "error".into(),
                json!({"kind": err.kind(), "message": err.to_string(), "detail": detail}),
            );
            print_out(&Value::Object(doc).to_string());
        } else {
            print_err(&format!("ctl: {} {}: {err}", self.operation, self.target));
        }
    }

    /// Prints that there was nothing to do because no daemon is there (`--missing-ok`).
    pub fn skipped(&self, err: &CtlError) {
        if self.global.quiet {
            return;
        }
        if self.global.json {
            let mut doc = self.envelope(true, 0);
            doc.insert("skipped".into(), err.to_string().into());
            print_out(&Value::Object(doc).to_string());
        } else {
            let what = match err {
                CtlError::NoDaemon { path, why } => {
                    format!("no daemon at {}: {why}", path.display())
                }
                other => other.to_string(),
            };
            print_out(&format!("ctl: {what}; nothing to do (--missing-ok)"));
        }
    }
}

fn human(hello: &Hello, reply: &Reply) -> String {
    let name = &hello.name;
    match reply {
        Reply::Hello => format!(
            "{name} {} (pid {}), protocol {}; supports: {}",
            hello.version,
            hello.pid,
            hello.protocol,
            hello.operations.join(", ")
        ),
        Reply::Reload(r) => {
            let mut line = format!("{name}: reloaded; configuration generation {} is active", r.generation);
            if !r.summary.is_empty() {
                line.push_str(&format!(" ({})", r.summary));
            }
            if r.joined {
                line.push_str("; this request shared a reload another caller asked for");
            }
            line
        }
        Reply::Rotate(r) => {
            let mut out = format!(
                "{name}: reopened {} log file{}",
                r.files.len(),
                if r.files.len() == 1 { "" } else { "s" }
            );
            for f in &r.files {
                out.push_str(&format!("\n  {}: ", f.path.display()));
                match (&f.error, f.old, f.new) {
                    (Some(err), _, _) => out.push_str(&format!("NOT reopened, still writing to the old file: {err}")),
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
        Reply::Drain(r) => format!(
            "{name}: drain deadline passed with {} unit{} of work still in flight; it keeps draining",
            r.in_flight,
            if r.in_flight == 1 { "" } else { "s" }
        ),
        Reply::Status(s) => status(s),
        Reply::LogLevel(r) => match &r.previous {
            Some(previous) => format!("{name}: log filter is now `{}` (was `{previous}`)", r.filter),
            None => format!("{name}: log filter is `{}`", r.filter),
        },
    }
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

fn status(s: &Status) -> String {
    let paint = Paint::for_stdout();
    let mut out = format!(
        "{} {} (pid {}), up {}",
        paint.bold(&s.name),
        s.version,
        s.pid,
        humantime::format_duration(Duration::from_secs(s.uptime_ms / 1000))
    );
    let mut row = |k: &str, v: String| out.push_str(&format!("\n  {k:<14} {v}"));
    row(
        "state",
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
    row("config", format!("generation {}", s.config_generation));
    if let Some(last) = &s.last_reload {
        let ago = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|now| now.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(last.finished_unix_ms);
        let ago = humantime::format_duration(Duration::from_secs(ago / 1000));
        let verdict = if last.ok {
            paint.green("ok")
        } else {
            paint.red("FAILED")
        };
        let mut v = format!("{verdict} {ago} ago");
        if !last.message.is_empty() {
            v.push_str(&format!(": {}", last.message));
        }
        row("last reload", v);
    }
    for f in &s.log_files {
        row("log file", f.display().to_string());
    }
    for (k, v) in &s.fields {
        row(k, v.clone());
    }
    out
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
            bar.set_message(format!("draining {name}"));
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

/// Writes a line to stdout; a closed pipe is not an error worth reporting.
pub fn print_out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// Writes a line to stderr.
pub fn print_err(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
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
}
