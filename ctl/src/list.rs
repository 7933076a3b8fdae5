//! `ctl list`: every daemon with a socket where the convention puts them (the shared directory
//! and each daemon's own runtime directory), one line each, and a health check: it exits
//! non-zero when any listed daemon is not serving. A socket whose daemon died, one that does
//! not answer within the bound (hung), one that answers what is not this protocol (broken) or
//! as another name is shown as such; one the trust rule refuses as `untrusted`, never
//! connected to.
//!
//! Daemons are asked in parallel, each with its own bound (2 s unless `--timeout` is given),
//! and no more at once than ctl's descriptor limit allows: a descriptor that ran out is a
//! failure of ctl, never shown as a daemon's state.

use crate::cli::Global;
use crate::client::{Ahead, Session};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{clean, print_err, print_json, print_out, status_json};
use control_api::socket::SocketEnv;
use control_api::Status;
use futures::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long each daemon has to answer when `--timeout` is not given: a listing is a glance
/// over every daemon, and one that is hung must not hold up the rest for the 30 s an
/// operation gets.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Daemons asked at once, at most: each takes a descriptor until it has answered.
const MAX_AT_ONCE: usize = 64;

/// What one socket in the directory turned out to be.
struct Entry {
    name: String,
    path: PathBuf,
    result: Result<Status, CtlError>,
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
        DEFAULT_TIMEOUT
    };
    let entries: Vec<Entry> = futures::stream::iter(listed.into_iter().map(|l| async move {
        let result = match &l.trust {
            // Shown, never connected to: it may not be the daemon it is named after.
            Err(untrusted) => Err(CtlError::Untrusted(untrusted.clone())),
            // Judged again as it is connected to, and answered by the daemon of that name.
            Ok(()) => {
                async {
                    let session = Session::open_first(
                        &[l.found()],
                        Some(&l.name),
                        Instant::now(),
                        timeout,
                        Ahead::Status,
                    )
                    .await?;
                    session.status().await
                }
                .await
            }
        };
        Entry {
            name: l.name,
            path: l.path,
            result,
        }
    }))
    .buffered(at_once())
    .collect()
    .await;
    let printed = if global.json {
        let daemons: Vec<_> = entries
            .iter()
            .map(|e| match &e.result {
                Ok(status) => json!({"name": e.name, "socket": e.path, "state": state(status), "status": status_json(status)}),
                Err(err) => json!({"name": e.name, "socket": e.path, "state": error_state(err), "error": err.to_string()}),
            })
            .collect();
        // `socket_dir` is the first place looked, as before there were several.
        print_json(&json!({"socket_dir": dirs[0], "socket_dirs": dirs, "daemons": daemons}))
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
    // The health check: the code `ctl status` would give for the first daemon not serving.
    entries
        .iter()
        .find_map(|e| e.result.as_ref().err())
        .map_or(Exit::Ok, CtlError::exit)
}

/// How many daemons to ask at once: [`MAX_AT_ONCE`], or fewer under a low descriptor limit
/// (half of what is left after a margin for ctl's own descriptors).
pub(crate) fn at_once() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let spare = limit.saturating_sub(16) / 2;
    usize::try_from(spare)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_AT_ONCE)
}

pub(crate) fn state(status: &Status) -> &'static str {
    if status.draining {
        "draining"
    } else {
        "serving"
    }
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
                "{:<20} pid {:<8} up {:<12} gen {:<4} {:<9} {last}",
                e.name,
                s.pid,
                humantime::format_duration(Duration::from_secs(s.uptime_ms / 1000)).to_string(),
                s.config_generation,
                state(s)
            )
        }
        Err(err) => format!("{:<20} {:<9} {err}", e.name, error_state(err)),
    }
}

/// What a socket that did not answer `status` is, in one word.
pub(crate) fn error_state(err: &CtlError) -> &'static str {
    match err {
        CtlError::Incompatible { .. } => "incompatible",
        CtlError::Untrusted(_) => "untrusted",
        CtlError::WrongDaemon { .. } => "misnamed",
        // Something answers, but not in this protocol: a daemon's bug, or another program.
        CtlError::Protocol { .. } | CtlError::WrongReply { .. } => "broken",
        // A socket nobody accepts on: its daemon died (one that stops removes it).
        CtlError::NoDaemon { .. } | CtlError::Died { .. } => "died",
        CtlError::Op(control_api::OpError::ShuttingDown) => "stopping",
        // ctl's own trouble (no descriptor left, ...): not a state of the daemon.
        CtlError::Connect { .. } => "error",
        _ => match err.exit() {
            Exit::Denied => "denied",
            Exit::Timeout => "hung",
            Exit::Unsupported => "no-status",
            _ => "error",
        },
    }
}
