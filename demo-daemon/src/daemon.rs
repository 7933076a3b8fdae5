//! The demo daemon's work (one `seq=N` line per interval) and its control operations.
//!
//! It shows the easy path through `control-server`: the configuration lives in a
//! [`Reloadable`], each line is a unit of work taken from a [`WorkTracker`], and the log file is
//! a [`LogFile`]. The server then provides `rotate`, `drain`, `resume` and most of `status` by
//! itself, and `reload` and `check` from the one load-and-validate step in
//! [`crate::reload`]; the daemon only adds its own typed `status` fields and commands.

use crate::config::Config;
use crate::gate::Gate;
use crate::reload::ConfigSource;
use anyhow::Context as _;
use control_api::text::Escaped;
use control_api::{OpError, RotateReply};
use control_server::{Counter, DaemonStatus, Gauge, LogFile, Reloadable, Throttle, WorkTracker};
use demo_daemon::{Counters, MessageSet, SetMessage, MAX_MESSAGE_LEN};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The daemon's state, shared by the worker and the control handler.
pub struct Demo {
    config_path: PathBuf,
    /// Replaced whole by `reload` (registered with `Builder::reloadable`).
    config: Arc<Reloadable<Config>>,
    /// Registered with the server, which reopens it on `rotate`.
    log: LogFile,
    /// Registered with the server, which drains it on `drain`.
    work: WorkTracker,
    /// The message `set-message` set, which then wins over the configuration's.
    message: Mutex<Option<String>>,
    /// Registered with the server: `ctl counters` shows them, with the log file's
    /// `demo.lines_written`, `demo.bytes_written` and `demo.lines_dropped` (counted by the
    /// file: only what reached it is written).
    counters: control_server::Counters,
    /// Calls of `set-message`.
    messages_set: Counter,
    /// `set-message` lines: any caller allowed to set the message can call it in a loop.
    message_noise: Arc<Throttle>,
    /// The interval now in effect.
    interval_ms: Gauge,
    started: Instant,
    /// Sequence number of the next line.
    next_seq: AtomicU64,
    /// How many times a reload ran, to show reloads being shared.
    reload_runs: Arc<AtomicU64>,
}

impl Demo {
    /// A daemon running `config` (read from `config_path`), writing to `log`, which counts its
    /// lines in `counters` (`LogOptions::counters`).
    pub fn new(
        config_path: PathBuf,
        config: Config,
        log: LogFile,
        work: WorkTracker,
        counters: control_server::Counters,
    ) -> Demo {
        Demo {
            config_path,
            config: Arc::new(Reloadable::new(config)),
            log,
            work,
            message: Mutex::new(None),
            messages_set: counters.counter("demo.messages_set", "Calls of set-message"),
            message_noise: Throttle::new("set-message calls"),
            interval_ms: counters.gauge("demo.interval_ms", "Milliseconds between two lines"),
            counters,
            started: Instant::now(),
            next_seq: AtomicU64::new(1),
            reload_runs: Arc::new(AtomicU64::new(0)),
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

            let interval_ms = self.config.get().interval_ms;
            self.interval_ms
                .set(i64::try_from(interval_ms).unwrap_or(i64::MAX));
            let interval = Duration::from_millis(interval_ms);
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
        // Escaped: a caller's `set-message` text must stay on this line.
        let line = format!(
            "seq={seq} t_ms={unix_ms} interval_ms={} message={}\n",
            config.interval_ms,
            Escaped(&self.message())
        );
        match self.log.write_line(line.as_bytes()) {
            // Only a written line consumes its number, so the sequence has no gaps. (In
            // buffered mode a line handed over may still be dropped: the log file counts
            // what reached it.)
            Ok(()) => {
                self.next_seq.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => tracing::warn!(seq, "cannot write log line, will retry: {err}"),
        }
    }
}

/// The control side. `rotate`, `drain` and `resume` need no code here: the server provides
/// them for the registered log file and work tracker; `reload` and `check` come from
/// [`ConfigSource`].
impl Demo {
    /// The daemon's counters, for `Builder::counters`.
    pub fn counters(&self) -> &control_server::Counters {
        &self.counters
    }

    /// The daemon's own part of `rotate`, for `Builder::rotate`: nothing to reopen (the server
    /// reopens the registered log file), only the test hook `rotate_gate`.
    pub async fn rotate(&self) -> Result<RotateReply, OpError> {
        if let Some(path) = self.config.get().rotate_gate.clone() {
            let gate = Gate::open(&path).map_err(|e| {
                OpError::failed_because(format!("cannot open rotate_gate {}", path.display()), &e)
            })?;
            tracing::info!(
                "rotate: waiting at the gate {}",
                control_api::text::escape_path(&path)
            );
            gate.passed().await.map_err(|e| {
                OpError::failed_because(format!("rotate_gate {} failed", path.display()), &e)
            })?;
        }
        Ok(RotateReply::default())
    }

    /// The configuration, for `Builder::reloadable`.
    pub fn config(&self) -> &Arc<Reloadable<Config>> {
        &self.config
    }

    /// Where `reload` and `check` read the configuration, for `Builder::reloadable`.
    pub fn config_source(&self) -> ConfigSource {
        ConfigSource {
            path: self.config_path.clone(),
            log: self.log.clone(),
            reload_runs: self.reload_runs.clone(),
        }
    }

    /// The message log lines carry: `set-message`'s, else the configuration's.
    fn message(&self) -> String {
        let set = self.message.lock().unwrap_or_else(|e| e.into_inner());
        set.clone()
            .unwrap_or_else(|| self.config.get().message.clone())
    }

    /// `set-message`: refuses a text over [`MAX_MESSAGE_LEN`] bytes, since every later line
    /// carries it; says so in one line, escaped and rate-limited.
    pub fn set_message(&self, req: SetMessage) -> Result<MessageSet, OpError> {
        if req.text.len() > MAX_MESSAGE_LEN {
            return Err(OpError::BadArguments {
                command: "set-message".to_owned(),
                field: "text".to_owned(),
                expected: format!("at most {MAX_MESSAGE_LEN} bytes"),
                message: format!(
                    "the text is {} bytes, over the {MAX_MESSAGE_LEN}-byte limit: every log \
                     line carries it",
                    req.text.len()
                ),
            });
        }
        self.messages_set.inc();
        let previous = self.message();
        let unchanged = {
            let mut set = self.message.lock().unwrap_or_else(|e| e.into_inner());
            let unchanged = set.as_deref() == Some(req.text.as_str());
            *set = Some(req.text.clone());
            unchanged
        };
        if !unchanged && self.message_noise.admit() {
            tracing::info!("message set to \"{}\"", Escaped(&req.text));
        }
        Ok(MessageSet {
            previous,
            message: req.text,
            unchanged,
        })
    }

    /// `stats`.
    pub fn stats(&self) -> Counters {
        Counters {
            lines: self.next_seq.load(Ordering::SeqCst) - 1,
            bytes: self.log.written_bytes(),
            reloads: self.reload_runs.load(Ordering::SeqCst),
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
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
