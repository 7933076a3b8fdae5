//! What can go wrong in `ctl signal`, each mapped to its exit code and `--json` kind.

use super::names::{Refusal, Sig};
use super::reopen::Unreopened;
use crate::exit::Exit;
use crate::pidfile::PidFileError;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// One process `ctl signal` looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Who {
    pub pid: i32,
    /// Its `/proc/PID/comm`, anyone's choice: escaped where people read it.
    pub name: String,
    /// Its real uid.
    pub uid: u32,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.name)
    }
}

/// A failed `ctl signal`.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The pid file is missing, untrusted, malformed or unreadable.
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    /// The pid file names a process that is gone.
    #[error("the pid file {} names pid {pid}, which is not running: the daemon died, or was \
             stopped without removing it; nothing was sent; --missing-ok does not hide a stale \
             pid file", .path.display())]
    Stale { path: PathBuf, pid: i32 },
    /// With `--name` too: the pid file's pid is another process's now.
    #[error("the pid file {} names pid {pid}, which is now {now:?}, not {name:?}: the daemon \
             died and its pid went to another process; nothing was sent; --missing-ok does not \
             hide a stale pid file", .path.display())]
    Reused {
        path: PathBuf,
        pid: i32,
        name: String,
        now: String,
    },
    /// No process has the name.
    #[error("no process named {name:?} (as /proc/PID/comm has it){}; nothing was sent",
             left_out_text(.left_out))]
    NoProcess {
        name: String,
        /// Processes of that name that login users run, which `--name` never signals.
        left_out: Vec<(i32, u32)>,
    },
    /// More processes have the name than `--name` signals at once.
    #[error(
        "{count} processes are named {name:?}, more than the {} ctl signal --name judges; \
             nothing was sent: name the daemon by its pid file (--pidfile FILE --name {name:?})",
        super::MAX_NAMED
    )]
    TooMany { name: String, count: usize },
    /// Judging the processes of the name took past `--timeout`.
    #[error(
        "judging the {of} processes named {name:?} took longer than --timeout ({judged} \
             judged); nothing was sent: name the daemon by its pid file (--pidfile FILE --name \
             {name:?})"
    )]
    Unjudged {
        name: String,
        judged: usize,
        of: usize,
    },
    /// The name cannot match: the kernel keeps 15 bytes of a process name.
    #[error("{name:?} is {len} bytes, and the kernel keeps only the first 15 of a process's \
             name (/proc/PID/comm): it can match no process; give --name {short:?}, as the \
             process's name shows there", len = .name.len())]
    NameTooLong { name: String, short: String },
    /// Some process does not handle the signal: none was signalled.
    #[error("{} not sent: {}{}; fix the daemon's handler or the command that sends it, or give \
             --force to send it anyway", .sig, refusals(.sig, .refused),
             none_of(.refused.len(), *.of))]
    NotSent {
        sig: Sig,
        refused: Vec<(Who, Refusal)>,
        /// How many processes were to be signalled.
        of: usize,
    },
    /// A process exited after the signal.
    #[error("{} sent, and {} exited after it: the signal killed it{}", .sig, list(.dead),
            if *.forced { " (sent with --force)" } else { "; its handler crashed or exited" })]
    Killed {
        sig: Sig,
        dead: Vec<Who>,
        forced: bool,
    },
    /// `--verify-reopen` found an old file still open at the deadline.
    #[error("{sig} sent, but after waiting {}: {unreopened}",
            humantime::format_duration(*.waited))]
    NotReopened {
        sig: Sig,
        waited: std::time::Duration,
        unreopened: Unreopened,
    },
    /// Reading the process, or signalling it, is not permitted.
    #[error("permission denied to {what} {who}: {source}; run as its user or root{}",
            if *.sent { " (the signal was sent)" } else { "; nothing was sent" })]
    Denied {
        who: Who,
        what: &'static str,
        sent: bool,
        #[source]
        source: io::Error,
    },
    /// The process exited between its check and the signal.
    #[error("{who} exited before the signal could be sent; nothing was sent to it")]
    Gone { who: Who },
    /// Anything else the system refused.
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl SignalError {
    /// One error of each kind, for the test that every `--json` kind is documented.
    #[cfg(test)]
    pub(crate) fn samples() -> Vec<SignalError> {
        use crate::pidfile::Distrust;
        let path = PathBuf::from("/run/x.pid");
        let sig = super::names::parse("HUP").unwrap();
        let who = Who {
            pid: 1,
            name: "x".into(),
            uid: 0,
        };
        let denied = || io::Error::from(io::ErrorKind::PermissionDenied);
        vec![
            SignalError::PidFile(PidFileError::Missing { path: path.clone() }),
            SignalError::PidFile(PidFileError::Untrusted {
                path: path.clone(),
                why: Distrust::NotRegular { at: path.clone() },
            }),
            SignalError::PidFile(PidFileError::Malformed {
                path: path.clone(),
                why: "empty".into(),
            }),
            SignalError::PidFile(PidFileError::Unreadable {
                path: path.clone(),
                source: denied(),
            }),
            SignalError::PidFile(PidFileError::Unreadable {
                path: path.clone(),
                source: io::Error::other("x"),
            }),
            SignalError::Stale {
                path: path.clone(),
                pid: 1,
            },
            SignalError::Reused {
                path,
                pid: 1,
                name: "x".into(),
                now: "y".into(),
            },
            SignalError::NoProcess {
                name: "x".into(),
                left_out: vec![(7, 1000)],
            },
            SignalError::NameTooLong {
                name: "x".repeat(16),
                short: "x".repeat(15),
            },
            SignalError::TooMany {
                name: "x".into(),
                count: 2000,
            },
            SignalError::Unjudged {
                name: "x".into(),
                judged: 3,
                of: 9,
            },
            SignalError::NotSent {
                sig,
                refused: Vec::new(),
                of: 1,
            },
            SignalError::Killed {
                sig,
                dead: vec![who.clone()],
                forced: false,
            },
            SignalError::NotReopened {
                sig,
                waited: std::time::Duration::from_secs(1),
                unreopened: Unreopened { logs: Vec::new() },
            },
            SignalError::Denied {
                who: who.clone(),
                what: "read",
                sent: false,
                source: denied(),
            },
            SignalError::Gone { who },
            SignalError::Os {
                what: "x".into(),
                source: io::Error::other("x"),
            },
        ]
    }

    /// The exit code and the `--json` kind.
    pub fn class(&self) -> (Exit, &'static str) {
        match self {
            SignalError::PidFile(e) => match e {
                PidFileError::Missing { .. } => (Exit::NoDaemon, "no_daemon"),
                PidFileError::Untrusted { .. } => (Exit::Denied, "untrusted"),
                PidFileError::Malformed { .. } => (Exit::Failed, "bad_pid_file"),
                PidFileError::Unreadable { source, .. }
                    if source.kind() == io::ErrorKind::PermissionDenied =>
                {
                    (Exit::Denied, "denied")
                }
                PidFileError::Unreadable { .. } => (Exit::Failed, "failed"),
            },
            SignalError::Stale { .. } | SignalError::Reused { .. } | SignalError::Gone { .. } => {
                (Exit::NoDaemon, "died")
            }
            SignalError::NoProcess { .. } => (Exit::NoDaemon, "no_process"),
            SignalError::NameTooLong { .. } => (Exit::Usage, "usage"),
            SignalError::TooMany { .. } => (Exit::Failed, "too_many"),
            SignalError::Unjudged { .. } => (Exit::Timeout, "timeout"),
            SignalError::NotSent { .. } => (Exit::Failed, "not_sent"),
            SignalError::Killed { .. } => (Exit::Failed, "killed"),
            SignalError::NotReopened { .. } => (Exit::Failed, "not_reopened"),
            SignalError::Denied { .. } => (Exit::Denied, "denied"),
            SignalError::Os { .. } => (Exit::Failed, "failed"),
        }
    }

    /// Whether `--missing-ok` makes it exit 0: no pid file (the daemon was stopped), or no
    /// process of that name. Not a stale pid file: that daemon died.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            SignalError::PidFile(PidFileError::Missing { .. }) | SignalError::NoProcess { .. }
        )
    }

    /// The `detail` of the `--json` error: the processes concerned.
    pub fn detail(&self) -> Value {
        match self {
            SignalError::NotSent { sig, refused, .. } => json!({
                "signal": sig.to_string(),
                "processes": refused.iter().map(|(who, why)| json!({
                    "pid": who.pid, "name": who.name, "uid": who.uid, "refusal": why,
                })).collect::<Vec<_>>(),
            }),
            SignalError::Killed { sig, dead, .. } => json!({
                "signal": sig.to_string(), "processes": dead,
            }),
            SignalError::NotReopened {
                sig, unreopened, ..
            } => {
                let mut doc = serde_json::to_value(unreopened).unwrap_or(Value::Null);
                doc["signal"] = sig.to_string().into();
                doc
            }
            SignalError::Denied { who, .. } | SignalError::Gone { who } => {
                json!({ "processes": [who] })
            }
            _ => Value::Null,
        }
    }
}

fn refusals(sig: &Sig, refused: &[(Who, Refusal)]) -> String {
    bounded(
        refused
            .iter()
            .map(|(who, why)| format!("{who}: {}", why.text(sig))),
        "; ",
    )
}

fn left_out_text(left_out: &[(i32, u32)]) -> String {
    if left_out.is_empty() {
        return String::new();
    }
    let each = left_out
        .iter()
        .map(|(pid, uid)| format!("pid {pid} of uid {uid}"));
    format!(
        " but login users' ({}), which --name never signals: anyone can name a process so",
        bounded(each, ", ")
    )
}

/// The most processes a message names; `--json`'s detail names them all.
const NAMED: usize = 8;

/// The first [`NAMED`] of `each` joined by `sep`, and how many more there are: a message about
/// a thousand processes (another user's, perhaps) stays a line.
fn bounded(each: impl ExactSizeIterator<Item = String>, sep: &str) -> String {
    let more = each.len().saturating_sub(NAMED);
    let mut text = each.take(NAMED).collect::<Vec<_>>().join(sep);
    if more > 0 {
        text.push_str(&format!("{sep}and {more} more"));
    }
    text
}

fn none_of(refused: usize, of: usize) -> String {
    match of {
        0 | 1 => String::new(),
        _ if refused == of => format!(" (all {of} processes; none was signalled)"),
        _ => format!(
            " ({refused} of the {of} processes; none was signalled, not even those that handle it)"
        ),
    }
}

fn list(who: &[Who]) -> String {
    bounded(who.iter().map(Who::to_string), ", ")
}
