//! `status`: what the server knows (pid, uptime, reloads, rotates, tracker, log files and
//! whether one is left at a renamed path) plus the daemon's own part.

use super::reload::Reloads;
use super::rotate::Rotate;
use crate::drain::WorkTracker;
use crate::handler::{DaemonStatus, Hook};
use crate::log_file::LogFile;
use crate::registry::Entry;
use control_api::{RenamedLogFile, Status, StatusRequest};
use std::sync::Arc;
use std::time::Instant;

/// What `status` reads.
pub(crate) struct StatusOp {
    pub name: String,
    pub version: String,
    pub started: Instant,
    pub reloads: Arc<Reloads>,
    pub tracker: Option<WorkTracker>,
    /// The registered log files, the last rotate, and the log files left at a renamed path.
    pub rotate: Arc<Rotate>,
    /// The daemon's part; none: only what the server knows.
    pub own: Option<Hook<DaemonStatus>>,
}

impl StatusOp {
    pub fn entry(self) -> Entry {
        let this = Arc::new(self);
        Entry::builtin(move |ctx, _: StatusRequest| {
            let this = this.clone();
            async move {
                let daemon = match &this.own {
                    Some(own) => own(ctx).await,
                    None => DaemonStatus::default(),
                };
                let renamed = this.rotate.renamed.check().await;
                Ok(this.combine(daemon, renamed))
            }
        })
    }

    /// The rules are documented on [`DaemonStatus`].
    fn combine(&self, daemon: DaemonStatus, renamed: Vec<RenamedLogFile>) -> Status {
        let (generation, last) = self.reloads.current();
        let tracker = self.tracker.as_ref();
        let draining = daemon.draining || tracker.is_some_and(WorkTracker::is_draining);
        let in_flight = daemon.in_flight + tracker.map_or(0, WorkTracker::in_flight);
        let log_files = self
            .rotate
            .logs
            .iter()
            .map(LogFile::path)
            .chain(daemon.log_files.iter().cloned())
            .collect();
        let (values, fields) = daemon.into_wire_fields();
        Status {
            name: self.name.clone(),
            version: self.version.clone(),
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            config_generation: generation,
            last_reload: last,
            draining,
            in_flight,
            log_files,
            fields,
            values,
            last_rotate: self.rotate.last(),
            renamed_log_files: renamed,
        }
    }
}
