//! Who did what: every call that needs more than read access (reload, check, rotate, drain,
//! resume, setting the log filter, the daemon's commands that are not read-only), refused ones
//! included, and each SIGHUP the server acts on, is recorded when it ends: in the bounded
//! `history` ([`History`](crate::ops::history::History)), and as one line to the system's log
//! ([`syslog`]). A record names the caller as the kernel and the system know it: uid and user
//! name, pid and the command line read from `/proc` at the call ([`caller`]).
//!
//! Everything in a record that someone else chose (the command line, a user name, an error's
//! text) is escaped before it reaches a line. Lines of callers other than root and the daemon's
//! own uid are rate-limited in syslog as in the daemon's log (the first of each 10 s, then a
//! count); the history keeps them all, within its bound.

pub(crate) mod caller;
pub(crate) mod syslog;

use crate::counters::ServerCounters;
use crate::noise::Throttle;
use crate::ops::history::{History, DENIED};
use crate::ops::reload::Reloads;
use crate::policy::Peer;
use caller::{Identity, Lookups, Pending};
use control_api::text::{escape, Escaped};
use control_api::{HistoryEntry, OpError};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};
use syslog::Syslog;

/// What the server records of its calls.
pub(crate) struct Audit {
    /// The daemon's name: the first word of each syslog line.
    name: String,
    own_uid: u32,
    pub history: Arc<History>,
    syslog: Option<Arc<Syslog>>,
    lookups: Lookups,
    /// For the generation active after a call; weak: the reloads' hooks must not hold this.
    reloads: Weak<Reloads>,
    /// Syslog lines of calls by callers other than root and the daemon's own uid.
    calls: Arc<Throttle>,
    /// Syslog lines of refused calls.
    refused: Arc<Throttle>,
}

/// Who made a call: the peer, or a signal.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Who {
    Peer(Peer),
    Signal(&'static str),
}

/// A call being recorded: started when it was admitted (or refused), finished when it ends.
pub(crate) struct Record {
    who: Who,
    operation: String,
    unix_ms: u64,
    started: Instant,
    identity: Option<Pending>,
}

/// How a call ended, for its record.
pub(crate) struct Outcome {
    /// `ok`, or the error's kind.
    pub result: &'static str,
    /// What the error said, or a short summary of success.
    pub message: String,
}

impl Outcome {
    /// Success, with a short summary.
    pub fn ok(message: String) -> Outcome {
        Outcome {
            result: "ok",
            message,
        }
    }

    /// The error's kind and text.
    pub fn failed(err: &OpError) -> Outcome {
        Outcome {
            result: err.kind(),
            message: err.to_string(),
        }
    }
}

impl Audit {
    pub fn new(
        name: &str,
        own_uid: u32,
        history_len: usize,
        syslog_path: Option<&Path>,
        counters: &ServerCounters,
    ) -> Audit {
        let syslog = syslog_path.map(|path| {
            Arc::new(Syslog::new(
                path,
                counters.audit_sent.clone(),
                counters.audit_dropped.clone(),
            ))
        });
        let summing = |what: &'static str| {
            let (syslog, name) = (syslog.clone(), escape(name).into_owned());
            Throttle::summing_up_to(what, move |n| {
                if let Some(syslog) = &syslog {
                    syslog.send(
                        syslog::WARNING,
                        &format!(
                            "{name}: {n} more {what} in the last {}s, not logged one by one \
                             (`ctl history {name}` keeps the latest)",
                            crate::noise::INTERVAL.as_secs()
                        ),
                    );
                }
            })
        };
        Audit {
            name: name.to_owned(),
            own_uid,
            history: History::new(history_len),
            calls: summing("calls by callers other than root"),
            refused: summing("refused calls"),
            syslog,
            lookups: Lookups::new(),
            reloads: Weak::new(),
        }
    }

    /// Lets records name the generation after each call.
    pub fn generations_from(&mut self, reloads: &Arc<Reloads>) {
        self.reloads = Arc::downgrade(reloads);
    }

    /// Starts the record of `operation` by `who`: for a peer, its identity is read from now
    /// on, while the call runs.
    pub fn begin(&self, who: Who, operation: &str) -> Record {
        let identity = match who {
            Who::Peer(peer) => Some(self.lookups.start(peer, self.trusted(&peer))),
            Who::Signal(_) => None,
        };
        Record {
            who,
            operation: operation.to_owned(),
            unix_ms: unix_ms(),
            started: Instant::now(),
            identity,
        }
    }

    fn trusted(&self, peer: &Peer) -> bool {
        peer.uid == 0 || peer.uid == self.own_uid
    }

    /// Ends `record` with `outcome`: into the history, and to syslog (rate-limited for callers
    /// other than root and the daemon's own uid).
    pub async fn finish(&self, record: Record, outcome: Outcome) {
        let duration_ms = record.started.elapsed().as_millis() as u64;
        let identity = match record.identity {
            Some(pending) => pending.identity().await,
            None => Identity::unread("signal"),
        };
        let generation = self.reloads.upgrade().map_or(1, |r| r.current().0);
        let (uid, pid, signal) = match record.who {
            Who::Peer(peer) => (Some(peer.uid), peer.pid, None),
            Who::Signal(name) => (None, None, Some(name.to_owned())),
        };
        let (command_line, command_line_unread) = match identity.command_line {
            Ok(line) => (Some(line), None),
            Err(why) => (None, Some(why.to_owned())),
        };
        let entry = HistoryEntry {
            unix_ms: record.unix_ms,
            operation: record.operation,
            uid,
            user: identity.user,
            pid,
            command_line,
            command_line_unread,
            ancestors: identity.ancestors,
            signal,
            result: outcome.result.to_owned(),
            message: cut(outcome.message, 1024),
            duration_ms,
            generation,
        };
        if let Some(syslog) = &self.syslog {
            let throttle = match record.who {
                Who::Peer(peer) if !self.trusted(&peer) => Some(match entry.result == DENIED {
                    true => &self.refused,
                    false => &self.calls,
                }),
                _ => None,
            };
            if throttle.is_none_or(|t| t.admit()) {
                let severity = match entry.result == "ok" {
                    true => syslog::NOTICE,
                    false => syslog::WARNING,
                };
                syslog.send(severity, &line(&self.name, &entry));
            }
        }
        self.history.record(entry);
    }
}

/// The syslog line of `entry`, every part someone else chose escaped:
/// `demo: reload by uid 1000 (alice) pid 4242 "ctl reload demo": ok (generation 3) in 12 ms`.
pub(crate) fn line(daemon: &str, entry: &HistoryEntry) -> String {
    let mut line = format!(
        "{}: {} by {}: {} (generation {}) in {} ms",
        Escaped(daemon),
        Escaped(&entry.operation),
        entry.caller(),
        Escaped(&entry.result),
        entry.generation,
        entry.duration_ms
    );
    if !entry.message.is_empty() {
        line.push_str(&format!(": {}", Escaped(&entry.message)));
    }
    line
}

/// At most `max` bytes of `text`, cut at a character and marked.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        truncate_marked(&mut text, max, "...");
    }
    text
}

/// Truncates `text` to at most `at` bytes, at a character, and appends `mark`.
pub(crate) fn truncate_marked(text: &mut String, mut at: usize, mark: &str) {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    text.push_str(mark);
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_caller_and_escapes_what_others_chose() {
        let entry = HistoryEntry {
            operation: "reload".into(),
            uid: Some(1000),
            user: Some("alice".into()),
            pid: Some(4242),
            command_line: Some("ctl reload demo".into()),
            result: "ok".into(),
            duration_ms: 12,
            generation: 3,
            ..HistoryEntry::default()
        };
        assert_eq!(
            line("demo", &entry),
            "demo: reload by uid 1000 (alice) pid 4242 \"ctl reload demo\": ok (generation 3) \
             in 12 ms"
        );
        let hostile = HistoryEntry {
            command_line: Some("x\" pid 1 \"y\n<85>forged".into()),
            user: Some("bob\u{202e}".into()),
            message: "bad\nline".into(),
            result: "failed".into(),
            ..entry.clone()
        };
        let l = line("demo", &hostile);
        assert!(!l.contains('\n') && !l.contains('\u{202e}'), "{l}");
        assert!(
            l.contains(r#""x\" pid 1 \"y\n<85>forged""#),
            "one quoted command line: {l}"
        );
        assert!(l.ends_with(": bad\\nline"), "{l}");
        let gone = HistoryEntry {
            command_line: None,
            command_line_unread: Some("gone".into()),
            user: None,
            ..entry.clone()
        };
        assert!(line("demo", &gone).contains("by uid 1000 pid 4242 (gone):"));
        let signal = HistoryEntry {
            signal: Some("SIGHUP".into()),
            uid: None,
            pid: None,
            ..entry
        };
        assert!(line("demo", &signal).starts_with("demo: reload by signal SIGHUP: ok"));
    }
}
