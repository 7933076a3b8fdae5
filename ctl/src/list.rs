//! `ctl list`: a health check of every daemon with a socket where the convention puts them (the
//! shared directory and each daemon's own runtime directory), one line each, with its state.
//!
//! Daemons are probed in parallel, each within its own bound (2 s unless `--timeout` says
//! otherwise), so one hung daemon costs that bound, not the default 30 s of a call, and never
//! holds up the others. At most as many probes run at once as ctl's descriptor limit leaves
//! room for: a host with more daemons than descriptors gets every one probed, none reported
//! stale for ctl's own shortage; a shortage that happens all the same is shown as ctl's
//! (`unprobed`, exit 71), never as the daemon's.
//!
//! The exit code is 0 when every listed daemon is serving, 1 when one is not (see [`State`]),
//! 71 when ctl could not probe one.

use crate::cli::Global;
use crate::client::Session;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{clean, print_err, print_json, print_out};
use crate::running;
use control_api::socket::SocketEnv;
use control_api::Status;
use futures::StreamExt;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long each daemon has to answer when `--timeout` is not given: a serving daemon
/// answers `status` in milliseconds, and a health check must end soon.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one socket in the directory turned out to be.
struct Entry {
    name: String,
    path: PathBuf,
    result: Result<Status, CtlError>,
}

/// A daemon's state, in one word. Only [`State::Serving`] counts as healthy. A state derived
/// from a status that answered (a log file still open at a renamed path, say) goes in
/// [`State::of_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Answered and takes work.
    Serving,
    /// Answered, but drained: takes no new work until `ctl resume`.
    Draining,
    /// Accepted, then did not answer within the bound (SIGSTOPped, overloaded, deadlocked).
    Hung,
    /// Left a stale socket or a lock nobody holds: killed or crashed.
    Died,
    /// Its lock is held, but nothing accepts on its socket (putting its socket back).
    NotAccepting,
    /// Gone between listing and probing: stopped.
    Gone,
    /// Refused by the socket's mode or the daemon's policy.
    Denied,
    /// A socket the trust rule refuses: never connected to.
    Untrusted,
    /// Speaks another protocol version.
    Incompatible,
    /// Answers what is not this protocol.
    Broken,
    /// Does not offer `status`.
    NoStatus,
    /// ctl ran out of descriptors or memory before it could probe it.
    Unprobed,
    /// Anything else.
    Error,
}

impl State {
    fn of_status(status: &Status) -> State {
        if status.draining {
            State::Draining
        } else {
            State::Serving
        }
    }

    fn of_error(err: &CtlError) -> State {
        match err {
            CtlError::Incompatible { .. } => State::Incompatible,
            CtlError::Untrusted(_) => State::Untrusted,
            // Something answers, but not in this protocol: a daemon's bug, or another program.
            CtlError::Protocol { .. } | CtlError::WrongReply { .. } => State::Broken,
            CtlError::Died { .. } => State::Died,
            CtlError::Running { .. } => State::NotAccepting,
            CtlError::NoDaemon { .. } => State::Gone,
            CtlError::Resources { .. } => State::Unprobed,
            _ => match err.exit() {
                Exit::Denied => State::Denied,
                Exit::Timeout => State::Hung,
                Exit::Unsupported => State::NoStatus,
                _ => State::Error,
            },
        }
    }

    fn word(self) -> &'static str {
        match self {
            State::Serving => "serving",
            State::Draining => "draining",
            State::Hung => "hung",
            State::Died => "died",
            State::NotAccepting => "not-accepting",
            State::Gone => "gone",
            State::Denied => "denied",
            State::Untrusted => "untrusted",
            State::Incompatible => "incompatible",
            State::Broken => "broken",
            State::NoStatus => "no-status",
            State::Unprobed => "unprobed",
            State::Error => "error",
        }
    }
}

impl Entry {
    fn state(&self) -> State {
        match &self.result {
            Ok(status) => State::of_status(status),
            Err(err) => State::of_error(err),
        }
    }
}

pub async fn run(global: &Global) -> Exit {
    let env = SocketEnv::from_process();
    let listed = match env.list() {
        Ok(listed) => listed,
        Err(err) => {
            print_err(&format!("ctl: list: {err}: {}", err.source));
            return Exit::Failed;
        }
    };
    let dirs = env.list_dirs();
    let timeout = if global.timeout_given {
        global.timeout
    } else {
        DEFAULT_PROBE_TIMEOUT
    };

    let entries: Vec<Entry> = futures::stream::iter(listed)
        .map(|l| async move {
            let result = match l.trust {
                // Shown, never connected to: it may not be the daemon it is named after.
                Err(untrusted) => Err(CtlError::Untrusted(untrusted)),
                Ok(()) => probe(&l.path, &l.name, timeout).await,
            };
            Entry {
                name: l.name,
                path: l.path,
                result,
            }
        })
        // In the order listed, at most this many at once.
        .buffered(parallel_probes())
        .collect()
        .await;

    let printed = if global.json {
        let daemons: Vec<_> = entries
            .iter()
            .map(|e| match &e.result {
                Ok(status) => json!({"name": e.name, "socket": e.path, "state": e.state().word(), "status": status}),
                Err(err) => json!({"name": e.name, "socket": e.path, "state": e.state().word(), "error": err.to_string()}),
            })
            .collect();
        // `socket_dir` is the first place looked, as before there were several.
        print_json(&json!({
            "socket_dir": dirs[0],
            "socket_dirs": dirs,
            "all_serving": entries.iter().all(|e| e.state() == State::Serving),
            "daemons": daemons,
        }))
    } else if global.quiet {
        Ok(())
    } else if entries.is_empty() {
        let dirs: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
        print_out(&format!("no daemons have a socket in {}", dirs.join(", ")))
    } else {
        entries.iter().try_for_each(|e| print_out(&clean(&line(e))))
    };
    if let Err(err) = printed {
        print_err(&format!("ctl: list: {err}"));
        return err.exit();
    }
    let states: Vec<State> = entries.iter().map(Entry::state).collect();
    if states.contains(&State::Unprobed) {
        Exit::OsError
    } else if states.iter().all(|s| *s == State::Serving) {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// One daemon's `status`, within `timeout` from now; a socket nobody accepts on is told
/// "died" from "stopped" by what the daemon left.
async fn probe(path: &Path, name: &str, timeout: Duration) -> Result<Status, CtlError> {
    let result = async {
        let session = Session::open(path, Instant::now(), timeout).await?;
        session.status().await
    }
    .await;
    match result {
        Err(err @ CtlError::NoDaemon { .. }) => Err(match running::lock_holder(path) {
            Some(pid) => CtlError::Running {
                name: name.to_owned(),
                looked: vec![path.to_owned()],
                processes: vec![running::Process {
                    pid,
                    uid: running::uid_of(pid),
                    sockets: vec![path.to_owned()],
                }],
            },
            None => match running::left_behind(&[path.to_owned()]) {
                Some(trace) => CtlError::Died {
                    who: name.to_owned(),
                    trace,
                },
                None => err,
            },
        }),
        other => other,
    }
}

/// How many probes may run at once: each holds one descriptor (its socket) until it ends, and
/// ctl needs a few of its own (stdio, the runtime, reading directories).
fn parallel_probes() -> usize {
    const RESERVED: u64 = 16;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    usize::try_from((limit.saturating_sub(RESERVED) / 2).clamp(1, 256)).unwrap_or(1)
}

/// What `status` says is wrong with the log files, for the end of a `list` line: a failed last
/// rotate, a log file still written at a renamed or deleted path.
fn rotate_marks(s: &Status) -> String {
    let mut marks = String::new();
    if s.last_rotate.as_ref().is_some_and(|r| !r.ok) {
        marks.push_str(", last rotate FAILED");
    }
    if !s.renamed_log_files.is_empty() {
        marks.push_str(", log file NOT REOPENED (see ctl status)");
    }
    marks
}

fn line(e: &Entry) -> String {
    match &e.result {
        Ok(s) => {
            let last = match &s.last_reload {
                None => "no reload yet".to_owned(),
                Some(r) if r.ok => "last reload ok".to_owned(),
                Some(_) => "last reload FAILED".to_owned(),
            } + &rotate_marks(s);
            format!(
                "{:<20} pid {:<8} up {:<12} gen {:<4} {:<13} {last}",
                e.name,
                s.pid,
                humantime::format_duration(Duration::from_secs(s.uptime_ms / 1000)).to_string(),
                s.config_generation,
                e.state().word()
            )
        }
        Err(err) => format!("{:<20} {:<13} {err}", e.name, e.state().word()),
    }
}
