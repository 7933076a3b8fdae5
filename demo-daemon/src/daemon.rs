//! The demo daemon's work (one `seq=N` line per interval) and its control operations.
//!
//! It shows the easy path through `control-server`: the configuration lives in a
//! [`Reloadable`], each line is a unit of work taken from a [`WorkTracker`], and the log file is
//! a [`LogFile`]. The server then provides `rotate`, `drain`, `resume` and most of `status` by
//! itself; the handler only implements `reload` and adds its own typed `status` fields.

use crate::config::Config;
use control_api::{OpError, Operation};
use control_server::{
    DaemonStatus, Handler, LogFile, OpContext, Reloadable, Reloaded, WorkTracker,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The daemon's state, shared by the worker and the control handler.
pub struct Demo {
    config_path: PathBuf,
    config: Reloadable<Config>,
    /// Registered with the server, which reopens it on `rotate`.
    log: LogFile,
    /// Registered with the server, which drains it on `drain`.
    work: WorkTracker,
    /// Operations turned off with `--disable`, to play an older or trimmed-down daemon.
    disabled: Vec<Operation>,
    /// Sequence number of the next line.
    next_seq: AtomicU64,
    /// How many times the reload handler ran, to show reloads being shared.
    reload_runs: AtomicU64,
}

impl Demo {
    /// A daemon running `config` (read from `config_path`), writing to `log`.
    pub fn new(
        config_path: PathBuf,
        config: Config,
        log: LogFile,
        work: WorkTracker,
        disabled: Vec<Operation>,
    ) -> Demo {
        Demo {
            config_path,
            config: Reloadable::new(config),
            log,
            work,
            disabled,
            next_seq: AtomicU64::new(1),
            reload_runs: AtomicU64::new(0),
        }
    }

    /// Test hook: units of work that hold a drain up for `job_ms` each.
    pub fn start_jobs(self: &Arc<Self>) {
        let config = self.config.get();
        for job in 0..config.startup_jobs {
            let Some(unit) = self.work.begin() else {
                return;
            };
            let length = Duration::from_millis(config.job_ms);
            tokio::spawn(async move {
                tokio::time::sleep(length).await;
                tracing::info!(job, "job finished");
                drop(unit);
            });
        }
    }

    /// Writes one line per interval; stops while a drain refuses it more work, and starts again
    /// when a `resume` undoes the drain.
    pub async fn run(self: Arc<Self>) {
        let mut next = tokio::time::Instant::now();
        loop {
            let Some(unit) = self.work.begin() else {
                tracing::info!("draining: no longer writing lines");
                // Not `break`: the server offers `resume` for the tracker, and a resume must
                // find the worker waiting for it.
                self.work.resumed().await;
                tracing::info!("resumed: writing lines again");
                next = tokio::time::Instant::now();
                continue;
            };
            self.write_line();
            drop(unit);

            let interval = Duration::from_millis(self.config.get().interval_ms);
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                // Fell behind (a suspended process, a long reload): do not burst to catch up.
                next = now;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    fn write_line(&self) {
        let config = self.config.get();
        let seq = self.next_seq.load(Ordering::SeqCst);
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let line = format!(
            "seq={seq} t_ms={unix_ms} interval_ms={} message={}\n",
            config.interval_ms, config.message
        );
        match self.log.write_line(line.as_bytes()) {
            // Only a written line consumes its number, so the sequence has no gaps.
            Ok(()) => {
                self.next_seq.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => tracing::warn!(seq, "cannot write log line, will retry: {err}"),
        }
    }
}

impl Handler for Demo {
    fn operations(&self) -> Vec<Operation> {
        // `rotate` and `drain` need no code here: the server provides them for the registered
        // log file and work tracker.
        if self.disabled.contains(&Operation::Reload) {
            vec![]
        } else {
            vec![Operation::Reload]
        }
    }

    async fn reload(&self, ctx: OpContext) -> Result<Reloaded, OpError> {
        self.reload_runs.fetch_add(1, Ordering::SeqCst);
        let refused = "new configuration refused, the running one stays active";
        let old = self.config.get();
        // Everything that can fail comes first; nothing is applied until all of it passed.
        let new = Config::load(&self.config_path)
            .await
            .map_err(|e| OpError::failed_because(refused, &e))?;
        if new.log_file != old.log_file {
            LogFile::open(&new.log_file).map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: cannot open log_file {}", new.log_file.display()),
                    &e,
                )
            })?;
        }
        if new.reload_panics {
            panic!("reload_panics is set in {}", self.config_path.display());
        }
        tracing::info!("reload: configuration read and valid");
        if new.reload_delay_ms > 0 {
            tracing::info!(
                "reload: applying in {} ms (reload_delay_ms)",
                new.reload_delay_ms
            );
            tokio::time::sleep(Duration::from_millis(new.reload_delay_ms)).await;
        }
        // A caller who gave up must not see the configuration change later by surprise.
        if ctx.expired() {
            return Err(OpError::failed(
                "the deadline passed before the new configuration was applied; \
                 the running one stays active",
            ));
        }
        if new == *old {
            return Ok(Reloaded::unchanged());
        }
        if new.log_file != old.log_file {
            self.log.switch_to(&new.log_file).map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: cannot open log_file {}", new.log_file.display()),
                    &e,
                )
            })?;
        }
        let summary = new.changes_from(&old);
        self.config
            .try_replace(|_| Ok::<_, std::convert::Infallible>(new))
            .unwrap_or_else(|never| match never {});
        tracing::info!("configuration reloaded: {summary}");
        Ok(Reloaded::changed(summary))
    }

    async fn status(&self, _ctx: OpContext) -> DaemonStatus {
        let config = self.config.get();
        let interval = Duration::from_millis(config.interval_ms);
        // Typed, in the order an operator reads them.
        DaemonStatus::new()
            .field("lines_written", self.next_seq.load(Ordering::SeqCst) - 1)
            .field("interval", interval)
            .field("lines_per_second", 1.0 / interval.as_secs_f64())
            .field("message", config.message.as_str())
            .field("reload_runs", self.reload_runs.load(Ordering::SeqCst))
    }
}
