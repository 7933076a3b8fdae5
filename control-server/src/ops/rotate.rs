//! `rotate`: reopen the registered log files, then whatever the handler reopens itself.

use crate::handler::{Handler, OpContext};
use crate::log_file::LogFile;
use crate::service::Shared;
use control_api::{OpError, Operation, ReopenedFile, RotateReply};

impl<H: Handler> Shared<H> {
    /// Fails, naming each file and its OS error, if any file could not be reopened; those keep
    /// being written to the old file.
    pub(crate) async fn rotate(&self, ctx: OpContext) -> Result<RotateReply, OpError> {
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
        if self.handler_ops.contains(&Operation::Rotate) {
            match self.handler.rotate(ctx).await {
                Ok(reply) => files.extend(reply.files),
                // Listed but left to the registered log files: nothing more to reopen.
                Err(OpError::Unsupported { .. }) if !self.logs.is_empty() => {}
                Err(err) => return Err(err),
            }
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
