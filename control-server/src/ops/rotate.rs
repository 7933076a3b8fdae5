//! `rotate`: reopen the registered log files, then whatever the handler reopens itself.

use crate::counters::Counter;
use crate::handler::{Hook, OpContext};
use crate::log_file::LogFile;
use crate::registry::Entry;
use control_api::{OpError, Operation, ReopenedFile, RotateReply, RotateRequest};
use std::sync::Arc;

/// What `rotate` reopens.
pub(crate) struct Rotate {
    /// Log files registered with the builder.
    pub logs: Vec<LogFile>,
    /// The daemon's own reopening, for files written some other way.
    pub own: Option<Hook<Result<RotateReply, OpError>>>,
    /// `ctl.rotations.ok` and `ctl.rotations.failed`.
    pub ok: Counter,
    pub failed: Counter,
}

impl Rotate {
    /// The `rotate` operation, when there is something to reopen.
    pub fn entry(self) -> Option<Entry> {
        if self.logs.is_empty() && self.own.is_none() {
            return None;
        }
        let rotate = Arc::new(self);
        Some(Entry::builtin(
            Operation::Rotate,
            "Reopen log files after logrotate renamed them",
            move |ctx, _: RotateRequest| {
                let rotate = rotate.clone();
                async move {
                    let result = rotate.run(ctx).await;
                    match &result {
                        Ok(_) => rotate.ok.inc(),
                        Err(_) => rotate.failed.inc(),
                    }
                    result
                }
            },
        ))
    }

    /// Fails, naming each file and its OS error, if any file could not be reopened; those keep
    /// being written to the old file.
    async fn run(&self, ctx: OpContext) -> Result<RotateReply, OpError> {
        // Off the runtime: an open can block (a hung network filesystem), and the daemon must
        // keep serving and logging meanwhile.
        let logs = self.logs.clone();
        let mut files: Vec<ReopenedFile> =
            tokio::task::spawn_blocking(move || logs.iter().map(LogFile::reopen).collect())
                .await
                .map_err(|e| {
                    OpError::failed(format!(
                        "reopening the log files stopped ({e}); the daemon keeps writing to \
                         the old ones"
                    ))
                })?;
        if let Some(own) = &self.own {
            files.extend(own(ctx).await?.files);
        }
        let failed: Vec<String> = files
            .iter()
            .filter_map(|f| Some(format!("{}: {}", f.path.display(), f.error.as_ref()?)))
            .collect();
        if failed.is_empty() {
            return Ok(RotateReply { files });
        }
        Err(OpError::Failed {
            reason: format!(
                "could not reopen {} of {} log files; the daemon keeps writing to the old {}",
                failed.len(),
                files.len(),
                if failed.len() == 1 { "one" } else { "ones" }
            ),
            causes: failed,
        })
    }
}
