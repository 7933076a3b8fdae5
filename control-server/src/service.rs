//! The [`Control`] implementation that sits between tarpc and the daemon's [`Handler`]: policy,
//! support checks, panics, owned tasks for mutating work, reload bookkeeping, one log line per
//! call.

use crate::connection::{ConnState, Kill, REFUSALS_BEFORE_CLOSE};
use crate::drain::WorkTracker;
use crate::handler::{Handler, OpContext};
use crate::log_file::LogFile;
use crate::log_level::LogFilter;
use crate::noise::Noise;
use crate::notify::Notifier;
use crate::ops::reload::Reloads;
use crate::policy::{Peer, Policy};
use control_api::{
    Control, DrainReply, DrainRequest, Hello, HelloRequest, LogLevelReply, LogLevelRequest,
    OpError, Operation, ReloadReply, ReloadRequest, ResumeReply, ResumeRequest, RotateReply,
    RotateRequest, Status, StatusRequest, PROTOCOL_VERSION,
};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tarpc::context::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// State shared by every connection of one server.
pub(crate) struct Shared<H> {
    pub handler: H,
    pub name: String,
    pub version: String,
    pub pid: u32,
    pub own_uid: u32,
    pub started: Instant,
    pub policy: Policy,
    /// What `hello` announces: `hello`, `status`, the handler's mutating operations, and those
    /// the server provides itself (`rotate` for registered log files, `drain` and `resume` for
    /// a tracker).
    pub operations: Vec<Operation>,
    /// What the handler itself lists.
    pub handler_ops: Vec<Operation>,
    /// Log files that `rotate` reopens without the handler's help.
    pub logs: Vec<LogFile>,
    /// Work in flight, for `drain` and `status`.
    pub tracker: Option<WorkTracker>,
    /// systemd's notification socket, when the daemon asked for it and runs under systemd.
    pub notifier: Option<Notifier>,
    /// The daemon's log filter, for `log-level`.
    pub log_filter: Option<Box<dyn LogFilter>>,
    pub reloads: Reloads,
    /// Rate limits of the lines callers can cause.
    pub noise: Arc<Noise>,
    /// Tasks running mutating operations, which outlive the call that started them.
    pub work: TaskTracker,
    pub shutdown: CancellationToken,
}

/// What the builder hands to [`Shared::new`].
pub(crate) struct Parts {
    pub name: String,
    pub version: String,
    pub policy: Policy,
    pub logs: Vec<LogFile>,
    pub tracker: Option<WorkTracker>,
    pub notifier: Option<Notifier>,
    pub log_filter: Option<Box<dyn LogFilter>>,
    pub shutdown: CancellationToken,
}

impl<H: Handler> Shared<H> {
    pub fn new(handler: H, parts: Parts) -> Self {
        let handler_ops = handler.operations();
        let provided = |op: &Operation| match op {
            Operation::Rotate => !parts.logs.is_empty(),
            // A tracker can be drained, and resumed.
            Operation::Drain | Operation::Resume => parts.tracker.is_some(),
            Operation::LogLevel => parts.log_filter.is_some(),
            _ => false,
        };
        let operations = Operation::ALL
            .into_iter()
            .filter(|op| !op.is_mutating() || handler_ops.contains(op) || provided(op))
            .collect();
        Shared {
            handler,
            name: parts.name,
            version: parts.version,
            pid: std::process::id(),
            own_uid: rustix::process::geteuid().as_raw(),
            started: Instant::now(),
            policy: parts.policy,
            operations,
            handler_ops,
            logs: parts.logs,
            tracker: parts.tracker,
            notifier: parts.notifier,
            log_filter: parts.log_filter,
            reloads: Reloads::new(),
            noise: Arc::new(Noise::new()),
            work: TaskTracker::new(),
            shutdown: parts.shutdown,
        }
    }

    pub fn unsupported(&self, op: Operation) -> OpError {
        OpError::unsupported(op, self.operations.iter().copied())
    }
}

/// One connection's view of the server: the shared state plus who is at the other end.
pub(crate) struct ControlService<H> {
    pub shared: Arc<Shared<H>>,
    pub peer: Peer,
    pub state: Arc<ConnState>,
    /// The connection's span (its id and the caller's pid and uid): the parent of each call's
    /// log line, rather than tarpc's request span, whose fields would double the line.
    pub span: tracing::Span,
}

impl<H> Clone for ControlService<H> {
    fn clone(&self) -> Self {
        ControlService {
            shared: self.shared.clone(),
            peer: self.peer,
            state: self.state.clone(),
            span: self.span.clone(),
        }
    }
}

/// Marks the connection busy (not evictable, not idle) while a call runs.
struct InFlight<'a>(&'a ConnState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a ConnState) -> Self {
        state.requests.fetch_add(1, Ordering::SeqCst);
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a call's work is run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// In the RPC's own future: dropped if the caller's deadline passes. For read-only calls.
    Inline,
    /// On a task the server owns: completes even if the caller stops waiting.
    Owned,
}

impl<H: Handler> ControlService<H> {
    /// Checks, runs and logs one call. `work` gets the shared state and the call's context.
    async fn call<T, F, Fut>(
        &self,
        op: Operation,
        ctx: Context,
        run: Run,
        work: F,
    ) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared<H>>, OpContext) -> Fut,
        Fut: Future<Output = Result<T, OpError>> + Send + 'static,
    {
        self.call_with_access(op, op.is_mutating(), ctx, run, work)
            .await
    }

    /// [`Self::call`] for an operation whose access depends on the request: `mutating` says
    /// whether this call changes state.
    async fn call_with_access<T, F, Fut>(
        &self,
        op: Operation,
        mutating: bool,
        ctx: Context,
        run: Run,
        work: F,
    ) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared<H>>, OpContext) -> Fut,
        Fut: Future<Output = Result<T, OpError>> + Send + 'static,
    {
        let started = Instant::now();
        let _busy = InFlight::enter(&self.state);
        let shared = &self.shared;
        let peer = self.peer;
        // The policy first: a caller let in for nothing learns nothing more than `hello` told it.
        let refused = if op != Operation::Hello
            && !shared
                .policy
                .permits_access(&peer, mutating, shared.own_uid)
        {
            Some(OpError::Denied {
                operation: op.as_str().to_owned(),
                uid: peer.uid,
            })
        } else if !shared.operations.contains(&op) {
            Some(shared.unsupported(op))
        } else if shared.shutdown.is_cancelled() && mutating {
            Some(OpError::ShuttingDown)
        } else {
            None
        };
        match &refused {
            Some(OpError::Denied { .. } | OpError::Unsupported { .. }) => {
                let in_a_row = self.state.refusals.fetch_add(1, Ordering::SeqCst) + 1;
                if in_a_row >= REFUSALS_BEFORE_CLOSE {
                    self.state.kill(Kill::Refused(in_a_row));
                }
            }
            // `hello` does not count as let in: alternating it with refused calls must not
            // keep a connection open.
            None if op != Operation::Hello => self.state.refusals.store(0, Ordering::SeqCst),
            _ => {}
        }
        if let Some(err) = refused {
            if shared.noise.refused_calls.admit() {
                log_call(&self.span, op, started, &Err::<(), _>(err.clone()));
            }
            return Err(err);
        }

        let opctx = OpContext {
            operation: op,
            peer,
            deadline: ctx.deadline,
        };
        let fut = work(shared.clone(), opctx);
        let shared2 = shared.clone();
        let span = self.span.clone();
        let guarded = async move {
            let result = match catching(fut).await {
                Err(OpError::Unsupported { .. }) => {
                    tracing::warn!(
                        op = op.as_str(),
                        "the handler lists `{op}` in operations() but does not implement it"
                    );
                    Err(shared2.unsupported(op))
                }
                other => other,
            };
            log_call(&span, op, started, &result);
            result
        };
        match run {
            Run::Inline => guarded.await,
            Run::Owned => shared
                .work
                .spawn(guarded.in_current_span())
                .await
                .unwrap_or_else(|e| {
                    // Only reachable if the runtime is shutting down under us.
                    Err(OpError::failed(format!(
                        "the operation's task was stopped: {e}"
                    )))
                }),
        }
    }
}

/// Runs `fut`, turning a panic into [`OpError::Failed`] so one bad handler call cannot take the
/// connection, or the daemon, down with it.
pub(crate) async fn catching<T>(
    fut: impl Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            Err(OpError::failed(format!(
                "the daemon's handler panicked: {}",
                panic_message(&panic)
            )))
        })
}

/// The message a panic was raised with, for log lines and replies.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// One short line per call, inside the connection's span (which names the connection and the
/// caller's pid and uid): mutating calls at INFO (WARN when they fail), read-only ones at DEBUG
/// (monitoring polls `status`; its calls are not news), refusals at WARN, rate-limited by the
/// caller.
fn log_call<T>(span: &tracing::Span, op: Operation, started: Instant, result: &Result<T, OpError>) {
    let us = started.elapsed().as_micros() as u64;
    match result {
        Ok(_) if !op.is_mutating() => tracing::debug!(parent: span, us, "{op} ok"),
        Ok(_) => tracing::info!(parent: span, us, "{op} ok"),
        Err(err @ (OpError::Denied { .. } | OpError::Unsupported { .. })) => {
            tracing::warn!(parent: span, us, "{op} refused: {err}")
        }
        Err(err) if op.is_mutating() => tracing::warn!(parent: span, us, "{op} failed: {err}"),
        Err(err) => tracing::info!(parent: span, us, "{op} failed: {err}"),
    }
}

impl<H: Handler> Control for ControlService<H> {
    async fn hello(self, ctx: Context, req: HelloRequest) -> Hello {
        let shared = &self.shared;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: shared.name.clone(),
            version: shared.version.clone(),
            pid: shared.pid,
            operations: shared
                .operations
                .iter()
                .map(|op| op.as_str().to_owned())
                .collect(),
        };
        // hello is never refused: a caller the policy keeps out still learns who is there, and
        // then gets `Denied` for the operation it asks for.
        let _ = self
            .call(Operation::Hello, ctx, Run::Inline, |_, _| async { Ok(()) })
            .await;
        tracing::trace!(client = req.client, protocol = req.protocol, "hello");
        hello
    }

    async fn status(self, ctx: Context, _req: StatusRequest) -> Result<Status, OpError> {
        self.call(
            Operation::Status,
            ctx,
            Run::Inline,
            |shared, opctx| async move {
                let daemon = shared.handler.status(opctx).await;
                let (generation, last) = shared.reloads.current();
                let tracker = shared.tracker.as_ref();
                // The rules are documented on `DaemonStatus`.
                let draining = daemon.draining || tracker.is_some_and(WorkTracker::is_draining);
                let in_flight = daemon.in_flight + tracker.map_or(0, WorkTracker::in_flight);
                let log_files = shared
                    .logs
                    .iter()
                    .map(LogFile::path)
                    .chain(daemon.log_files.iter().cloned())
                    .collect();
                let (values, fields) = daemon.into_wire_fields();
                Ok(Status {
                    name: shared.name.clone(),
                    version: shared.version.clone(),
                    pid: shared.pid,
                    uptime_ms: shared.started.elapsed().as_millis() as u64,
                    config_generation: generation,
                    last_reload: last,
                    draining,
                    in_flight,
                    log_files,
                    fields,
                    values,
                })
            },
        )
        .await
    }

    async fn reload(self, ctx: Context, _req: ReloadRequest) -> Result<ReloadReply, OpError> {
        self.call(
            Operation::Reload,
            ctx,
            Run::Owned,
            |shared, opctx| async move { shared.request_reload(opctx).await },
        )
        .await
    }

    async fn rotate(self, ctx: Context, _req: RotateRequest) -> Result<RotateReply, OpError> {
        self.call(
            Operation::Rotate,
            ctx,
            Run::Owned,
            |shared, opctx| async move { shared.rotate(opctx).await },
        )
        .await
    }

    async fn drain(self, ctx: Context, _req: DrainRequest) -> Result<DrainReply, OpError> {
        self.call(
            Operation::Drain,
            ctx,
            Run::Owned,
            |shared, opctx| async move { shared.drain(opctx).await },
        )
        .await
    }

    async fn resume(self, ctx: Context, _req: ResumeRequest) -> Result<ResumeReply, OpError> {
        self.call(
            Operation::Resume,
            ctx,
            Run::Owned,
            |shared, opctx| async move { shared.resume(opctx).await },
        )
        .await
    }

    async fn log_level(self, ctx: Context, req: LogLevelRequest) -> Result<LogLevelReply, OpError> {
        // Reading the filter is read-only; changing it is not.
        let mutating = req.filter.is_some();
        self.call_with_access(
            Operation::LogLevel,
            mutating,
            ctx,
            Run::Inline,
            |shared, _| async move {
                let Some(log_filter) = &shared.log_filter else {
                    return Err(shared.unsupported(Operation::LogLevel));
                };
                match req.filter {
                    None => Ok(LogLevelReply {
                        filter: log_filter.current(),
                        previous: None,
                    }),
                    Some(filter) => {
                        let previous = log_filter.replace(&filter).map_err(|e| {
                            OpError::failed_because("log filter refused, the current one stays", &e)
                        })?;
                        tracing::info!("log filter changed from {previous:?} to {filter:?}");
                        Ok(LogLevelReply {
                            filter: log_filter.current(),
                            previous: Some(previous),
                        })
                    }
                }
            },
        )
        .await
    }
}
