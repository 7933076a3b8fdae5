//! The server's side of every call: a decoded [`Invocation`] is dispatched by name through the
//! registry, the only dispatcher, in three steps: admit (policy, existence, arguments,
//! shutdown), run (panics caught, work that needs more than read access on a task the server
//! owns), and one log line inside the connection's span. tarpc sees it as one [`Serve`].

use crate::audit::{Outcome, Who};
use crate::conn_state::ConnState;
use crate::handler::OpContext;
use crate::noise::Throttle;
use crate::panic::catching;
use crate::policy::{Access, Peer};
use crate::registry::{Entry, Replied};
use crate::state::Shared;
use control_api::codec::{Answer, Carrier, Invocation};
use control_api::text::{escape, Escaped};
use control_api::{CheckRequest, Command, HelloRequest, OpError, ReloadRequest};
use std::sync::Arc;
use std::time::Instant;
use tarpc::context::Context;
use tarpc::server::Serve;
use tarpc::ServerError;
use tracing::Instrument;

/// One connection's view of the server: the shared state plus who is at the other end.
#[derive(Clone)]
pub(crate) struct ControlService {
    pub shared: Arc<Shared>,
    pub peer: Peer,
    /// What the policy grants this caller, decided once per connection.
    pub level: Option<Access>,
    pub state: Arc<ConnState>,
    /// The connection's span (its id and the caller's pid and uid): the parent of each call's
    /// log line, rather than tarpc's request span, whose fields would double the line.
    pub span: tracing::Span,
}

impl ControlService {
    /// Checks, runs and logs one call.
    async fn dispatch(&self, call: Invocation, ctx: Context) -> Result<Replied, OpError> {
        let started = Instant::now();
        let _busy = self.state.begin_request();
        let (entry, needed) = match self.admit(&call) {
            Ok(admitted) => admitted,
            Err((err, needed)) => {
                // A refused attempt at a change is audit-worthy: recorded like a call that ran.
                if needed > Access::Read {
                    self.record_refusal(&call, &err).await;
                }
                self.state.refused();
                self.shared.counters.refused.inc();
                // Escaped: the name and the error's fields (an argument name) are the caller's,
                // and a newline in them would forge whole log lines.
                if self.shared.noise.refused_calls.admit() {
                    tracing::warn!(
                        parent: &self.span,
                        us = micros(started),
                        "{} refused: {}",
                        Escaped(&call.name),
                        escape(&err.to_string())
                    );
                }
                return Err(err);
            }
        };
        // `hello` does not count as let in: alternating it with refused calls must not keep
        // a connection open.
        if entry.name != HelloRequest::NAME {
            self.state.let_in();
        }
        let opctx = OpContext::new(entry.name, self.peer, ctx.deadline);
        let name = entry.name;
        let calls = entry.calls.clone();
        let work = catching(entry.run(opctx, call.args));
        let span = self.span.clone();
        let changes = needed > Access::Read;
        // Root's calls are logged one by one; anyone else's are rate-limited, since a caller
        // allowed to change something can call it in a loop.
        let throttle = (self.peer.uid != 0).then(|| self.shared.noise.calls.clone());
        // Who did what: begun now, so that the caller's command line is read while it runs.
        let audit = self.shared.audit.clone();
        let record = changes.then(|| audit.begin(Who::Peer(self.peer), name));
        let logged = async move {
            let result = work.await;
            if let Some(record) = record {
                audit.finish(record, outcome(name, &result)).await;
            }
            if let Some((ok, failed)) = calls {
                if result.is_ok() { ok } else { failed }.inc();
            }
            log_call(&span, name, changes, started, &result, throttle.as_ref());
            result
        };
        if !changes {
            // In the RPC's own future: dropped if the caller's deadline passes.
            return logged.await;
        }
        // On a task the server owns: completes even if the caller stops waiting.
        self.shared
            .work
            .spawn(logged.in_current_span())
            .await
            .unwrap_or_else(|e| {
                // Only reachable if the runtime is shutting down under us.
                Err(OpError::failed(format!(
                    "the operation's task was stopped: {e}"
                )))
            })
    }

    /// Records a refused call of an operation that needs more than read access before it is
    /// answered: the caller's command line is read while it still waits (once answered, it
    /// may be gone). The wait is bounded as every record's is, and costs only the refused.
    async fn record_refusal(&self, call: &Invocation, err: &OpError) {
        let Some(entry) = self.shared.registry.lookup(call) else {
            return;
        };
        let audit = &self.shared.audit;
        let record = audit.begin(Who::Peer(self.peer), entry.name);
        audit.finish(record, Outcome::failed(err)).await;
    }

    /// Whether this caller may run `call` now; the entry and the level it needs. Refused: why,
    /// and the level it would have needed.
    fn admit(&self, call: &Invocation) -> Result<(&Entry, Access), (OpError, Access)> {
        let registry = &self.shared.registry;
        let entry = registry.lookup(call);
        let needed = entry.map_or(Access::Read, |e| e.access(&call.args));
        // hello is never refused: a caller the policy keeps out still learns who is there.
        let is_hello = call.carrier == Carrier::Method(HelloRequest::NAME);
        // The policy first: a caller let in for nothing learns nothing more than `hello` told it.
        if !is_hello && self.level < Some(needed) {
            let denied = OpError::Denied {
                operation: call.name.clone(),
                uid: self.peer.uid,
                needed: Some(needed),
            };
            return Err((denied, needed));
        }
        let Some(entry) = entry else {
            let unsupported = OpError::Unsupported {
                operation: call.name.clone(),
                supported: registry.reachable(call),
            };
            return Err((unsupported, needed));
        };
        // What travels in `call` is checked against its schema, field by field; a method's
        // request is decoded as its type.
        if call.carrier == Carrier::Call {
            control_api::args::check(&entry.info.args, &call.args).map_err(|e| {
                let bad = OpError::BadArguments {
                    command: call.name.clone(),
                    field: e.field,
                    expected: e.expected,
                    message: e.message,
                };
                (bad, needed)
            })?;
        }
        if needed > Access::Read && self.shared.shutdown.is_cancelled() {
            return Err((OpError::ShuttingDown, needed));
        }
        Ok((entry, needed))
    }
}

/// How a call ended, for its record: `ok` and a short summary (what a reload changed), or the
/// error's kind and text.
fn outcome(name: &str, result: &Result<Replied, OpError>) -> Outcome {
    match result {
        Ok(replied) => {
            let summary = replied.value.get("summary").and_then(|v| v.as_str());
            let message = match (name, summary, replied.changed) {
                (ReloadRequest::NAME | CheckRequest::NAME, Some(summary), _) => summary.to_owned(),
                (_, _, Some(false)) => "nothing changed".to_owned(),
                _ => String::new(),
            };
            Outcome::ok(message)
        }
        Err(err) => Outcome::failed(err),
    }
}

fn micros(started: Instant) -> u64 {
    started.elapsed().as_micros() as u64
}

/// One short line per call, inside the connection's span (which names the connection and the
/// caller's pid and uid): calls that change something at INFO (WARN when they fail), reads at
/// DEBUG (monitoring polls `status`; its calls are not news). `registered` is the entry's name;
/// the error may carry what the caller sent, so it is escaped. With a `throttle` (a caller
/// other than root), every line but DEBUG goes through it.
fn log_call(
    span: &tracing::Span,
    registered: &str,
    changes: bool,
    started: Instant,
    result: &Result<Replied, OpError>,
    throttle: Option<&Arc<Throttle>>,
) {
    let us = micros(started);
    if let (Ok(_), false) = (result, changes) {
        return tracing::debug!(parent: span, us, "{registered} ok");
    }
    if throttle.is_some_and(|t| !t.admit()) {
        return;
    }
    match result {
        Ok(_) => tracing::info!(parent: span, us, "{registered} ok"),
        Err(err) if changes => {
            tracing::warn!(parent: span, us, "{registered} failed: {}", escape(&err.to_string()))
        }
        Err(err) => {
            tracing::info!(parent: span, us, "{registered} failed: {}", escape(&err.to_string()))
        }
    }
}

impl Serve for ControlService {
    type Req = Invocation;
    type Resp = Answer;

    async fn serve(self, ctx: Context, call: Invocation) -> Result<Answer, ServerError> {
        let carrier = call.carrier;
        let (result, changed) = match self.dispatch(call, ctx).await {
            Ok(Replied { value, changed }) => (Ok(value), changed),
            Err(err) => (Err(err), None),
        };
        Ok(Answer::new(carrier, result, changed))
    }
}
