//! `history`: the last calls that changed something (or tried to), kept in a bounded ring.
//!
//! The ring keeps the newest [`capacity`](History::capacity) entries, in the order the calls
//! arrived; the oldest is dropped first and counted. Refusals are audit-worthy too, but anyone
//! who may connect can cause them by the thousand: they may fill at most a quarter of the ring,
//! and past that a new refusal drops the oldest refusal, never a call that ran. A flood of
//! refused calls can so take that quarter and no more: the newest three quarters of the calls
//! that ran always stay.

use crate::panic::lock;
use crate::registry::Entry;
use control_api::{HistoryEntry, HistoryReply, HistoryRequest, OpError};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Default number of entries kept ([`Builder::history_len`](crate::Builder::history_len)).
pub const DEFAULT_HISTORY_LEN: usize = 100;

/// The result of a refused call, as entries name it.
pub(crate) const DENIED: &str = "denied";

/// The bounded history of one server.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<HistoryEntry>,
    /// How many of `entries` are refusals.
    denied: usize,
    /// Entries dropped since start.
    dropped: u64,
}

impl History {
    pub fn new(capacity: usize) -> Arc<History> {
        Arc::new(History {
            capacity: capacity.max(1),
            ring: Mutex::new(Ring::default()),
        })
    }

    /// How many refusals the ring keeps at most: a quarter of it.
    fn denied_share(&self) -> usize {
        self.capacity / 4
    }

    /// Adds `entry` in its place by arrival time (calls finish in another order than they
    /// arrive), dropping what the bound says.
    pub fn record(&self, entry: HistoryEntry) {
        let denied = entry.result == DENIED;
        let mut ring = lock(&self.ring);
        if denied && ring.denied >= self.denied_share() {
            // Their share is full: the oldest refusal goes, or this one if there is none.
            match ring.entries.iter().position(|e| e.result == DENIED) {
                Some(at) => {
                    ring.entries.remove(at);
                    ring.denied -= 1;
                }
                None => {
                    ring.dropped += 1;
                    return;
                }
            }
            ring.dropped += 1;
        } else if ring.entries.len() >= self.capacity {
            if let Some(oldest) = ring.entries.pop_front() {
                if oldest.result == DENIED {
                    ring.denied -= 1;
                }
            }
            ring.dropped += 1;
        }
        let at = ring
            .entries
            .iter()
            .rposition(|e| e.unix_ms <= entry.unix_ms)
            .map_or(0, |i| i + 1);
        ring.entries.insert(at, entry);
        if denied {
            ring.denied += 1;
        }
    }

    /// The newest `limit` entries (all without one), oldest first.
    pub fn read(&self, limit: Option<u32>) -> HistoryReply {
        let ring = lock(&self.ring);
        let keep = limit.map_or(usize::MAX, |n| n as usize);
        let skip = ring.entries.len().saturating_sub(keep);
        HistoryReply {
            entries: ring.entries.iter().skip(skip).cloned().collect(),
            dropped: ring.dropped,
            capacity: self.capacity as u64,
        }
    }

    /// The `history` operation.
    pub fn entry(self: &Arc<Self>) -> Entry {
        let history = self.clone();
        Entry::builtin(move |_, req: HistoryRequest| {
            std::future::ready(Ok::<_, OpError>(history.read(req.limit)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unix_ms: u64, result: &str) -> HistoryEntry {
        HistoryEntry {
            unix_ms,
            operation: "reload".into(),
            result: result.into(),
            ..HistoryEntry::default()
        }
    }

    fn times(h: &History) -> Vec<u64> {
        h.read(None).entries.iter().map(|e| e.unix_ms).collect()
    }

    /// Each entry kept, as its time and result.
    fn kept(h: &History) -> Vec<(u64, String)> {
        let entries = h.read(None).entries.into_iter();
        entries.map(|e| (e.unix_ms, e.result)).collect()
    }

    #[test]
    fn the_newest_are_kept_oldest_first_and_the_dropped_counted() {
        let h = History::new(3);
        for t in 1..=5 {
            h.record(entry(t, "ok"));
        }
        assert_eq!(times(&h), [3, 4, 5]);
        let reply = h.read(Some(2));
        assert_eq!(reply.entries.len(), 2);
        assert_eq!(reply.entries[0].unix_ms, 4);
        assert_eq!(reply.dropped, 2);
        assert_eq!(reply.capacity, 3);
        assert_eq!(h.read(Some(0)).entries.len(), 0);
    }

    #[test]
    fn a_call_that_finishes_late_takes_its_place_by_arrival() {
        let h = History::new(10);
        h.record(entry(1, "ok"));
        h.record(entry(5, "ok"));
        h.record(entry(3, "failed"));
        assert_eq!(times(&h), [1, 3, 5]);
    }

    #[test]
    fn a_flood_of_refusals_takes_a_quarter_of_the_ring_at_most() {
        let h = History::new(8);
        for t in 1..=4 {
            h.record(entry(t, "ok"));
        }
        for t in 10..1000 {
            h.record(entry(t, DENIED));
        }
        let ran = |times: std::ops::Range<u64>| times.map(|t| (t, "ok".to_owned()));
        let refused = |t| (t, DENIED.to_owned());
        // A quarter of 8 is 2: the two newest refusals, and every call that ran.
        let expected: Vec<_> = ran(1..5).chain([refused(998), refused(999)]).collect();
        assert_eq!(kept(&h), expected);
        assert_eq!(h.read(None).dropped, 990 - 2);
        // Calls that ran still push the oldest out, refusals included.
        for t in 2000..2008 {
            h.record(entry(t, "ok"));
        }
        assert!(h.read(None).entries.iter().all(|e| e.result == "ok"));
        // A full ring of calls that ran gives up its quarter to refusals, and no more.
        for t in 3000..4000 {
            h.record(entry(t, DENIED));
        }
        let expected: Vec<_> = ran(2002..2008)
            .chain([refused(3998), refused(3999)])
            .collect();
        assert_eq!(kept(&h), expected);
        // A ring too small for a quarter keeps no refusal at all, and counts it.
        let tiny = History::new(3);
        tiny.record(entry(1, "ok"));
        tiny.record(entry(2, DENIED));
        assert_eq!(times(&tiny), [1]);
        assert_eq!(tiny.read(None).dropped, 1);
    }
}
