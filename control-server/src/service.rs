//! The [`Control`] implementation between tarpc and the registry: every method, the generic
//! `call` included, is dispatched by name in three steps: admit (policy, existence, arguments,
//! shutdown), run (panics caught, work that needs more than read access on a task the server
//! owns), and one log line inside the connection's span.

use crate::conn_state::ConnState;
use crate::handler::OpContext;
use crate::noise::Throttle;
use crate::panic::catching;
use crate::policy::{Access, Peer};
use crate::registry::Entry;
use crate::state::Shared;
use control_api::text::{escape, Escaped};
use control_api::{
    CallReply, CallRequest, CheckReply, CheckRequest, Control, CountersReply, CountersRequest,
    DescribeRequest, Description, DrainReply, DrainRequest, Hello, HelloRequest, LogLevelReply,
    LogLevelRequest, OpError, Operation, OperationKind, ReloadReply, ReloadRequest, ResumeReply,
    ResumeRequest, RotateReply, RotateRequest, Status, StatusRequest, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tarpc::context::Context;
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

/// Which names a dispatch may reach.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A method of its own (`status`, `reload`, ...).
    Method,
    /// The generic `call`: the daemon's own commands only, arguments checked by schema.
    Call,
}

impl ControlService {
    /// Checks, runs and logs one call of the operation `name`.
    async fn dispatch(
        &self,
        name: &str,
        args: Value,
        ctx: Context,
        via: Via,
    ) -> Result<Value, OpError> {
        let started = Instant::now();
        let _busy = self.state.begin_request();
        let (entry, needed) = match self.admit(name, &args, via) {
            Ok(admitted) => admitted,
            Err(err) => {
                self.state.refused();
                self.shared.counters.refused.inc();
                // Escaped: the name and the error's fields (an argument name) are the caller's,
                // and a newline in them would forge whole log lines.
                if self.shared.noise.refused_calls.admit() {
                    tracing::warn!(
                        parent: &self.span,
                        us = micros(started),
                        "{} refused: {}",
                        Escaped(name),
                        escape(&err.to_string())
                    );
                }
                return Err(err);
            }
        };
        // `hello` does not count as let in: alternating it with refused calls must not keep
        // a connection open.
        if entry.name != Operation::Hello.as_str() {
            self.state.let_in();
        }
        let opctx = OpContext::new(entry.name, self.peer, ctx.deadline);
        let name = entry.name;
        let calls = entry.calls.clone();
        let work = catching(entry.run(opctx, args));
        let span = self.span.clone();
        let changes = needed > Access::Read;
        // Root's calls are logged one by one; anyone else's are rate-limited, since a caller
        // allowed to change something can call it in a loop.
        let throttle = (self.peer.uid != 0).then(|| self.shared.noise.calls.clone());
        let logged = async move {
            let result = work.await;
            if let Some((ok, failed)) = calls {
                if result.is_ok() {
                    ok.inc()
                } else {
                    failed.inc()
                }
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

    /// Whether this caller may run `name` with `args` now; the entry and the level it needs.
    fn admit(&self, name: &str, args: &Value, via: Via) -> Result<(&Entry, Access), OpError> {
        let registry = &self.shared.registry;
        let wanted = match via {
            Via::Method => None,
            Via::Call => Some(OperationKind::Command),
        };
        let entry = registry
            .get(name)
            .filter(|e| wanted.is_none_or(|kind| e.info.kind == kind));
        let needed = entry.map_or(Access::Read, |e| e.access(args));
        // hello is never refused: a caller the policy keeps out still learns who is there.
        let is_hello = via == Via::Method && name == Operation::Hello.as_str();
        // The policy first: a caller let in for nothing learns nothing more than `hello` told it.
        if !is_hello && self.level < Some(needed) {
            return Err(OpError::Denied {
                operation: name.to_owned(),
                uid: self.peer.uid,
                needed: Some(needed),
            });
        }
        let Some(entry) = entry else {
            return Err(OpError::Unsupported {
                operation: name.to_owned(),
                supported: registry.names(wanted),
            });
        };
        if via == Via::Call {
            control_api::args::check(&entry.info.args, args).map_err(|e| {
                OpError::BadArguments {
                    command: name.to_owned(),
                    field: e.field,
                    expected: e.expected,
                    message: e.message,
                }
            })?;
        }
        if needed > Access::Read && self.shared.shutdown.is_cancelled() {
            return Err(OpError::ShuttingDown);
        }
        Ok((entry, needed))
    }

    /// A built-in method: its typed request in, its typed reply out, through the registry.
    async fn method<Req: Serialize, Rep: DeserializeOwned>(
        &self,
        op: Operation,
        req: Req,
        ctx: Context,
    ) -> Result<Rep, OpError> {
        let args = serde_json::to_value(req).unwrap_or(Value::Null);
        let reply = self.dispatch(op.as_str(), args, ctx, Via::Method).await?;
        serde_json::from_value(reply).map_err(|e| {
            OpError::failed(format!("the server's reply to `{op}` does not decode: {e}"))
        })
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
    result: &Result<Value, OpError>,
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

impl Control for ControlService {
    async fn hello(self, ctx: Context, req: HelloRequest) -> Hello {
        self.method(Operation::Hello, req, ctx)
            .await
            .unwrap_or_else(|_| Hello {
                protocol: PROTOCOL_VERSION,
                ..Hello::default()
            })
    }

    async fn status(self, ctx: Context, req: StatusRequest) -> Result<Status, OpError> {
        self.method(Operation::Status, req, ctx).await
    }

    async fn reload(self, ctx: Context, req: ReloadRequest) -> Result<ReloadReply, OpError> {
        self.method(Operation::Reload, req, ctx).await
    }

    async fn rotate(self, ctx: Context, req: RotateRequest) -> Result<RotateReply, OpError> {
        self.method(Operation::Rotate, req, ctx).await
    }

    async fn drain(self, ctx: Context, req: DrainRequest) -> Result<DrainReply, OpError> {
        self.method(Operation::Drain, req, ctx).await
    }

    async fn log_level(self, ctx: Context, req: LogLevelRequest) -> Result<LogLevelReply, OpError> {
        self.method(Operation::LogLevel, req, ctx).await
    }

    async fn resume(self, ctx: Context, req: ResumeRequest) -> Result<ResumeReply, OpError> {
        self.method(Operation::Resume, req, ctx).await
    }

    async fn describe(self, ctx: Context, req: DescribeRequest) -> Result<Description, OpError> {
        self.method(Operation::Describe, req, ctx).await
    }

    async fn check(self, ctx: Context, req: CheckRequest) -> Result<CheckReply, OpError> {
        self.method(Operation::Check, req, ctx).await
    }

    async fn counters(self, ctx: Context, req: CountersRequest) -> Result<CountersReply, OpError> {
        self.method(Operation::Counters, req, ctx).await
    }

    async fn call(self, ctx: Context, req: CallRequest) -> Result<CallReply, OpError> {
        let reply = self
            .dispatch(&req.command, req.args, ctx, Via::Call)
            .await?;
        Ok(CallReply { reply })
    }
}
