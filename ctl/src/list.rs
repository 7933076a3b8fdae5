//! `ctl list`: every daemon with a socket where the convention puts them (the shared directory
//! and each daemon's own runtime directory), one line each. A stale, refused or broken socket
//! (one whose daemon answers what is not this protocol) is shown as such, and one the trust
//! rule refuses as `untrusted`, never connected to; none fails the listing.

use crate::cli::Global;
use crate::client::Session;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{clean, print_err, print_json, print_out};
use control_api::socket::SocketEnv;
use control_api::Status;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What one socket in the directory turned out to be.
struct Entry {
    name: String,
    path: PathBuf,
    result: Result<Status, CtlError>,
}

pub async fn run(global: &Global, started: Instant) -> Exit {
    let env = SocketEnv::from_process();
    let listed = match env.list() {
        Ok(listed) => listed,
        Err(err) => {
            print_err(&format!("ctl: list: {err}: {}", err.source));
            return Exit::Failed;
        }
    };
    let dirs = env.list_dirs();

    let entries = futures::future::join_all(listed.into_iter().map(|l| async move {
        let result = match l.trust {
            // Shown, never connected to: it may not be the daemon it is named after.
            Err(untrusted) => Err(CtlError::Untrusted(untrusted)),
            Ok(()) => {
                async {
                    let session = Session::open(&l.path, started, global.timeout).await?;
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
    .await;

    let printed = if global.json {
        let daemons: Vec<_> = entries
            .iter()
            .map(|e| match &e.result {
                Ok(status) => json!({"name": e.name, "socket": e.path, "state": state(status), "status": status}),
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
    match printed {
        Ok(()) => Exit::Ok,
        Err(err) => {
            print_err(&format!("ctl: list: {err}"));
            err.exit()
        }
    }
}

fn state(status: &Status) -> &'static str {
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
fn error_state(err: &CtlError) -> &'static str {
    match err {
        CtlError::Incompatible { .. } => "incompatible",
        CtlError::Untrusted(_) => "untrusted",
        // Something answers, but not in this protocol: a daemon's bug, or another program.
        CtlError::Protocol { .. } | CtlError::WrongReply { .. } => "broken",
        _ => match err.exit() {
            Exit::NoDaemon => "stale",
            Exit::Denied => "denied",
            Exit::Timeout => "hung",
            Exit::Unsupported => "no-status",
            _ => "error",
        },
    }
}
