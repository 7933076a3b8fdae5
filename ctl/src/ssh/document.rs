//! The remote `ctl`'s one `--json` document, read into what a local call gives: a typed reply
//! and who answered, or its failure with its code and kind. Whatever the host sends is checked
//! against the call: the operation asked, an exit code ctl gives and that ssh reported too, a
//! reply of the operation's type, the daemon of the name asked for. Anything else is
//! [`SshError::Protocol`] (exit 76), and nothing of it is shown but through the usual escaping.

use super::{Answer, Remote, SshError};
use crate::cli::Op;
use crate::error::{CtlError, KINDS};
use crate::exit::Exit;
use crate::output::{Daemon, ErrorDoc};
use control_api::{Hello, OpError};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

/// The envelope as `ctl --json` prints it (docs/operators.md, `--json`).
#[derive(Deserialize)]
struct Doc {
    ok: bool,
    exit_code: u8,
    operation: Option<String>,
    #[serde(default)]
    socket: Option<String>,
    #[serde(default)]
    daemon: Option<Daemon>,
    /// `call` only; absent and `null` read alike (not said).
    #[serde(default)]
    changed: Value,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorDoc>,
    #[serde(default)]
    skipped: Option<String>,
}

/// Reads what the remote printed (`stdout`) as it exited with `code`.
pub fn read(
    remote: &Remote,
    op: &Op,
    code: i32,
    stdout: &[u8],
    stderr: &str,
) -> (Option<PathBuf>, Result<Answer, CtlError>) {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        let what = format!(
            "the remote command exited {code} and printed no document ({})",
            super::error::last_words(stderr)
        );
        return (None, Err(broken(remote, what)));
    }
    let doc: Doc = match serde_json::from_slice(stdout) {
        Ok(doc) => doc,
        Err(e) => {
            let what = format!("what it printed is not one ctl --json document ({e})");
            return (None, Err(broken(remote, what)));
        }
    };
    let socket = doc.socket.as_ref().map(PathBuf::from);
    (socket, judge(remote, op, code, doc))
}

/// What `remote` sent is not what ctl sends: [`SshError::Protocol`].
fn broken(remote: &Remote, what: String) -> CtlError {
    SshError::Protocol {
        host: remote.host.clone(),
        what,
    }
    .into()
}

/// Judges the document against the call: its envelope, then the remote's failure or its answer.
fn judge(remote: &Remote, op: &Op, code: i32, mut doc: Doc) -> Result<Answer, CtlError> {
    let broken = |what: &str| broken(remote, what.into());
    let exit = envelope(remote, op, code, &doc)?;
    let (exit, kind, message, detail, missing) = match (doc.skipped.take(), doc.error.take()) {
        (Some(_), _) if exit != Exit::Ok => {
            return Err(broken("it skipped the operation, yet failed"))
        }
        (Some(skipped), _) => (Exit::NoDaemon, "no_daemon", skipped, Value::Null, true),
        (None, Some(_)) if exit == Exit::Ok => {
            return Err(broken("its document has an error, yet exit code 0"))
        }
        (None, Some(error)) => {
            // The daemon's typed error, when it reads as one; nothing else is passed on.
            let detail = serde_json::from_value::<OpError>(error.detail)
                .ok()
                .and_then(|op| serde_json::to_value(op).ok())
                .unwrap_or(Value::Null);
            let known = KINDS.iter().find(|k| **k == error.kind).copied();
            let kind = known.unwrap_or("unrecognized");
            (exit, kind, error.message, detail, false)
        }
        (None, None) => return answer(remote, op, exit, doc),
    };
    Err(SshError::Remote {
        exit,
        kind,
        message,
        detail,
        socket: doc.socket.map(PathBuf::from),
        missing,
    }
    .into())
}

/// What the document says of itself, checked against the call: an exit code ctl gives and
/// that ssh reported too, the operation asked, and `ok` as the code says. The exit it gives.
fn envelope(remote: &Remote, op: &Op, code: i32, doc: &Doc) -> Result<Exit, CtlError> {
    let broken = |what: String| broken(remote, what);
    if i32::from(doc.exit_code) != code {
        return Err(broken(format!(
            "its document says exit code {}, but it exited {code}",
            doc.exit_code
        )));
    }
    let exit = Exit::from_code(doc.exit_code)
        .ok_or_else(|| broken(format!("exit code {} is not one ctl gives", doc.exit_code)))?;
    // None: the remote ctl did not understand the command line (a usage error).
    match &doc.operation {
        Some(name) if name != op.name() => {
            return Err(broken(format!(
                "it answered a `{}` with a document of `{name}`",
                op.name()
            )))
        }
        None if doc.error.is_none() => {
            return Err(broken("its document names no operation".into()))
        }
        _ => {}
    }
    if doc.ok != (exit == Exit::Ok) {
        return Err(broken(format!(
            "its document says ok is {} with exit code {}",
            doc.ok, doc.exit_code
        )));
    }
    Ok(exit)
}

/// The answer of a document that neither failed nor skipped: its result, of the operation's
/// type, from the daemon of the name asked for, meaning the exit code it gave.
fn answer(remote: &Remote, op: &Op, exit: Exit, doc: Doc) -> Result<Answer, CtlError> {
    let broken = |what: String| broken(remote, what);
    let (Some(result), Some(daemon)) = (doc.result, doc.daemon) else {
        return Err(broken(
            "its document has neither a result with its daemon nor an error".into(),
        ));
    };
    let mut hello = Hello {
        protocol: daemon.protocol,
        name: daemon.name,
        version: daemon.version,
        pid: daemon.pid,
        operations: Vec::new(),
    };
    if matches!(op, Op::Hello(_)) {
        let full: Hello = serde_json::from_value(result.clone())
            .map_err(|e| broken(format!("its hello reply cannot be read: {e}")))?;
        if full.name != hello.name || full.pid != hello.pid {
            return Err(broken("its hello reply names another daemon".into()));
        }
        hello = full;
    }
    if hello.name != remote.name {
        return Err(CtlError::WrongDaemon {
            expected: remote.name.clone(),
            answered: hello.name,
            pid: hello.pid,
            path: doc.socket.map(PathBuf::from).unwrap_or_default(),
        });
    }
    let reply = op
        .reply_from_remote(result, &doc.changed)
        .map_err(|e| broken(format!("its `{}` reply cannot be read: {e}", op.name())))?;
    // The exit code the reply itself means, as for a local one.
    let means = reply.exit();
    if means != exit {
        return Err(broken(format!(
            "its reply means exit code {}, but it exited {}",
            means.code(),
            exit.code()
        )));
    }
    Ok(Answer { hello, reply })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::op;
    use crate::output::Reply;

    fn remote() -> Remote {
        Remote::from_target("ssh://h/demo", None).unwrap().unwrap()
    }

    fn read_doc(op: &Op, code: i32, doc: &str) -> Result<Answer, CtlError> {
        read(&remote(), op, code, doc.as_bytes(), "").1
    }

    const DAEMON: &str = r#""daemon": {"name": "demo", "version": "1", "pid": 7, "protocol": 1}"#;

    #[test]
    fn a_remote_reply_reads_as_the_local_one() {
        let status = op(&["ctl", "status", "ssh://h/demo"]);
        let doc = format!(
            r#"{{"ok": true, "exit_code": 0, "operation": "status", "target": "demo",
            "socket": "/run/ctl/demo.sock", {DAEMON}, "result": {{"name": "demo",
            "version": "1", "pid": 7, "uptime_ms": 5, "config_generation": 2,
            "last_reload": null, "draining": false, "in_flight": 0, "log_files": [],
            "fields": {{"q": "4", "t": "1.5s", "f": "NaN"}},
            "values": {{"t": {{"ms": 1.5, "human": "1.5ms"}}, "q": 4, "n": -2, "b": true,
            "s": "x", "f": null}}}}}}"#
        );
        let answer = read_doc(&status, 0, &doc).unwrap();
        let Reply::Status(s) = &answer.reply else {
            panic!("not a status")
        };
        assert_eq!(s.config_generation, 2);
        let names: Vec<_> = s.values.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["t", "q", "n", "b", "s", "f"], "the daemon's order");
        let shown: Vec<_> = s.values.iter().map(|f| f.value.to_string()).collect();
        assert_eq!(shown, ["1.5ms", "4", "-2", "true", "x", "NaN"]);
        // And back: the document a local status gives.
        let again = crate::output::status_json(s);
        assert_eq!(again["values"]["t"]["ms"], serde_json::json!(1.5));
        assert_eq!(answer.hello.pid, 7);
    }

    #[test]
    fn a_remote_failure_keeps_its_code_kind_and_typed_detail() {
        let reload = op(&["ctl", "reload", "ssh://h/demo"]);
        let doc = r#"{"ok": false, "exit_code": 77, "operation": "reload", "target": "demo",
            "socket": "/s", "error": {"kind": "denied", "message": "uid 1 may not reload",
            "detail": {"kind": "denied", "operation": "reload", "uid": 1, "needed": "operate"}}}"#;
        let err = read_doc(&reload, 77, doc).err().unwrap();
        assert_eq!(err.class(), (Exit::Denied, "denied"));
        let CtlError::Ssh(e) = &err else { panic!() };
        assert_eq!(e.detail()["uid"], 1);
        // A kind this ctl does not know.
        let doc = doc.replace(
            r#""kind": "denied", "message""#,
            r#""kind": "new_kind", "message""#,
        );
        let err = read_doc(&reload, 77, &doc).err().unwrap();
        assert_eq!(err.kind(), "unrecognized");
        // Skipped with --missing-ok: missing, so ctl says there was nothing to do.
        let doc = r#"{"ok": true, "exit_code": 0, "operation": "reload", "target": "demo",
            "socket": "/s", "skipped": "no daemon at /s"}"#;
        assert!(read_doc(&reload, 0, doc).err().unwrap().is_missing());
    }

    #[test]
    fn anything_else_is_a_protocol_error() {
        let status = op(&["ctl", "status", "ssh://h/demo"]);
        let hello_doc = format!(
            r#"{{"ok": true, "exit_code": 0, "operation": "hello", "target": "demo", {DAEMON},
            "result": {{"protocol": 1, "name": "demo", "version": "1", "pid": 7, "operations": []}}}}"#
        );
        for (code, doc) in [
            (0, "\x1b]0;owned\x07 garbage".to_owned()),
            (0, "{}".to_owned()),
            (0, "".to_owned()),
            (0, r#"{"ok": true, "exit_code": 0} {"ok": true}"#.to_owned()),
            // Another operation's reply.
            (0, hello_doc.clone()),
            // An exit code that differs from ssh's.
            (1, hello_doc.replace("\"hello\"", "\"status\"")),
            // A code ctl never gives.
            (
                9,
                r#"{"ok": false, "exit_code": 9, "operation": "status", "error": {"kind": "x", "message": "m"}}"#.to_owned(),
            ),
            // ok and the code disagree.
            (
                0,
                r#"{"ok": false, "exit_code": 0, "operation": "status", "error": {"kind": "x", "message": "m"}}"#.to_owned(),
            ),
            // A status reply that is not one.
            (
                0,
                format!(r#"{{"ok": true, "exit_code": 0, "operation": "status", {DAEMON}, "result": {{"pid": "x"}}}}"#),
            ),
        ] {
            let err = read_doc(&status, code, &doc).err().expect(&doc);
            assert_eq!(err.class(), (Exit::Protocol, "protocol"), "{doc}: {err}");
        }
        // Another daemon answering for the name.
        let doc = hello_doc.replace("\"demo\"", "\"other\"");
        let hello = op(&["ctl", "hello", "ssh://h/demo"]);
        let err = read_doc(&hello, 0, &doc).err().unwrap();
        assert_eq!(err.kind(), "wrong_daemon");
        assert!(read_doc(&hello, 0, &hello_doc).is_ok());
    }
}
