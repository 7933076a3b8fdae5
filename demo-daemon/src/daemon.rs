//! The demo daemon's work (one `seq=N` line per interval) and its control operations.

use crate::config::Config;
use control_api::{DrainReply, OpError, Operation};
use control_server::{DaemonStatus, Handler, LogFile, OpContext, Reloaded};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// The daemon's state, shared by the worker and the control handler.
pub struct Demo {
    config_path: PathBuf,
    config: RwLock<Arc<Config>>,
    /// Registered with the server, which reopens it on `rotate`: no rotate code here.
    log: LogFile,
    /// Operations turned off with `--disable`, to play an older or trimmed-down daemon.
    disabled: Vec<Operation>,
    /// Sequence number of the next line.
    next_seq: AtomicU64,
    in_flight: AtomicU64,
    draining: AtomicBool,
    /// Wakes the worker early when a drain starts.
    drain_started: Notify,
    /// Set by the worker once it has stopped for a drain.
    stopped: watch::Sender<bool>,
}

impl Demo {
    /// A daemon running `config` (read from `config_path`), writing to `log`.
    pub fn new(
        config_path: PathBuf,
        config: Config,
        log: LogFile,
        disabled: Vec<Operation>,
    ) -> Demo {
        Demo {
            config_path,
            config: RwLock::new(Arc::new(config)),
            log,
            disabled,
            next_seq: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_started: Notify::new(),
            stopped: watch::Sender::new(false),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes one line per interval until a drain stops it.
    pub async fn run(self: Arc<Self>) {
        let mut next = tokio::time::Instant::now();
        loop {
            if self.draining.load(Ordering::SeqCst) {
                break;
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            self.write_line();
            self.in_flight.fetch_sub(1, Ordering::SeqCst);

            let interval = Duration::from_millis(self.config().interval_ms);
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                // Fell behind (a suspended process, a long reload): do not burst to catch up.
                next = now;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.drain_started.notified() => {}
            }
        }
        self.stopped.send_replace(true);
        tracing::info!("drained: no longer writing lines");
    }

    fn write_line(&self) {
        let config = self.config();
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
        // `rotate` needs no code: the server reopens the registered log file.
        [Operation::Reload, Operation::Drain]
            .into_iter()
            .filter(|op| !self.disabled.contains(op))
            .collect()
    }

    async fn reload(&self, _ctx: OpContext) -> Result<Reloaded, OpError> {
        let refused = "new configuration refused, the running one stays active";
        let new =
            Config::load(&self.config_path).map_err(|e| OpError::failed_because(refused, &e))?;
        let old = self.config();
        if new.reload_panics {
            panic!("reload_panics is set in {}", self.config_path.display());
        }
        if new.reload_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(new.reload_delay_ms)).await;
        }
        // The last step that can fail: it opens the new file before letting go of the old one,
        // and nothing else has been applied yet.
        if new.log_file != old.log_file {
            self.log.switch_to(&new.log_file).map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: cannot open log_file {}", new.log_file.display()),
                    &e,
                )
            })?;
        }
        let summary = new.changes_from(&old);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        tracing::info!("configuration reloaded: {summary}");
        Ok(Reloaded { summary })
    }

    async fn drain(&self, ctx: OpContext) -> Result<DrainReply, OpError> {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_started.notify_one();
        let mut stopped = self.stopped.subscribe();
        let completed = tokio::time::timeout_at(ctx.deadline.into(), stopped.wait_for(|s| *s))
            .await
            .is_ok();
        Ok(DrainReply {
            completed,
            in_flight: self.in_flight.load(Ordering::SeqCst),
        })
    }

    async fn status(&self, _ctx: OpContext) -> DaemonStatus {
        let config = self.config();
        DaemonStatus {
            draining: self.draining.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            fields: [
                (
                    "lines_written",
                    (self.next_seq.load(Ordering::SeqCst) - 1).to_string(),
                ),
                ("interval_ms", config.interval_ms.to_string()),
                ("message", config.message.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            ..DaemonStatus::default()
        }
    }
}
