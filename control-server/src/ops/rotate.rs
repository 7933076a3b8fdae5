//! `rotate`: reopen the registered log files, then whatever the handler reopens itself; keep
//! the outcome for `status`. The SIGHUP bridge runs the same rotate.

use super::renamed::RenamedLogs;
use crate::counters::{Counter, ServerCounters};
use crate::handler::{Hook, OpContext};
use crate::log_file::LogFile;
use crate::registry::Entry;
use control_api::{OpError, ReopenedFile, RotateOutcome, RotateReply, RotateRequest};
use std::sync::{Arc, Mutex};

/// What `rotate` reopens, and what the last one did.
pub(crate) struct Rotate {
    /// Log files registered with the builder.
    pub logs: Vec<LogFile>,
    /// The daemon's own reopening, for files written some other way.
    own: Option<Hook<Result<RotateReply, OpError>>>,
    /// `ctl.rotations.ok` and `ctl.rotations.failed`.
    ok: Counter,
    failed: Counter,
    /// Log files still written at a renamed path, for `status`.
    pub renamed: Arc<RenamedLogs>,
    last: Mutex<Option<RotateOutcome>>,
}

impl Rotate {
    pub fn new(
        name: &str,
        logs: Vec<LogFile>,
        own: Option<Hook<Result<RotateReply, OpError>>>,
        counters: &ServerCounters,
    ) -> Arc<Rotate> {
        Arc::new(Rotate {
            renamed: RenamedLogs::new(name.to_owned(), logs.clone()),
            logs,
            own,
            ok: counters.rotations_ok.clone(),
            failed: counters.rotations_failed.clone(),
            last: Mutex::new(None),
        })
    }

    /// Whether there is anything to reopen: what makes the `rotate` operation exist.
    pub fn serves(&self) -> bool {
        !self.logs.is_empty() || self.own.is_some()
    }

    /// The `rotate` operation, when there is something to reopen.
    pub fn entry(self: &Arc<Self>) -> Option<Entry> {
        if !self.serves() {
            return None;
        }
        let rotate = self.clone();
        Some(Entry::builtin(move |ctx, _: RotateRequest| {
            let rotate = rotate.clone();
            async move { rotate.rotate(ctx, false).await }
        }))
    }

    /// The outcome of the last rotate, if one ran.
    pub fn last(&self) -> Option<RotateOutcome> {
        crate::panic::lock(&self.last).clone()
    }

    /// Reopens, counts, and keeps the outcome for `status`; `sighup` when the bridge runs it.
    pub async fn rotate(&self, ctx: OpContext, sighup: bool) -> Result<RotateReply, OpError> {
        let (files, result) = self.run(ctx.clone()).await;
        match &result {
            Ok(_) => self.ok.inc(),
            Err(_) => self.failed.inc(),
        }
        let message = match &result {
            Ok(reply) => match reply.files.len() {
                1 => "1 log file reopened".to_owned(),
                n => format!("{n} log files reopened"),
            },
            // Each file's own error is in `files`; other causes (the daemon's own rotate's)
            // only here.
            Err(OpError::Failed { reason, causes })
                if !causes.is_empty() && !files.iter().any(|f| f.error.is_some()) =>
            {
                format!("{reason}: {}", causes.join(": "))
            }
            Err(OpError::Failed { reason, .. }) => reason.clone(),
            Err(err) => err.to_string(),
        };
        let late = !sighup && ctx.expired();
        if late {
            // The caller (logrotate's postrotate, typically) gave up and reported a failure;
            // the reopen happened anyway, or failed: only the log and `status` tell which.
            tracing::warn!(
                "rotate finished after its caller's deadline had passed, so the caller was not \
                 told: {}",
                control_api::text::Escaped(&message)
            );
        }
        *crate::panic::lock(&self.last) = Some(RotateOutcome {
            ok: result.is_ok(),
            message,
            files,
            finished_unix_ms: crate::audit::unix_ms(),
            late,
            sighup,
        });
        // A file left at its renamed path is logged at ERROR now, not at the next `status`.
        if result.is_err() {
            self.renamed.check().await;
        }
        result
    }

    /// The files reopened (or not), and the reply. Fails, naming each file and its OS error,
    /// if any file could not be reopened; those keep being written to the old file.
    async fn run(&self, ctx: OpContext) -> (Vec<ReopenedFile>, Result<RotateReply, OpError>) {
        // Off the runtime: an open can block (a hung network filesystem), and the daemon must
        // keep serving and logging meanwhile.
        let logs = self.logs.clone();
        let reopened = tokio::task::spawn_blocking(move || logs.iter().map(reopen).collect()).await;
        let mut files: Vec<ReopenedFile> = match reopened {
            Ok(files) => files,
            Err(e) => {
                let err = OpError::failed(format!(
                    "reopening the log files stopped ({e}); the daemon keeps writing to the old \
                     ones"
                ));
                return (Vec::new(), Err(err));
            }
        };
        if let Some(own) = &self.own {
            match own(ctx).await {
                Ok(reply) => files.extend(reply.files),
                Err(err) => return (files, Err(err)),
            }
        }
        let failed: Vec<String> = files
            .iter()
            .filter_map(|f| Some(format!("{}: {}", f.path.display(), f.error.as_ref()?)))
            .collect();
        if failed.is_empty() {
            let reply = RotateReply {
                files: files.clone(),
            };
            return (files, Ok(reply));
        }
        let err = OpError::Failed {
            reason: format!(
                "could not reopen {} of {} log files; the daemon keeps writing to the old {}",
                failed.len(),
                files.len(),
                if failed.len() == 1 { "one" } else { "ones" }
            ),
            causes: failed,
        };
        (files, Err(err))
    }
}

/// `log` reopened, as the reply tells it.
fn reopen(log: &LogFile) -> ReopenedFile {
    log.reopen()
        .map_or_else(ReopenedFile::from, ReopenedFile::from)
}
