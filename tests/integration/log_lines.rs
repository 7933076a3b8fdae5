//! What another party can write into the daemon's log: a caller's command and argument names, a
//! `set-message` text. Each stays on the one line it is logged in, escaped, and a caller cannot
//! multiply the lines. A guard reads the sources for log macros that take a caller's string raw.

use crate::sandbox_with_daemon;
use std::path::Path;
use std::process::Command;
use tests::{bins, is_tracing_line, require_root, wait_for, Daemon, Sandbox, NOBODY, WAIT};

/// The date every forged line carries, as a `tracing` line starts.
const FORGED_AT: &str = "2026-01-01T00:00:00.000000Z";

/// A string that, logged raw, would put a whole forged line into the log.
fn forged(prefix: &str) -> String {
    format!("{prefix}\n{FORGED_AT}  INFO control_server::service: reload ok uid=0 FORGED")
}

/// Runs `hostile-client call SOCKET COMMAND ARGS` as `uid` (gid the same, no groups).
fn call_as(uid: u32, socket: &Path, command: &str, args: &str) {
    let run = tests::run(
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(&bins().hostile)
            .arg("call")
            .arg(socket)
            .args([command, args]),
    );
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("replied=1"), "{run}");
}

/// Fails if a line of `text` (from `what`) was forged: one that starts with the forged date, or
/// that is neither a `tracing` line nor a `seq=` line.
fn assert_no_forged_line(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.starts_with(FORGED_AT) && !line.contains("\u{202e}"),
            "a forged line in {what}: {line:?}\n{text}"
        );
        assert!(
            is_tracing_line(line) || line.starts_with("seq="),
            "a line of someone else's in {what}: {line:?}"
        );
    }
}

/// A daemon anyone can connect to, uid `reader` granted read access, every other uid refused.
fn open_daemon(name: &str, reader: u32) -> (Sandbox, Daemon) {
    let reader = reader.to_string();
    let args = ["--socket-mode", "666", "--allow-read-only-uid", &reader];
    let (sb, daemon) = sandbox_with_daemon(name, 50, &args);
    sb.open_to_other_users();
    (sb, daemon)
}

/// Sends one call as `uid`, waits for its refusal line, and checks that the line holds the
/// forged text escaped and that neither stderr nor the log file holds a forged line.
fn refused_call_forges_nothing(name: &str, uid: u32, command: &str, args: &str) {
    if !require_root() {
        return;
    }
    let (sb, daemon) = open_daemon(name, NOBODY - 1);
    call_as(uid, &daemon.socket, command, args);
    let stderr = wait_for("the refusal in the daemon's log", WAIT, || {
        let log = daemon.log();
        log.contains(" refused: ").then_some(log)
    });
    let escaped = format!("\\n{FORGED_AT}");
    let refusal = stderr.lines().find(|l| l.contains(" refused: ")).unwrap();
    assert!(refusal.contains(&escaped), "not escaped: {refusal:?}");
    assert_no_forged_line("stderr", &stderr);
    let file = std::fs::read_to_string(sb.path(&format!("{name}.log"))).unwrap();
    assert!(file.contains(&escaped), "the refusal is not in the file");
    assert_no_forged_line("the log file", &file);
    sb.ctl(&["status", name]).expect_code(0);
}

#[test]
fn a_refused_caller_cannot_forge_a_line_with_a_command_name() {
    let command = forged("flush");
    refused_call_forges_nothing("forgecmd", NOBODY, &command, "{}");
}

#[test]
fn a_reader_cannot_forge_a_line_with_an_unknown_command_name() {
    let command = forged("flush\u{202e}");
    refused_call_forges_nothing("forgeunknown", NOBODY - 1, &command, "{}");
}

#[test]
fn a_reader_cannot_forge_a_line_with_an_argument_name() {
    let args = serde_json::json!({ forged("colour"): 1 }).to_string();
    refused_call_forges_nothing("forgearg", NOBODY - 1, "stats", &args);
}

/// `set-message` with a newline: one line saying so, escaped, and the `seq=` lines carry the
/// text escaped too; a text over the limit is refused naming it; a caller calling it in a loop
/// gets one line per interval, not one per call.
#[test]
fn set_message_text_stays_on_its_line_and_its_length_and_rate_are_bounded() {
    let (sb, daemon) = sandbox_with_daemon("setforge", 20, &[]);
    let log = sb.path("setforge.log");
    let text = forged("hi");
    sb.ctl(&["call", "setforge", "set-message", &format!("text={text}")])
        .expect_code(0);
    let escaped = format!("hi\\n{FORGED_AT}");
    let file = wait_for("a seq line with the new message", WAIT, || {
        let file = std::fs::read_to_string(&log).unwrap_or_default();
        let end = file.rfind('\n').map_or(0, |nl| nl + 1);
        let file = file[..end].to_owned();
        file.lines()
            .any(|l| l.starts_with("seq=") && l.contains(&format!(" message={escaped} ")))
            .then_some(file)
    });
    assert_no_forged_line("the log file", &file);
    let set: Vec<&str> = file
        .lines()
        .filter(|l| l.contains("message set to"))
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].contains(&escaped), "{set:?}");
    assert_no_forged_line("stderr", &daemon.log());

    let long = "x".repeat(demo_daemon::MAX_MESSAGE_LEN + 1);
    let run = sb
        .ctl(&["call", "setforge", "set-message", &format!("text={long}")])
        .expect_code(2);
    assert!(
        run.stderr
            .contains(&format!("{}-byte limit", demo_daemon::MAX_MESSAGE_LEN)),
        "{run}"
    );

    // Twenty more calls in a row: the one line above stands for them within its interval
    // (10 s); a slow machine may cross into the next, which logs one more.
    for n in 0..20 {
        sb.ctl(&["call", "setforge", "set-message", &format!("text=n{n}")])
            .expect_code(0);
    }
    sb.ctl(&["call", "setforge", "set-message", "text=last"])
        .expect_code(0);
    wait_for("the last message in a seq line", WAIT, || {
        let file = std::fs::read_to_string(&log).unwrap_or_default();
        file.contains("message=last\n").then_some(())
    });
    let file = std::fs::read_to_string(&log).unwrap();
    let set = file
        .lines()
        .filter(|l| l.contains("message set to"))
        .count();
    assert!(set <= 3, "{set} lines for 22 calls:\n{file}");
}

/// The log macros of the daemon's sources, each with what it interpolates.
///
/// What it catches: a `tracing` macro (`trace!` to `error!`, with or without `tracing::`) one
/// of whose values (an inline `{name}` or `{name:?}` in its format string, a positional
/// argument, or a `field = %value` / `?value`) is neither wrapped in `Escaped(..)`,
/// `escape(..)` or `escape_path(..)` nor on the allow list below: a name for a number, a
/// duration, a static name, or a string only root or the daemon chose. A new log line with a
/// caller's string in it then fails here until it escapes the string (or, if the string is
/// not someone else's, until the allow list says why).
///
/// What it misses: a string passed through a helper under another name, a macro built by
/// another macro. It is a guard against the common mistake, not a proof.
fn interpolations(source: &str) -> Vec<(usize, String)> {
    const MACROS: [&str; 5] = ["trace!(", "debug!(", "info!(", "warn!(", "error!("];
    let mut found = Vec::new();
    let mut at = 0;
    while let Some((start, len)) = MACROS
        .iter()
        .filter_map(|m| source[at..].find(m).map(|i| (at + i, m.len())))
        .min()
    {
        let line = source[..start].matches('\n').count() + 1;
        // Skip `info_span!(` and friends, comments, and the guard's own strings.
        let before = &source[source[..start].rfind('\n').map_or(0, |n| n + 1)..start];
        at = start + len;
        if before.trim_start().starts_with("//") || before.ends_with('"') {
            continue;
        }
        if start > 0 && source.as_bytes()[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let Some(body) = macro_body(&source[at..]) else {
            continue;
        };
        for value in values(body) {
            found.push((line, value));
        }
    }
    found
}

/// The text up to the macro's closing parenthesis.
fn macro_body(rest: &str) -> Option<&str> {
    let (mut depth, mut in_str, mut escaped) = (1, false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits a macro's arguments at top-level commas.
fn arguments(body: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut in_str, mut escaped) = (0, false, false);
    for c in body.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '(' | '[' | '{' if !in_str => depth += 1,
            ')' | ']' | '}' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_owned());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// What a macro interpolates, unescaped: inline names of its format string, its positional
/// arguments and its `%` / `?` fields.
fn values(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let escaped = |v: &str| {
        ["Escaped(", "escape(", "escape_path(", "control_api::text::"]
            .iter()
            .any(|e| v.contains(e))
    };
    for arg in arguments(body) {
        if arg.starts_with("parent:") {
            continue;
        }
        if arg.starts_with('"') {
            // Inline `{name}` / `{name:?}` in the format string.
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                rest = &rest[open + 1..];
                if rest.starts_with('{') {
                    rest = &rest[1..];
                    continue;
                }
                let close = rest.find('}').unwrap_or(rest.len());
                let name = rest[..close].split(':').next().unwrap_or("").trim();
                if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
                    out.push(name.to_owned());
                }
                rest = &rest[close..];
            }
            continue;
        }
        let value = match arg.split_once('=') {
            Some((key, value)) if !key.contains('(') && !value.starts_with('=') => value.trim(),
            _ => arg.as_str(),
        };
        let value = value.trim_start_matches(['%', '?']).trim();
        if !escaped(value) && !value.is_empty() {
            out.push(value.to_owned());
        }
    }
    out
}

/// Values that are never someone else's string: numbers, durations, names from the code, and
/// strings only root or the daemon chose. Each entry: the file (its path's end; `*` for any),
/// the value as written (a trailing `*`: any value it starts), and why it is safe there.
const ALLOWED: &[(&str, &str, &str)] = &[
    // The SIGHUP bridge's warning: what it did, in the library's own words.
    (
        "signals.rs",
        "done",
        "the library's own words for what a SIGHUP did",
    ),
    ("signals.rs", "then", "the library's own words"),
    (
        "signals.rs",
        "instead",
        "the library's words around the daemon's validated name",
    ),
    // The lost-rotate error: each piece escaped (text::escape, escape_path) where it is made.
    ("ops/renamed.rs", "path", "escaped where it is made"),
    ("ops/renamed.rs", "now", "escaped where it is made"),
    ("ops/renamed.rs", "name", "escaped where it is made"),
    // Numbers, counts, durations, ids: whatever file.
    ("*", "us", "microseconds"),
    ("*", "uid", "a uid from the kernel"),
    ("*", "conn", "a connection number"),
    ("*", "victim", "a connection number"),
    ("*", "n", "a count"),
    ("*", "seq", "a sequence number"),
    ("*", "job", "a job number"),
    ("*", "full", "a byte count"),
    ("*", "limit", "a byte count"),
    ("*", "wait", "a duration"),
    ("*", "backoff", "a duration"),
    ("*", "suppressed", "a count"),
    ("*", "waiting", "a count"),
    ("*", "self.max", "a configured number"),
    ("*", "self.idle_timeout", "a configured duration"),
    ("*", "limits.stop_grace", "a configured duration"),
    ("*", "serving.shutdown_grace", "a configured duration"),
    (
        "server.rs",
        "bound",
        "a duration: what is left of the shutdown grace",
    ),
    ("*", "buffer.limit", "a configured byte count"),
    ("*", "INTERVAL.as_secs()", "a constant"),
    ("*", "self.what", "a static description"),
    ("*", "peer.uid", "a uid from the kernel"),
    (
        "*",
        "peer.pid.map_or(-1,i64::from)",
        "a pid from the kernel",
    ),
    (
        "ops/describe.rs",
        "req.client",
        "a number the caller sent, formatted as one",
    ),
    (
        "ops/describe.rs",
        "req.protocol",
        "a number the caller sent, formatted as one",
    ),
    // Names from the code.
    (
        "service.rs",
        "registered",
        "the operation's registered name, checked at registration",
    ),
    (
        "signals.rs",
        "name",
        "the daemon's own name, chosen by root",
    ),
    // Errors and values that only the OS, root or the daemon chose.
    ("listener.rs", "err", "an OS error"),
    ("listener.rs", "chain(&err)", "an OS error chain"),
    ("server.rs", "err", "an OS error"),
    ("server.rs", "listener::chain(&err)", "an OS error chain"),
    ("server/builder.rs", "err", "an OS error"),
    ("listener/watch.rs", "err", "an OS error"),
    (
        "listener/lock.rs",
        "lock_holder(&file)",
        "a pid from the daemon's own lock file",
    ),
    (
        "listener/lock.rs",
        "path.display()",
        "the daemon's lock path",
    ),
    (
        "listener/lock.rs",
        "socket.display()",
        "the socket path root configured",
    ),
    (
        "listener/watch.rs",
        "dir.display()",
        "the socket directory root configured",
    ),
    (
        "signals.rs",
        "err",
        "the reload's own error, from root's configuration",
    ),
    ("notify.rs", "err", "an OS error"),
    (
        "audit/syslog.rs",
        "err",
        "an OS error (making or sending on a datagram socket)",
    ),
    (
        "notify.rs",
        "message",
        "a systemd notification the daemon composed",
    ),
    (
        "log_file/mod.rs",
        "not.kind",
        "a reopen's open error: OS text and static messages",
    ),
    ("log_file/watch.rs", "err", "an inotify error"),
    ("log_file/buffer.rs", "err", "an OS write error"),
    ("demo-daemon/src/daemon.rs", "err", "an OS error"),
    (
        "ops/log_level.rs",
        "previous",
        "the log filter, formatted with {:?} (escaped by Debug)",
    ),
    (
        "ops/log_level.rs",
        "filter",
        "the log filter, formatted with {:?} (escaped by Debug)",
    ),
    (
        "demo-daemon/src/reload.rs",
        "new.changes_from(old)",
        "root's configuration, {:?}-formatted",
    ),
    // Paths root configured (the socket's, the daemon's own files).
    (
        "listener.rs",
        "self.path.display()",
        "the socket path root configured",
    ),
    (
        "listener.rs",
        "lock.path.display()",
        "the daemon's lock path",
    ),
    ("listener.rs", "path.display()", "the daemon's lock path"),
    (
        "server.rs",
        "socket.path().display()",
        "the socket path root configured",
    ),
    (
        "server.rs",
        "self.path().display()",
        "the socket path root configured",
    ),
    (
        "server.rs",
        "path.display()",
        "the socket path root configured",
    ),
    (
        "demo-daemon/src/reload.rs",
        "path.display()",
        "a test gate path root configured",
    ),
    (
        "demo-daemon/src/reload.rs",
        "gate.path().display()",
        "a test gate path root configured",
    ),
    ("accept.rs", "if made_room {*", "a static choice of words"),
    ("accept.rs", "full.max", "a configured number"),
    ("accept.rs", "full.top_count", "a count"),
    ("accept.rs", "full.top_uid", "a uid from the kernel"),
    ("accept.rs", "standing.describe()", "a static description"),
    ("accept.rs", "err", "an OS error"),
    ("accept.rs", "self.backoff", "a duration"),
    (
        "server.rs",
        "grace",
        "a duration: the configured shutdown grace",
    ),
    (
        "server.rs",
        "line",
        "the server's own error and its OS error chain (`run` fails only in registering)",
    ),
    ("server.rs", "tasks.len()", "a count"),
    ("server.rs", "shared.work.len()", "a count"),
    ("service.rs", "micros(started)", "microseconds"),
    ("signals.rs", "reply.generation", "a number"),
    (
        "signals.rs",
        "reply.summary",
        "the reload's summary, from root's configuration",
    ),
    ("ops/drain.rs", "reply.in_flight", "a count"),
];

#[test]
fn no_log_macro_takes_a_callers_string_unescaped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["control-server/src", "demo-daemon/src"] {
        let mut stack = vec![root.join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
    }
    assert!(
        files.len() > 20,
        "sources not found under {}",
        root.display()
    );
    let mut unescaped = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        // Unit tests log what they like.
        let source = source.split("#[cfg(test)]").next().unwrap();
        for (line, value) in interpolations(source) {
            let value = value.replace(char::is_whitespace, "");
            let allowed = ALLOWED.iter().any(|(in_file, ok, _)| {
                let ok = ok.replace(char::is_whitespace, "");
                (*in_file == "*" || file.ends_with(in_file))
                    && match ok.strip_suffix('*') {
                        Some(start) => value.starts_with(start),
                        None => ok == value,
                    }
            });
            if !allowed {
                unescaped.push(format!("{}:{line}: {value}", file.display()));
            }
        }
    }
    assert!(
        unescaped.is_empty(),
        "log macros with values neither escaped (control_api::text::Escaped, escape, \
         escape_path) nor on the allow list:\n{}",
        unescaped.join("\n")
    );
}

/// The guard itself: it flags a raw caller string and passes an escaped one.
#[test]
fn the_log_macro_guard_tells_raw_from_escaped() {
    let raw =
        r#"tracing::warn!(parent: &self.span, us, "{name} refused: {err}", text = %req.text);"#;
    let got: Vec<String> = interpolations(raw).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, ["us", "name", "err", "req.text"]);
    let ok = r#"tracing::info!(path = %escape_path(&p), "set to {}", Escaped(&req.text));"#;
    assert!(interpolations(ok).is_empty(), "{:?}", interpolations(ok));
}
