//! Named numeric counters, as fb303 has them: a daemon registers each once, with a help line,
//! and updates it with one atomic operation (no lock, no allocation); `ctl counters` reads them
//! all.
//!
//! ```
//! use control_server::Counters;
//!
//! let counters = Counters::new();
//! let requests = counters.counter("web.requests", "Requests answered");
//! let queue = counters.gauge("web.queue_depth", "Requests waiting for a worker");
//! // On the hot path, from any thread (handles are cheap clones):
//! requests.inc();
//! queue.set(3);
//! queue.dec();
//! assert_eq!(requests.get(), 1);
//! assert_eq!(queue.get(), 2);
//! // Registered with `Builder::counters(&counters)`, `ctl counters web` shows them.
//! ```
//!
//! The server counts its own under `ctl.` (calls per operation and result, refusals,
//! connections and evictions, reloads, rotations): leave that prefix to it.

use control_api::{CounterKind, CounterValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Longest counter name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A set of counters, in the order registered. Clones share the set.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Locked to register and to read all of them, never to update one.
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    help: String,
    kind: CounterKind,
    /// A counter's count, or the bits of a gauge's `i64`.
    value: AtomicU64,
}

/// A monotonic count (requests served, bytes written). Clone it into every place that counts.
#[derive(Clone, Debug)]
pub struct Counter(Arc<Slot>);

/// A value that goes up and down (queue depth, connections open).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<Slot>);

impl Counters {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name`, registered with `help` if it is new. Registering a name again gives
    /// another handle to the same counter (the first help line stays).
    ///
    /// # Panics
    ///
    /// If `name` is not a valid name (1 to [`MAX_NAME_LEN`] ASCII letters, digits, `_`, `.`,
    /// `:` or `-`), or is already a gauge: both are mistakes in the daemon's code, found the
    /// first time it starts.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        self.try_counter(name, help)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// [`Counters::counter`] that returns the mistake instead of panicking, for names known
    /// only at run time (a C daemon's, through `control-server-c`).
    pub fn try_counter(&self, name: &str, help: &str) -> Result<Counter, CounterError> {
        self.register(name, help, CounterKind::Counter).map(Counter)
    }

    /// [`Counters::gauge`] that returns the mistake instead of panicking.
    pub fn try_gauge(&self, name: &str, help: &str) -> Result<Gauge, CounterError> {
        self.register(name, help, CounterKind::Gauge).map(Gauge)
    }

    /// The gauge `name`, registered with `help` if it is new; see [`Counters::counter`].
    ///
    /// # Panics
    ///
    /// As [`Counters::counter`], or if `name` is already a counter.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.try_gauge(name, help)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: CounterKind,
    ) -> Result<Arc<Slot>, CounterError> {
        if !valid_name(name) {
            return Err(CounterError::Name(name.to_owned()));
        }
        let mut slots = crate::panic::lock(&self.slots);
        if let Some(slot) = slots.iter().find(|s| s.name == name) {
            if slot.kind != kind {
                return Err(CounterError::Kind(name.to_owned()));
            }
            return Ok(slot.clone());
        }
        let slot = Arc::new(Slot {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            value: AtomicU64::new(0),
        });
        slots.push(slot.clone());
        Ok(slot)
    }

    /// Every counter whose name starts with `prefix`, in the order registered.
    pub fn read(&self, prefix: &str) -> Vec<CounterValue> {
        let slots = crate::panic::lock(&self.slots).clone();
        slots
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(|s| {
                let bits = s.value.load(Ordering::Relaxed);
                let value = match s.kind {
                    CounterKind::Counter => i64::try_from(bits).unwrap_or(i64::MAX),
                    CounterKind::Gauge => bits as i64,
                };
                CounterValue {
                    name: s.name.clone(),
                    kind: s.kind,
                    value,
                    help: s.help.clone(),
                }
            })
            .collect()
    }
}

/// A counter that cannot be registered: a mistake in the daemon's code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// Not 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `_`, `.`, `:` or `-`.
    #[error(
        "counter name {0:?} is not 1 to {MAX_NAME_LEN} ASCII letters, digits, '_', '.', ':' or '-'"
    )]
    Name(String),
    /// Registered already as the other kind.
    #[error("counter {0:?} is registered both as a counter and as a gauge")]
    Kind(String),
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.value.load(Ordering::Relaxed)
    }
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.0.value.store(value as u64, Ordering::Relaxed);
    }

    /// Adds `n` (which may be negative).
    pub fn add(&self, n: i64) {
        // In two's complement, adding the bits is adding the `i64`s.
        self.0.value.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.value.load(Ordering::Relaxed) as i64
    }
}

/// The counters the server keeps of itself, under `ctl.`.
#[derive(Clone, Debug)]
pub(crate) struct ServerCounters {
    /// Where they are registered, with the per-operation ones added at bind.
    pub set: Counters,
    /// Calls refused before they ran: not permitted, unknown, bad arguments, shutting down.
    pub refused: Counter,
    pub accepted: Counter,
    pub open: Gauge,
    /// Connections dropped to make room (the cap, or descriptors running out).
    pub evicted: Counter,
    pub reloads_ok: Counter,
    pub reloads_failed: Counter,
    pub rotations_ok: Counter,
    pub rotations_failed: Counter,
    /// Audit lines sent to syslog, and those dropped (no listener, its queue full).
    pub audit_sent: Counter,
    pub audit_dropped: Counter,
}

impl ServerCounters {
    pub fn new() -> Self {
        let set = Counters::new();
        ServerCounters {
            refused: set.counter(
                "ctl.refused",
                "Calls refused before they ran (not permitted, unknown, bad arguments, stopping)",
            ),
            accepted: set.counter("ctl.connections.accepted", "Control connections accepted"),
            open: set.gauge("ctl.connections.open", "Control connections open"),
            evicted: set.counter(
                "ctl.connections.evicted",
                "Control connections dropped to make room for others",
            ),
            reloads_ok: set.counter(
                "ctl.reloads.ok",
                "Reloads that applied or kept a configuration",
            ),
            reloads_failed: set.counter(
                "ctl.reloads.failed",
                "Reloads that failed; the configuration before stayed active",
            ),
            rotations_ok: set.counter("ctl.rotations.ok", "Rotations that reopened every log file"),
            rotations_failed: set.counter(
                "ctl.rotations.failed",
                "Rotations that could not reopen a log file",
            ),
            audit_sent: set.counter(
                "ctl.audit.syslog.sent",
                "Audit lines (who changed what) sent to the system's log",
            ),
            audit_dropped: set.counter(
                "ctl.audit.syslog.dropped",
                "Audit lines not sent to the system's log (none listening, or its queue full); \
                 ctl history keeps the calls",
            ),
            set,
        }
    }

    /// The `ok` and `failed` counters of calls to `operation`.
    pub fn calls(&self, operation: &str) -> (Counter, Counter) {
        (
            self.set.counter(
                &format!("ctl.calls.{operation}.ok"),
                &format!("Calls of {operation} that succeeded"),
            ),
            self.set.counter(
                &format!("ctl.calls.{operation}.failed"),
                &format!("Calls of {operation} that ran and failed"),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_one_value_and_read_filters_by_prefix_in_registration_order() {
        let set = Counters::new();
        let a = set.counter("app.requests", "Requests");
        let again = set.counter("app.requests", "ignored");
        let g = set.gauge("app.queue", "Queue depth");
        let other = set.counter("other.x", "X");
        a.add(2);
        again.inc();
        g.set(5);
        g.dec();
        other.inc();
        assert_eq!(a.get(), 3);
        let read = set.read("app.");
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].name, "app.requests");
        assert_eq!(read[0].kind, CounterKind::Counter);
        assert_eq!(read[0].value, 3);
        assert_eq!(read[0].help, "Requests");
        assert_eq!(read[1].kind, CounterKind::Gauge);
        assert_eq!(read[1].value, 4);
        assert_eq!(set.read("").len(), 3);
        g.add(-10);
        assert_eq!((g.get(), set.read("app.queue")[0].value), (-6, -6));
    }

    #[test]
    fn bad_names_and_a_kind_mismatch_are_refused() {
        for bad in ["", "has space", "new\nline", &"x".repeat(MAX_NAME_LEN + 1)] {
            let set = Counters::new();
            assert!(
                std::panic::catch_unwind(|| set.counter(bad, "h")).is_err(),
                "{bad:?}"
            );
        }
        let set = Counters::new();
        set.counter("a", "h");
        assert!(std::panic::catch_unwind(|| set.gauge("a", "h")).is_err());
    }

    #[test]
    fn handles_are_clone_send_and_sync() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Counter>();
        shareable::<Gauge>();
        shareable::<Counters>();
    }
}
