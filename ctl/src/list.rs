//! `ctl list`: every daemon with a socket in the socket directory, one line each. A stale,
//! refused or broken socket (one whose daemon answers what is not this protocol) is shown as
//! such; it does not fail the listing.

use crate::cli::Global;
use crate::client::Session;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{clean, print_err, print_json, print_out};
use control_api::socket::{name_from_path, SocketEnv};
use control_api::Status;
use serde_json::json;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What one socket in the directory turned out to be.
struct Entry {
    name: String,
    path: PathBuf,
    result: Result<Status, CtlError>,
}

pub async fn run(global: &Global, started: Instant) -> Exit {
    let dir = match SocketEnv::from_process().socket_dir() {
        Ok(dir) => dir,
        Err(err) => {
            print_err(&format!("ctl: list: {err}"));
            return Exit::Usage;
        }
    };
    let mut sockets: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
            .map(|e| e.path())
            .filter(|p| name_from_path(p).is_some())
            .collect(),
        // No directory: no daemon has ever started here.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            print_err(&format!("ctl: list: cannot read {}: {err}", dir.display()));
            return Exit::Failed;
        }
    };
    sockets.sort();

    let entries = futures::future::join_all(sockets.into_iter().map(|path| async move {
        let result = async {
            let session = Session::open(&path, started, global.timeout).await?;
            session.status().await
        }
        .await;
        Entry {
            name: name_from_path(&path).unwrap_or_default().to_owned(),
            path,
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
        print_json(&json!({"socket_dir": dir, "daemons": daemons}))
    } else if global.quiet {
        Ok(())
    } else if entries.is_empty() {
        print_out(&format!("no daemons have a socket in {}", dir.display()))
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

fn line(e: &Entry) -> String {
    match &e.result {
        Ok(s) => {
            let last = match &s.last_reload {
                None => "no reload yet".to_owned(),
                Some(r) if r.ok => "last reload ok".to_owned(),
                Some(_) => "last reload FAILED".to_owned(),
            };
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
