//! Log files still written at a path that no longer names them: logrotate renamed the file (or
//! someone deleted it) and no reopen followed, because the `rotate` failed, never reached the
//! daemon, or was never asked for. `status` reports them; each is logged at ERROR once.

use crate::log_file::LogFile;
use crate::noise::Throttle;
use control_api::{FileId, RenamedLogFile};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `status` waits for the check: a `stat` on a hung filesystem must not hold it.
const CHECK_BOUND: Duration = Duration::from_secs(1);

/// Descriptors looked at to find where a renamed file is now: enough for any daemon's log
/// files to be among them, few enough that a daemon with many connections answers at once.
const MAX_FDS_SCANNED: usize = 4096;

/// The check, and what it already reported.
pub(crate) struct RenamedLogs {
    name: String,
    logs: Vec<LogFile>,
    /// What has been logged at ERROR: each renamed file once, not on every `status`.
    reported: Mutex<HashSet<(PathBuf, FileId)>>,
    /// A check still running (a hung filesystem): callers get the last result instead of
    /// starting another blocking thread after it.
    running: AtomicBool,
    last: Mutex<Vec<RenamedLogFile>>,
    /// Whoever can write the log's directory can rename the file away and back in a loop,
    /// making each `status` a new report: the ERROR lines are rate-limited.
    noise: Arc<Throttle>,
}

impl RenamedLogs {
    pub fn new(name: String, logs: Vec<LogFile>) -> Arc<RenamedLogs> {
        Arc::new(RenamedLogs {
            name,
            logs,
            reported: Mutex::default(),
            running: AtomicBool::new(false),
            last: Mutex::default(),
            noise: Throttle::new("reports of a log file written at a renamed path"),
        })
    }

    /// The registered log files written at a path that names another file, or nothing, now.
    /// Runs off the runtime and waits for it at most [`CHECK_BOUND`]; past that, or while an
    /// earlier check still runs, the last result.
    pub async fn check(self: &Arc<Self>) -> Vec<RenamedLogFile> {
        if self.logs.is_empty() {
            return Vec::new();
        }
        if self.running.swap(true, Ordering::SeqCst) {
            return self.last();
        }
        let this = self.clone();
        let check = tokio::task::spawn_blocking(move || {
            let found = this.check_blocking();
            *crate::panic::lock(&this.last) = found.clone();
            this.running.store(false, Ordering::SeqCst);
            found
        });
        match tokio::time::timeout(CHECK_BOUND, check).await {
            Ok(Ok(found)) => found,
            Ok(Err(_)) => {
                self.running.store(false, Ordering::SeqCst);
                self.last()
            }
            Err(_) => self.last(),
        }
    }

    fn last(&self) -> Vec<RenamedLogFile> {
        crate::panic::lock(&self.last).clone()
    }

    fn check_blocking(&self) -> Vec<RenamedLogFile> {
        let mut found = Vec::new();
        for log in &self.logs {
            let (path, file) = (log.path(), log.file_id());
            let names_it = std::fs::symlink_metadata(&path)
                .is_ok_and(|meta| meta.dev() == file.dev && meta.ino() == file.ino);
            if names_it {
                continue;
            }
            let (now_at, deleted) = where_is(file);
            found.push(RenamedLogFile {
                path,
                file,
                now_at,
                deleted,
            });
        }
        self.report(&found);
        found
    }

    /// Logs each newly seen renamed file at ERROR, and forgets the ones since reopened.
    fn report(&self, found: &[RenamedLogFile]) {
        let mut fresh = Vec::new();
        {
            let mut reported = crate::panic::lock(&self.reported);
            reported.retain(|key| found.iter().any(|f| (&f.path, &f.file) == (&key.0, &key.1)));
            for f in found {
                if reported.insert((f.path.clone(), f.file)) {
                    fresh.push(f);
                }
            }
        }
        // Logged with no lock held: the daemon's own log may be this very file.
        for f in fresh {
            if !self.noise.admit() {
                continue;
            }
            let name = control_api::text::escape(&self.name);
            let path = control_api::text::escape_path(&f.path);
            let now = match (&f.now_at, f.deleted) {
                (_, true) => "deleted".to_owned(),
                (Some(at), false) => format!("now {}", control_api::text::escape_path(at)),
                (None, false) => "renamed".to_owned(),
            };
            tracing::error!(
                "log file {path} is {now} and still written to: no reopen followed the \
                 rename (a failed or lost rotate); `ctl rotate {name}` reopens it"
            );
        }
    }
}

/// Where the open file `file` is now, from the daemon's own descriptors: its name as the
/// kernel knows it, and whether it has no name left.
fn where_is(file: FileId) -> (Option<PathBuf>, bool) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return (None, false);
    };
    for entry in fds.flatten().take(MAX_FDS_SCANNED) {
        let fd = entry.path();
        // Follows the descriptor to the open file itself, named or not.
        let Ok(meta) = std::fs::metadata(&fd) else {
            continue;
        };
        if meta.dev() != file.dev || meta.ino() != file.ino {
            continue;
        }
        if meta.nlink() == 0 {
            return (None, true);
        }
        return (
            std::fs::read_link(&fd).ok().filter(|p| p.is_absolute()),
            false,
        );
    }
    (None, false)
}
