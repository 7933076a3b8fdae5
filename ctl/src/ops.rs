//! The operations on one daemon, each in one place: its command line, the request it sends and
//! the reply it shows. Every built-in is a [`Command`](control_api::Command), so an arm here is
//! all `ctl` needs for a new one.

use crate::cli::{CallArgs, CountersArgs, Global, HistoryArgs, LogLevelArgs, TargetArg};
use crate::client::Session;
use crate::error::CtlError;
use crate::output::{self, Reply};
use clap::Subcommand;
use control_api::Command as _;
use control_api::{
    CallReply, CheckRequest, CountersReply, CountersRequest, DescribeRequest, DrainRequest,
    HelloRequest, HistoryRequest, LogLevelRequest, PingRequest, ReloadRequest, ResumeRequest,
    RotateRequest, StatusRequest,
};
use serde_json::Value;
use std::time::Instant;

/// What to ask one daemon.
#[derive(Debug, Subcommand)]
pub enum Op {
    /// Show what the daemon is doing: pid, uptime, config generation, last reload and rotate,
    /// log files (and any still written at a renamed path)
    Status(TargetArg),
    /// Re-read the configuration; a bad one is refused and the old one stays active
    Reload(TargetArg),
    /// Validate the configuration as a reload would, apply nothing, and say what a reload
    /// would change
    ///
    /// Exit 0 when the configuration on disk is valid (the output says what a reload would
    /// change, or that it would change nothing), 1 when a reload would refuse it (the message
    /// names the file, line and reason). The active configuration and its generation stay as
    /// they are. A daemon without check exits 3.
    Check(TargetArg),
    /// Show the daemon's counters and gauges, and the server's own (ctl.*)
    ///
    /// One aligned `name  value` line each, optionally only those whose name starts with
    /// PREFIX. With --prometheus, the Prometheus text exposition format instead (names made
    /// valid metric names, counters ending in _total, each sample labelled daemon="NAME"), for
    /// node_exporter's textfile collector.
    Counters(CountersArgs),
    /// Reopen log files after logrotate renamed them (the postrotate command)
    Rotate(TargetArg),
    /// Stop taking new work and finish what is in flight, within the timeout
    Drain(TargetArg),
    /// Undo a drain: take new work again (a drain still waiting ends, exit 1)
    ///
    /// Exit 0 also when the daemon was not draining. A daemon that cannot resume (no drain
    /// support, or older than resume) exits 3.
    Resume(TargetArg),
    /// Show the daemon's protocol version and the operations it supports
    Hello(TargetArg),
    /// Show the daemon's log filter, or validate and set a new one (e.g. debug,
    /// info,my_daemon::net=trace); a bad filter is refused and the old one kept
    #[command(name = "log-level")]
    LogLevel(LogLevelArgs),
    /// List the daemon's operations and its own commands, with doc line, access level and
    /// arguments
    Describe(TargetArg),
    /// Run one of the daemon's own commands (see `ctl describe TARGET`)
    ///
    /// Arguments are KEY=VALUE, typed by the command's schema: numbers, true/false, text, and
    /// lists as comma-separated items; or one JSON object with --args (KEY=VALUE then override
    /// it). An unknown argument or a value of the wrong type exits 2 naming it; an unknown
    /// command exits 3 and lists the daemon's commands. The reply is shown as aligned
    /// key/value lines, or in `result` with --json; `changed` there (true, false, or null when
    /// the daemon does not say) tells whether the command changed anything, and a text reply
    /// ends with `(nothing changed: ...)` when the daemon says it did not.
    Call(CallArgs),
    /// Time one round trip to the daemon: a call it answers at once, after `hello`
    ///
    /// Shows how long the answer took, in milliseconds; with --json, `round_trip_us`. A daemon
    /// older than ping exits 3.
    Ping(TargetArg),
    /// Show who changed what: the daemon's last calls that needed more than read access
    ///
    /// One line per call, oldest first, newest last, as a log reads: the time (UTC, RFC 3339),
    /// the operation, its result (ok, failed, denied, ...), how long it took, the configuration
    /// generation after it, and the caller as the kernel and the system know it: uid and user
    /// name, pid and the command line read from /proc at the call (`(gone)` when it had exited
    /// already), or `signal SIGHUP`; then what it said. Refused calls appear as `denied`. The
    /// daemon keeps the newest 100 (its choice); the first line says how many older ones it
    /// dropped. Needs read access. With --json, the daemon's reply: `entries`, `dropped`,
    /// `capacity`. A daemon older than history exits 3.
    History(HistoryArgs),
}

impl Op {
    /// The operation's name, as in `hello` and in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Status(_) => StatusRequest::NAME,
            Op::Reload(_) => ReloadRequest::NAME,
            Op::Check(_) => CheckRequest::NAME,
            Op::Counters(_) => CountersRequest::NAME,
            Op::Rotate(_) => RotateRequest::NAME,
            Op::Drain(_) => DrainRequest::NAME,
            Op::Resume(_) => ResumeRequest::NAME,
            Op::Hello(_) => HelloRequest::NAME,
            Op::LogLevel(_) => LogLevelRequest::NAME,
            Op::Describe(_) => DescribeRequest::NAME,
            Op::Call(_) => "call",
            Op::Ping(_) => PingRequest::NAME,
            Op::History(_) => HistoryRequest::NAME,
        }
    }

    /// The daemon it is for, as given.
    pub fn target(&self) -> &String {
        match self {
            Op::Status(t)
            | Op::Reload(t)
            | Op::Check(t)
            | Op::Rotate(t)
            | Op::Drain(t)
            | Op::Resume(t)
            | Op::Hello(t)
            | Op::Describe(t)
            | Op::Ping(t) => &t.target,
            Op::Counters(c) => &c.daemon.target,
            Op::LogLevel(a) => &a.daemon.target,
            Op::Call(c) => &c.daemon.target,
            Op::History(h) => &h.daemon.target,
        }
    }

    /// Runs it on `session`'s daemon.
    pub async fn run(&self, session: &Session, global: &Global) -> Result<Reply, CtlError> {
        Ok(match self {
            Op::Status(_) => Reply::Status(session.status().await?),
            Op::Reload(_) => Reply::Reload(session.call(&ReloadRequest {}).await?),
            Op::Check(_) => Reply::Check(session.call(&CheckRequest {}).await?),
            Op::Counters(c) => {
                let prefix = c.prefix.clone();
                counters(c, session.call(&CountersRequest { prefix }).await?)
            }
            Op::Rotate(_) => Reply::Rotate(session.call(&RotateRequest {}).await?),
            Op::Drain(_) => {
                let mut progress = output::DrainProgress::new(global, &session.hello.name);
                let reply = session.drain(|n| progress.update(n)).await;
                progress.finish();
                Reply::Drain(reply?)
            }
            Op::Resume(_) => Reply::Resume(session.call(&ResumeRequest {}).await?),
            Op::Hello(_) => Reply::Hello,
            Op::LogLevel(a) => {
                let filter = a.filter.clone();
                Reply::LogLevel(session.call(&LogLevelRequest { filter }).await?)
            }
            Op::Describe(_) => Reply::Describe(session.call(&DescribeRequest {}).await?),
            Op::Call(c) => {
                let described = session.call(&DescribeRequest {}).await?;
                let info = crate::call::find(&described, &c.command)?;
                let args = crate::call::arguments(c, info)?;
                Reply::Call(session.command(&info.name, args).await?)
            }
            Op::Ping(_) => {
                let sent = Instant::now();
                session.call(&PingRequest {}).await?;
                pinged(sent.elapsed().as_micros() as u64)
            }
            Op::History(h) => {
                Reply::History(session.call(&HistoryRequest { limit: h.limit }).await?)
            }
        })
    }

    /// The words after `ctl --json --timeout T` that ask for this operation on the daemon
    /// `name` of another host: its options, then `--`, then its target and other positionals,
    /// so that no value of the caller's (a filter, a `KEY=VALUE`) can read as an option there.
    /// Output formats are chosen here, not there: `--prometheus` is made from the JSON reply.
    pub fn remote_args(&self, name: &str) -> Vec<String> {
        let mut options = Vec::new();
        let mut after = Vec::new();
        match self {
            Op::Counters(c) => after.extend(c.prefix.clone()),
            Op::LogLevel(a) => after.extend(a.filter.clone()),
            Op::Call(c) => {
                if let Some(args) = &c.args {
                    options.extend(["--args".to_owned(), args.clone()]);
                }
                after.push(c.command.clone());
                after.extend(c.pairs.iter().cloned());
            }
            Op::History(h) => {
                if let Some(limit) = h.limit {
                    options.extend(["--limit".to_owned(), limit.to_string()]);
                }
            }
            _ => {}
        }
        let mut words = vec![self.name().to_owned()];
        words.extend(options);
        words.extend(["--".to_owned(), name.to_owned()]);
        words.extend(after);
        words
    }

    /// The reply a remote `ctl --json` gave (its document's `result`, and `changed` for
    /// `call`), as the typed reply a local call gives, shown the same way.
    pub fn reply_from_remote(
        &self,
        result: Value,
        changed: &Value,
    ) -> Result<Reply, serde_json::Error> {
        use serde_json::from_value;
        Ok(match self {
            Op::Status(_) => Reply::Status(output::status_from_json(result)?),
            Op::Reload(_) => Reply::Reload(from_value(result)?),
            Op::Check(_) => Reply::Check(from_value(result)?),
            Op::Counters(c) => counters(c, from_value(result)?),
            Op::Rotate(_) => Reply::Rotate(from_value(result)?),
            Op::Drain(_) => Reply::Drain(from_value(result)?),
            Op::Resume(_) => Reply::Resume(from_value(result)?),
            Op::Hello(_) => Reply::Hello,
            Op::LogLevel(_) => Reply::LogLevel(from_value(result)?),
            Op::Describe(_) => Reply::Describe(from_value(result)?),
            Op::Call(_) => Reply::Call(CallReply {
                reply: result,
                changed: from_value(changed.clone())?,
            }),
            Op::Ping(_) => {
                #[derive(serde::Deserialize)]
                struct Ping {
                    round_trip_us: u64,
                }
                pinged(from_value::<Ping>(result)?.round_trip_us)
            }
            Op::History(_) => Reply::History(from_value(result)?),
        })
    }
}

/// A counters reply as `c` asked to see it.
fn counters(c: &CountersArgs, reply: CountersReply) -> Reply {
    match (&c.prefix, c.prometheus) {
        (_, true) => Reply::Exposition(reply),
        // Not "no counters": the daemon has some, none of them with that name.
        (Some(prefix), false) if reply.counters.is_empty() => Reply::Said {
            text: format!("no counter's name starts with {}", output::clean(prefix)),
            doc: serde_json::to_value(&reply).unwrap_or_default(),
        },
        _ => Reply::Counters(reply),
    }
}

/// A ping that took `us` microseconds.
fn pinged(us: u64) -> Reply {
    Reply::Said {
        doc: serde_json::json!({ "round_trip_us": us }),
        text: format!("answered in {:.2} ms", us as f64 / 1000.0),
    }
}
