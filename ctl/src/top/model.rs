//! What `ctl top` shows, from what the daemons answered: readings, the rates between two of
//! them, one row per daemon, and the `--json` document of a refresh. No I/O here, so the rates
//! and states are tested without a daemon.

use control_api::{CounterKind, CounterValue, Status};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One daemon's answer to one refresh: its `status`, and the server's call counters.
#[derive(Clone, Debug)]
pub struct Reading {
    /// When the counters were read (or the status, without counters).
    pub at: Instant,
    /// Which process answered: a daemon restarted under the same name has another, and its
    /// counters started again from zero.
    pub pid: u32,
    pub uptime_ms: u64,
    pub state: &'static str,
    pub generation: u64,
    pub in_flight: u64,
    pub last: Option<Last>,
    /// The calls counted so far; `None` from a daemon without `counters`.
    pub totals: Option<Totals>,
    /// How many of `ctl top`'s own calls the daemon had counted in `totals`: not the
    /// daemon's traffic, so taken off the rate.
    pub own: u64,
}

/// The last reload or rotate, whichever finished later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Last {
    pub operation: &'static str,
    pub ok: bool,
    /// The daemon's own words: escaped before it is shown.
    pub message: String,
    pub finished_unix_ms: u64,
}

impl Last {
    /// What `status` says about the last reload and the last rotate, the later of the two.
    pub fn of(status: &Status) -> Option<Last> {
        let reload = status.last_reload.as_ref().map(|r| Last {
            operation: "reload",
            ok: r.ok,
            message: r.message.clone(),
            finished_unix_ms: r.finished_unix_ms,
        });
        let rotate = status.last_rotate.as_ref().map(|r| Last {
            operation: "rotate",
            ok: r.ok,
            message: r.message.clone(),
            finished_unix_ms: r.finished_unix_ms,
        });
        // Of two that finished at once, the rotate: the last of equals is the max.
        [reload, rotate]
            .into_iter()
            .flatten()
            .max_by_key(|l| l.finished_unix_ms)
    }

    /// How long before `now_unix_ms` it finished (0 for a clock that went back).
    pub fn ago_ms(&self, now_unix_ms: u64) -> u64 {
        now_unix_ms.saturating_sub(self.finished_unix_ms)
    }
}

/// Calls a daemon's server has counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Every call: succeeded, failed, or refused before it ran.
    pub calls: u64,
    /// Those that failed or were refused.
    pub errors: u64,
}

impl Totals {
    /// From the server's own counters: `ctl.calls.OP.ok`, `ctl.calls.OP.failed` and
    /// `ctl.refused`. Gauges and the daemon's own counters are not calls.
    pub fn of(counters: &[CounterValue]) -> Totals {
        let mut totals = Totals::default();
        for c in counters.iter().filter(|c| c.kind == CounterKind::Counter) {
            let value = u64::try_from(c.value).unwrap_or(0);
            let failed = c.name == "ctl.refused"
                || (c.name.starts_with("ctl.calls.") && c.name.ends_with(".failed"));
            let ok = c.name.starts_with("ctl.calls.") && c.name.ends_with(".ok");
            if failed || ok {
                totals.calls = totals.calls.saturating_add(value);
            }
            if failed {
                totals.errors = totals.errors.saturating_add(value);
            }
        }
        totals
    }
}

/// Calls and errors per second between two readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub calls: f64,
    pub errors: f64,
}

/// The rates from `before` to `now`, or `None` where there are none to tell: a reading
/// without counters, another process (restarted: its counters began again at zero), counters
/// that went down, no time between them. Never negative. ctl top's own calls in between are
/// not counted; errors are all the daemon's (a reading exists only when top's calls succeeded).
pub fn rates(before: &Reading, now: &Reading) -> Option<Rates> {
    let (b, n) = (before.totals?, now.totals?);
    if before.pid != now.pid || now.uptime_ms < before.uptime_ms {
        return None;
    }
    let calls = n.calls.checked_sub(b.calls)?;
    let errors = n.errors.checked_sub(b.errors)?;
    let secs = now.at.checked_duration_since(before.at)?.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let own = now.own.saturating_sub(before.own);
    let calls = calls.saturating_sub(own).max(errors);
    Some(Rates {
        calls: calls as f64 / secs,
        errors: errors as f64 / secs,
    })
}

/// One daemon's history, as far as rates need it: its last good reading.
#[derive(Debug, Default)]
pub struct Track {
    last: Option<Reading>,
}

impl Track {
    /// A new reading; the rates since the one before, if it followed it without a failure.
    pub fn answered(&mut self, reading: &Reading) -> Option<Rates> {
        let rates = self.last.as_ref().and_then(|before| rates(before, reading));
        self.last = Some(reading.clone());
        rates
    }

    /// A refresh without an answer: whatever top's calls left counted (or not) in the
    /// daemon is unknown, so the next reading starts afresh (its rates are `-`).
    pub fn failed(&mut self) {
        self.last = None;
    }
}

/// One row of the view, one object of the JSON document.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// As listed or given: the socket's name, or the NAME on the command line.
    pub name: String,
    pub socket: PathBuf,
    /// `serving`, `draining`, or why there is no reading (`hung`, `died`, `stopped`, ...).
    pub state: &'static str,
    pub generation: Option<u64>,
    pub in_flight: Option<u64>,
    pub rates: Option<Rates>,
    pub last: Option<Last>,
    /// What went wrong, when there is no reading: ctl's own words, with the daemon's inside.
    pub error: Option<String>,
}

impl Row {
    /// Not asked yet.
    pub fn new(name: &str, socket: PathBuf) -> Row {
        Row {
            name: name.to_owned(),
            socket,
            state: "-",
            generation: None,
            in_flight: None,
            rates: None,
            last: None,
            error: None,
        }
    }

    /// A daemon that answered.
    pub fn answered(&mut self, reading: &Reading, rates: Option<Rates>) {
        self.state = reading.state;
        self.generation = Some(reading.generation);
        self.in_flight = Some(reading.in_flight);
        self.rates = rates;
        self.last = reading.last.clone();
        self.error = None;
    }

    /// A daemon that did not answer: `state` says how, `error` why.
    pub fn failed(&mut self, state: &'static str, error: String) {
        *self = Row {
            state,
            error: Some(error),
            ..Row::new(&self.name, self.socket.clone())
        };
    }

    fn to_json(&self, now_unix_ms: u64) -> Value {
        let rate = |r: Option<f64>| r.map(round);
        json!({
            "name": self.name,
            "socket": self.socket,
            "state": self.state,
            "generation": self.generation,
            "in_flight": self.in_flight,
            "calls_per_second": rate(self.rates.map(|r| r.calls)),
            "errors_per_second": rate(self.rates.map(|r| r.errors)),
            "last": self.last.as_ref().map(|l| json!({
                "operation": l.operation,
                "ok": l.ok,
                "message": l.message,
                "ago_ms": l.ago_ms(now_unix_ms),
            })),
            "error": self.error,
        })
    }
}

/// Two decimals: a rate over a second of wall clock is no more precise than that.
fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What one refresh found.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub time_unix_ms: u64,
    pub interval: Duration,
    pub rows: Vec<Row>,
}

impl Snapshot {
    /// The `--json` document of this refresh (docs/operators.md, `ctl top`).
    pub fn to_json(&self) -> Value {
        let daemons: Vec<Value> = self
            .rows
            .iter()
            .map(|r| r.to_json(self.time_unix_ms))
            .collect();
        json!({
            "time_unix_ms": self.time_unix_ms,
            "interval_ms": self.interval.as_millis() as u64,
            "daemons": daemons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_api::{ReloadOutcome, RotateOutcome};

    fn counter(name: &str, value: i64) -> CounterValue {
        CounterValue {
            name: name.into(),
            kind: CounterKind::Counter,
            value,
            help: String::new(),
        }
    }

    fn reading(
        at: Instant,
        pid: u32,
        uptime_ms: u64,
        calls: u64,
        errors: u64,
        own: u64,
    ) -> Reading {
        Reading {
            at,
            pid,
            uptime_ms,
            state: "serving",
            generation: 1,
            in_flight: 0,
            last: None,
            totals: Some(Totals { calls, errors }),
            own,
        }
    }

    fn per_second(calls: f64, errors: f64) -> Rates {
        Rates { calls, errors }
    }

    #[test]
    fn totals_count_every_call_and_refusal_and_nothing_else() {
        let gauge = CounterValue {
            kind: CounterKind::Gauge,
            ..counter("ctl.calls.fake.ok", 1000)
        };
        let t = Totals::of(&[
            counter("ctl.calls.status.ok", 10),
            counter("ctl.calls.status.failed", 0),
            counter("ctl.calls.reload.ok", 2),
            counter("ctl.calls.reload.failed", 3),
            counter("ctl.refused", 4),
            counter("ctl.connections.accepted", 99),
            counter("ctl.reloads.failed", 3),
            counter("demo.lines_written", 500),
            gauge,
        ]);
        assert_eq!(
            t,
            Totals {
                calls: 19,
                errors: 7
            }
        );
    }

    #[test]
    fn rates_are_the_difference_over_the_time_less_tops_own_calls() {
        let t0 = Instant::now();
        let before = reading(t0, 7, 1000, 100, 4, 10);
        // 2 s later: 22 more calls, 2 of them top's own (its counters, then its status).
        let now = reading(t0 + Duration::from_secs(2), 7, 3000, 122, 10, 12);
        assert_eq!(rates(&before, &now).unwrap(), per_second(10.0, 3.0));
        // Only top's own calls: nothing else happened.
        let idle = reading(t0 + Duration::from_secs(1), 7, 2000, 102, 4, 12);
        assert_eq!(rates(&before, &idle).unwrap(), per_second(0.0, 0.0));
    }

    #[test]
    fn a_daemon_that_restarted_gives_no_rate_never_a_negative_one() {
        let t0 = Instant::now();
        let before = reading(t0, 7, 60_000, 5000, 40, 10);
        let later = t0 + Duration::from_secs(1);
        for now in [
            // Same pid (a container's pid 1), counters and uptime back near zero.
            reading(later, 7, 500, 3, 0, 2),
            // Another pid with counters that happen to be higher.
            reading(later, 8, 90_000, 9000, 50, 12),
            // Counters that went down in the same process (they never should): no rate.
            reading(later, 7, 61_000, 4000, 40, 12),
            reading(later, 7, 61_000, 5100, 39, 12),
            // No counters (a daemon without the operation), or no time between: no rate.
            Reading {
                totals: None,
                ..reading(later, 7, 61_000, 0, 0, 12)
            },
            reading(t0, 7, 60_000, 5002, 40, 12),
        ] {
            assert_eq!(rates(&before, &now), None, "{now:?}");
        }
        // top counted more of its own than the daemon: zero, not negative.
        let r = rates(&before, &reading(later, 7, 61_000, 5001, 40, 15)).unwrap();
        assert_eq!(r, per_second(0.0, 0.0));
    }

    #[test]
    fn a_hung_daemon_shows_hung_without_numbers_and_its_next_answer_starts_afresh() {
        let t0 = Instant::now();
        let mut track = Track::default();
        let mut row = Row::new("web", "/run/ctl/web.sock".into());
        let first = reading(t0, 7, 1000, 10, 0, 2);
        assert_eq!(
            track.answered(&first),
            None,
            "the first refresh has no rate"
        );
        row.answered(&first, None);
        let second = reading(t0 + Duration::from_secs(1), 7, 2000, 22, 0, 4);
        let r = track.answered(&second);
        assert_eq!(r, Some(per_second(10.0, 0.0)));
        row.answered(&second, r);
        assert_eq!(row.generation, Some(1));

        track.failed();
        row.failed("hung", "no answer within 1s".into());
        assert_eq!(row.state, "hung");
        assert_eq!(
            (row.generation, row.in_flight, row.rates),
            (None, None, None)
        );
        assert_eq!(row.error.as_deref(), Some("no answer within 1s"));
        assert_eq!(row.name, "web");

        // Whether its calls were counted while it hung is unknown: no rate from before.
        let back = reading(t0 + Duration::from_secs(5), 7, 6000, 60, 0, 6);
        assert_eq!(track.answered(&back), None);
        row.answered(&back, None);
        assert_eq!((row.state, row.error.as_deref()), ("serving", None));
    }

    #[test]
    fn last_is_the_later_of_reload_and_rotate() {
        let mut s = Status::default();
        assert_eq!(Last::of(&s), None);
        s.last_reload = Some(ReloadOutcome {
            ok: true,
            generation: 2,
            message: "interval_ms 100 -> 50".into(),
            finished_unix_ms: 1000,
        });
        assert_eq!(Last::of(&s).unwrap().operation, "reload");
        s.last_rotate = Some(RotateOutcome {
            ok: false,
            message: "cannot reopen".into(),
            finished_unix_ms: 2000,
            ..RotateOutcome::default()
        });
        let last = Last::of(&s).unwrap();
        assert_eq!((last.operation, last.ok), ("rotate", false));
        assert_eq!(last.ago_ms(2500), 500);
        assert_eq!(last.ago_ms(1500), 0, "a clock that went back");
    }

    #[test]
    fn the_json_document_has_every_field_null_where_unknown() {
        let t0 = Instant::now();
        let mut good = Row::new("web", "/s/web.sock".into());
        let r = Reading {
            in_flight: 3,
            generation: 4,
            last: Some(Last {
                operation: "reload",
                ok: false,
                message: "bad\x1b[2J".into(),
                finished_unix_ms: 9000,
            }),
            ..reading(t0, 7, 1, 0, 0, 0)
        };
        good.answered(&r, Some(per_second(10.0 / 3.0, 0.5)));
        let mut hung = Row::new("db", "/s/db.sock".into());
        hung.failed("hung", "no answer".into());
        let doc = Snapshot {
            time_unix_ms: 10_000,
            interval: Duration::from_millis(200),
            rows: vec![good, hung],
        }
        .to_json();
        assert_eq!(
            doc,
            json!({
                "time_unix_ms": 10_000,
                "interval_ms": 200,
                "daemons": [
                    {"name": "web", "socket": "/s/web.sock", "state": "serving",
                     "generation": 4, "in_flight": 3,
                     "calls_per_second": 3.33, "errors_per_second": 0.5,
                     "last": {"operation": "reload", "ok": false, "message": "bad\x1b[2J",
                              "ago_ms": 1000},
                     "error": null},
                    {"name": "db", "socket": "/s/db.sock", "state": "hung",
                     "generation": null, "in_flight": null,
                     "calls_per_second": null, "errors_per_second": null,
                     "last": null, "error": "no answer"},
                ]
            })
        );
    }
}
