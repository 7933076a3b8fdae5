//! The demo daemon's work (one `seq=N` line per interval) and its control operations.
//!
//! It shows the easy path through `control-server`: the configuration lives in a
//! [`Reloadable`], each line is a unit of work taken from a [`WorkTracker`], and the log file is
//! a [`LogFile`]. The server then provides `rotate`, `drain`, `resume` and most of `status` by
//! itself; the handler only implements `reload` and adds its own typed `status` fields.

use crate::config::Config;
use crate::gate::Gate;
use anyhow::Context as _;
use control_api::OpError;
use control_server::{DaemonStatus, LogFile, OpContext, Reloadable, Reloaded, WorkTracker};
use demo_daemon::{Counters, MessageSet, SetMessage};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The daemon's state, shared by the worker and the control handler.
pub struct Demo {
    config_path: PathBuf,
    config: Reloadable<Config>,
    /// Registered with the server, which reopens it on `rotate`.
    log: LogFile,
    /// Registered with the server, which drains it on `drain`.
    work: WorkTracker,
    /// The message `set-message` set, which then wins over the configuration's.
    message: Mutex<Option<String>>,
    /// Bytes of log lines written, for `stats`.
    bytes_written: AtomicU64,
    started: Instant,
    /// Sequence number of the next line.
    next_seq: AtomicU64,
    /// How many times the reload handler ran, to show reloads being shared.
    reload_runs: AtomicU64,
}

impl Demo {
    /// A daemon running `config` (read from `config_path`), writing to `log`.
    pub fn new(config_path: PathBuf, config: Config, log: LogFile, work: WorkTracker) -> Demo {
        Demo {
            config_path,
            config: Reloadable::new(config),
            log,
            work,
            message: Mutex::new(None),
            bytes_written: AtomicU64::new(0),
            started: Instant::now(),
            next_seq: AtomicU64::new(1),
            reload_runs: AtomicU64::new(0),
        }
    }

    /// Test hook: begins the `startup_jobs` units of work, which end when their `job_gate` is
    /// opened (never without one). Call it before binding the control socket: the units are
    /// counted here, synchronously, so the first caller already sees them in flight.
    pub fn start_jobs(&self) -> anyhow::Result<()> {
        let config = self.config.get();
        let units: Vec<_> = (0..config.startup_jobs)
            .map_while(|_| self.work.begin())
            .collect();
        if units.is_empty() {
            return Ok(());
        }
        let gate = config
            .job_gate
            .as_deref()
            .map(|path| {
                Gate::open(path).with_context(|| format!("cannot open job_gate {}", path.display()))
            })
            .transpose()?;
        tokio::spawn(async move {
            let Some(gate) = gate else {
                return std::future::pending().await;
            };
            if let Err(err) = gate.passed().await {
                tracing::error!("job_gate failed, the jobs never end: {err}");
                return std::future::pending().await;
            }
            for (job, unit) in units.into_iter().enumerate() {
                tracing::info!(job, "job finished");
                drop(unit);
            }
        });
        Ok(())
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
            config.interval_ms,
            self.message()
        );
        match self.log.write_line(line.as_bytes()) {
            // Only a written line consumes its number, so the sequence has no gaps.
            Ok(()) => {
                self.next_seq.fetch_add(1, Ordering::SeqCst);
                self.bytes_written
                    .fetch_add(line.len() as u64, Ordering::SeqCst);
            }
            Err(err) => tracing::warn!(seq, "cannot write log line, will retry: {err}"),
        }
    }
}

/// The control side. `rotate`, `drain` and `resume` need no code here: the server provides
/// them for the registered log file and work tracker.
impl Demo {
    /// The message log lines carry: `set-message`'s, else the configuration's.
    fn message(&self) -> String {
        let set = self.message.lock().unwrap_or_else(|e| e.into_inner());
        set.clone()
            .unwrap_or_else(|| self.config.get().message.clone())
    }

    /// `set-message`.
    pub fn set_message(&self, req: SetMessage) -> MessageSet {
        let previous = self.message();
        *self.message.lock().unwrap_or_else(|e| e.into_inner()) = Some(req.text.clone());
        tracing::info!("message set to {:?}", req.text);
        MessageSet {
            previous,
            message: req.text,
        }
    }

    /// `stats`.
    pub fn stats(&self) -> Counters {
        Counters {
            lines: self.next_seq.load(Ordering::SeqCst) - 1,
            bytes: self.bytes_written.load(Ordering::SeqCst),
            reloads: self.reload_runs.load(Ordering::SeqCst),
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// `reload`.
    pub async fn reload(&self, ctx: OpContext) -> Result<Reloaded, OpError> {
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
        if let Some(path) = &new.reload_gate {
            let gate = Gate::open(path).map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: cannot open reload_gate {}", path.display()),
                    &e,
                )
            })?;
            wait_at(gate, &ctx).await.map_err(|e| {
                OpError::failed_because(
                    format!("{refused}: reload_gate {} failed", path.display()),
                    &e,
                )
            })?;
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

    /// The daemon's part of `status`.
    pub fn status(&self) -> DaemonStatus {
        let config = self.config.get();
        let interval = Duration::from_millis(config.interval_ms);
        // Typed, in the order an operator reads them.
        DaemonStatus::new()
            .field("lines_written", self.next_seq.load(Ordering::SeqCst) - 1)
            .field("interval", interval)
            .field("lines_per_second", 1.0 / interval.as_secs_f64())
            .field("message", self.message())
            .field("reload_runs", self.reload_runs.load(Ordering::SeqCst))
    }
}

/// Test hook: holds a reload at `gate` until the test opens it; says when the caller's deadline
/// passes meanwhile, so that a test can open the gate after that rather than guess.
async fn wait_at(gate: Gate, ctx: &OpContext) -> std::io::Result<()> {
    tracing::info!("reload: waiting at the gate {}", gate.path().display());
    let passed = gate.passed();
    tokio::pin!(passed);
    tokio::select! {
        result = &mut passed => return result,
        () = ctx.until_deadline() => {}
    }
    tracing::info!("reload: the caller's deadline passed at the gate");
    passed.await
}
