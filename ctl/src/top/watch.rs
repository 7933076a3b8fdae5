//! Asking the daemons, once per refresh: one connection per daemon, kept open from one refresh
//! to the next and made again after a failure; every daemon asked in parallel (as many at once
//! as `ctl list` asks), each within one deadline, so a hung daemon shows as `hung` and holds
//! up a refresh by that bound at most.

use super::model::{Last, Reading, Row, Snapshot, Totals, Track};
use crate::client::Session;
use crate::error::CtlError;
use crate::list::{at_once, error_state, state};
use control_api::socket::{Found, Listed, SocketEnv, Target};
use control_api::{Command as _, CountersRequest, StatusRequest};
use futures::StreamExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Where a daemon is found.
enum Place {
    /// Named on the command line: looked up anew until it answers.
    Named(Target),
    /// In a listed directory: as listed, trust judged when listed.
    Listed(Listed),
}

/// One daemon being watched.
struct Watched {
    place: Place,
    session: Option<Session>,
    /// Calls of top's own this session has had answered: each was counted by the daemon
    /// before it answered.
    own: u64,
    track: Track,
    row: Row,
}

/// Why a refresh got no reading: the row's state, and the error.
type Failure = (&'static str, CtlError);

impl Watched {
    fn new(place: Place, name: &str, socket: PathBuf) -> Watched {
        Watched {
            place,
            session: None,
            own: 0,
            track: Track::default(),
            row: Row::new(name, socket),
        }
    }

    /// Asks the daemon, within `timeout`; the row says what came of it.
    async fn refresh(&mut self, env: &SocketEnv, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let asked =
            tokio::time::timeout_at(deadline.into(), self.ask(env, deadline, timeout)).await;
        let outcome = asked.unwrap_or_else(|_| {
            let pid = self.session.as_ref().map(|s| s.hello.pid);
            Err(("hung", hung(timeout, pid, &self.row.socket)))
        });
        match outcome {
            Ok(reading) => {
                let rates = self.track.answered(&reading);
                self.row.answered(&reading, rates);
            }
            Err((state, err)) => {
                self.track.failed();
                // A daemon that is slow keeps its connection (its answers come late, and a
                // new connection would only queue behind them); any other failure ends it.
                if state != "hung" {
                    self.session = None;
                }
                self.row.failed(state, err.to_string());
            }
        }
    }

    /// Connects if need be, then `status` and the server's counters.
    async fn ask(
        &mut self,
        env: &SocketEnv,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Reading, Failure> {
        let failed = |err: CtlError| (error_state(&err), err);
        if self.session.is_none() {
            let (found, name) = self.find(env)?;
            let session = Session::open_kept(&found, name.as_deref(), deadline, timeout)
                .await
                .map_err(failed)?;
            self.row.socket = session.path.clone();
            self.session = Some(session);
            self.own = 0;
        }
        let Some(session) = &self.session else {
            unreachable!("connected above")
        };
        let status = session
            .call(&StatusRequest::default())
            .await
            .map_err(failed)?;
        self.own += 1;
        let own = self.own;
        let has_counters = session
            .hello
            .operations
            .iter()
            .any(|op| op == CountersRequest::NAME);
        let totals = if has_counters {
            let prefix = Some("ctl.".to_owned());
            let reply = session
                .call(&CountersRequest { prefix })
                .await
                .map_err(failed)?;
            // Counted once it has read the counters: in the next reading, not this one.
            self.own += 1;
            Some(Totals::of(&reply.counters))
        } else {
            None
        };
        Ok(Reading {
            at: Instant::now(),
            pid: status.pid,
            uptime_ms: status.uptime_ms,
            state: state(&status),
            generation: status.config_generation,
            in_flight: status.in_flight,
            last: Last::of(&status),
            totals,
            own,
        })
    }

    /// Where to connect, and the name the daemon must answer as.
    fn find(&self, env: &SocketEnv) -> Result<(Vec<Found>, Option<String>), Failure> {
        match &self.place {
            Place::Listed(listed) => match &listed.trust {
                // Shown, never connected to: it may not be the daemon it is named after.
                Err(untrusted) => Err(("untrusted", CtlError::Untrusted(untrusted.clone()))),
                Ok(()) => Ok((vec![listed.found()], Some(listed.name.clone()))),
            },
            Place::Named(target) => {
                let lookup = target
                    .lookup(env)
                    .map_err(|e| ("error", CtlError::from(e)))?;
                if lookup.found.is_empty() {
                    // What it left says whether it stopped, died, or runs where no one looks.
                    let name = target.name().unwrap_or_default();
                    let err =
                        crate::judged(CtlError::nothing_found(&lookup), target, &lookup, name);
                    let state = match err {
                        CtlError::Untrusted(_) => "untrusted",
                        CtlError::Died { .. } => "died",
                        CtlError::Running { .. } => "elsewhere",
                        _ => "stopped",
                    };
                    return Err((state, err));
                }
                Ok((lookup.found, target.name().map(str::to_owned)))
            }
        }
    }
}

/// The error of a daemon that did not answer within `timeout`.
fn hung(timeout: Duration, pid: Option<u32>, socket: &std::path::Path) -> CtlError {
    CtlError::Timeout {
        timeout,
        hint: String::new(),
        pid,
        path: Some(socket.to_owned()),
    }
}

/// Every daemon watched: those named, or every one `ctl list` would list, as they come and go.
pub struct Fleet {
    env: SocketEnv,
    /// Only these, in this order; else every listed daemon, by name.
    named: bool,
    watched: Vec<Watched>,
    timeout: Duration,
    interval: Duration,
}

impl Fleet {
    /// The daemons `names` (each a name or a socket path), or with none, every one listed.
    pub fn new(names: &[String], timeout: Duration, interval: Duration) -> Result<Fleet, CtlError> {
        let env = SocketEnv::from_process();
        let mut watched = Vec::new();
        for given in names {
            let target = Target::parse(given)?;
            let socket = target
                .lookup(&env)?
                .looked
                .first()
                .cloned()
                .unwrap_or_default();
            watched.push(Watched::new(Place::Named(target), given, socket));
        }
        Ok(Fleet {
            env,
            named: !names.is_empty(),
            watched,
            timeout,
            interval,
        })
    }

    /// Where daemons are listed, for a view that found none.
    pub fn where_looked(&self) -> String {
        let dirs: Vec<String> = self
            .env
            .list_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(", ")
    }

    /// Asks every daemon once, in parallel, and returns what they said.
    pub async fn refresh(&mut self) -> Snapshot {
        if !self.named {
            self.relist();
        }
        let (env, timeout) = (&self.env, self.timeout);
        futures::stream::iter(self.watched.iter_mut().map(|w| w.refresh(env, timeout)))
            .buffer_unordered(at_once())
            .collect::<Vec<()>>()
            .await;
        Snapshot {
            time_unix_ms: now_unix_ms(),
            interval: self.interval,
            rows: self.watched.iter().map(|w| w.row.clone()).collect(),
        }
    }

    /// Takes in the daemons that appeared since the last refresh and lets go of those whose
    /// socket is gone; keeps the connections of the others. The same order as `ctl list`. A
    /// directory that cannot be read leaves the set as it was.
    fn relist(&mut self) {
        let Ok(listed) = self.env.list() else {
            return;
        };
        let mut old = std::mem::take(&mut self.watched);
        for l in listed {
            let kept = old
                .iter()
                .position(|w| matches!(&w.place, Place::Listed(p) if p.path == l.path));
            let watched = match kept {
                Some(i) => {
                    let mut w = old.swap_remove(i);
                    w.place = Place::Listed(l);
                    w
                }
                None => {
                    let (name, socket) = (l.name.clone(), l.path.clone());
                    Watched::new(Place::Listed(l), &name, socket)
                }
            };
            self.watched.push(watched);
        }
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
