//! What became of a log file's lines: written (in the file) or dropped (buffered mode, a full
//! buffer), counted apart, so that a daemon's "lines written" never counts a line the disk
//! never took.

use crate::Counter;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counts of one [`LogFile`](super::LogFile), since it was opened.
#[derive(Debug, Default)]
pub(super) struct Tally {
    lines: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    /// The daemon's counters these counts are added to as well ([`LogOptions::counters`]).
    ///
    /// [`LogOptions::counters`]: super::LogOptions::counters
    pub(super) counters: Option<LineCounters>,
}

/// The counters a log file adds to, for `ctl counters`.
#[derive(Debug, Clone)]
pub(super) struct LineCounters {
    pub(super) lines: Counter,
    pub(super) bytes: Counter,
    pub(super) dropped: Counter,
}

impl Tally {
    /// Nothing counted yet; adding to `counters` too, when given.
    pub(super) fn new(counters: Option<LineCounters>) -> Tally {
        Tally {
            counters,
            ..Tally::default()
        }
    }

    /// `bytes` (whole lines) are in the file now.
    pub(super) fn wrote(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let lines = memchr::memchr_iter(b'\n', bytes).count() as u64;
        self.lines.fetch_add(lines, Ordering::Relaxed);
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Some(c) = &self.counters {
            c.lines.add(lines);
            c.bytes.add(bytes.len() as u64);
        }
    }

    /// `lines` were dropped, never to reach the file.
    pub(super) fn dropped(&self, lines: u64) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
        if let Some(c) = &self.counters {
            c.dropped.add(lines);
        }
    }

    pub(super) fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
