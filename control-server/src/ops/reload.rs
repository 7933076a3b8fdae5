//! `reload`: single-flight with generations; and `check`, which takes its turn with them.
//!
//! Requests queue for the next reload to *start*. While one runs, every request that arrives
//! waits for it to finish and then shares one more reload, which reads the configuration as it
//! is after all of them asked: no caller is answered with a reload that began before its
//! request, and twenty callers at once cost two reloads, not twenty.
//!
//! A `check` and a reload never overlap: each takes the same turn, so a check compares the file
//! with a configuration no reload is replacing at that moment, and the generation it names is
//! the one it compared against. A check asked for during a reload waits for it to end (and
//! then reports against what that reload applied); it never joins or delays more than the one
//! reload in progress, and a reload asked for during a check waits at most for that check.

use crate::counters::{Counter, ServerCounters};
use crate::handler::{Hook, OpContext};
use crate::notify::Notifier;
use crate::panic::catching;
use crate::registry::Entry;
use crate::Reloaded;
use control_api::{
    CheckReply, CheckRequest, Command, OpError, ReloadOutcome, ReloadReply, ReloadRequest,
};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// Reload bookkeeping, owned by the server so every daemon reports generations the same way.
/// Exists without a reload handler too: `status` then reports generation 1.
pub(crate) struct Reloads {
    history: Mutex<History>,
    queue: Mutex<Queue>,
    /// The daemon's reload; `None`: no `reload` operation.
    handler: Option<Hook<Result<Reloaded, OpError>>>,
    /// The daemon's check: its reload's load-and-validate step, applying nothing; `None`: no
    /// `check` operation.
    checker: Option<Hook<Result<Reloaded, OpError>>>,
    /// Held by each reload (with its recording) and each check: the two never overlap.
    turn: tokio::sync::Mutex<()>,
    notifier: Option<Arc<Notifier>>,
    /// Where reloads run: a task of the server's, which the caller going away does not stop.
    work: TaskTracker,
    /// `ctl.reloads.ok` and `ctl.reloads.failed`: reloads run, not callers answered.
    ok: Counter,
    failed: Counter,
}

#[derive(Debug)]
struct History {
    /// 1 at start, one more per reload that changed something.
    generation: u64,
    last: Option<ReloadOutcome>,
}

impl History {
    /// Keeps the outcome of what just ended, at the generation active now.
    fn finish(&mut self, ok: bool, message: String) {
        self.last = Some(ReloadOutcome {
            ok,
            generation: self.generation,
            message,
            finished_unix_ms: crate::audit::unix_ms(),
        });
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Whether a task is running reloads.
    running: bool,
    /// Requests for the next reload to start.
    waiting: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    ctx: OpContext,
    reply: oneshot::Sender<Result<ReloadReply, OpError>>,
}

use crate::panic::lock;

impl Reloads {
    pub fn new(
        handler: Option<Hook<Result<Reloaded, OpError>>>,
        checker: Option<Hook<Result<Reloaded, OpError>>>,
        notifier: Option<Arc<Notifier>>,
        work: TaskTracker,
        counters: &ServerCounters,
    ) -> Self {
        Reloads {
            history: Mutex::new(History {
                generation: 1,
                last: None,
            }),
            queue: Mutex::new(Queue::default()),
            handler,
            checker,
            turn: tokio::sync::Mutex::new(()),
            notifier,
            work,
            ok: counters.reloads_ok.clone(),
            failed: counters.reloads_failed.clone(),
        }
    }

    /// The `reload` operation, when the daemon registered a reload handler.
    pub fn entry(self: &Arc<Self>) -> Option<Entry> {
        self.handler.as_ref()?;
        let reloads = self.clone();
        Some(Entry::builtin(move |ctx, _: ReloadRequest| {
            let reloads = reloads.clone();
            async move { reloads.request(ctx).await }
        }))
    }

    /// The `check` operation, when the daemon registered its reload as a load-and-validate
    /// step (see [`Builder::reloadable`](crate::Builder::reloadable)).
    pub fn check_entry(self: &Arc<Self>) -> Option<Entry> {
        self.checker.as_ref()?;
        let reloads = self.clone();
        Some(Entry::builtin(move |ctx, _: CheckRequest| {
            let reloads = reloads.clone();
            async move { reloads.check(ctx).await }
        }))
    }

    /// Runs the daemon's check in its turn: what a reload would change now, and the
    /// generation active while it looked.
    ///
    /// The check runs on a task of the server's, like a reload: the daemon's load step runs off
    /// the runtime and cannot be stopped halfway, so a caller who goes away ends only its wait,
    /// and the check keeps its turn until its load step has ended (no reload overlaps it).
    async fn check(self: &Arc<Self>, ctx: OpContext) -> Result<CheckReply, OpError> {
        let Some(checker) = self.checker.clone() else {
            return Err(OpError::unsupported(CheckRequest::NAME, []));
        };
        let reloads = self.clone();
        let checking = self.work.spawn(async move {
            let _turn = match reloads.turn.try_lock() {
                Ok(turn) => turn,
                Err(_) => {
                    // Said when it happens, so that a test can tell the check waits.
                    tracing::debug!("check requested: waiting for the reload in progress");
                    reloads.turn.lock().await
                }
            };
            let checked = catching(checker(ctx)).await?;
            Ok(CheckReply {
                generation: lock(&reloads.history).generation,
                summary: checked.summary,
                unchanged: checked.unchanged,
            })
        });
        checking
            .await
            .unwrap_or_else(|_| Err(OpError::failed("the check task stopped before answering")))
    }

    /// Whether the daemon registered a reload.
    pub fn has_handler(&self) -> bool {
        self.handler.is_some()
    }

    /// The active generation and the last reload's outcome.
    pub fn current(&self) -> (u64, Option<ReloadOutcome>) {
        let history = lock(&self.history);
        (history.generation, history.last.clone())
    }

    /// The configuration was replaced outside `reload` (by a command's handler): a new
    /// generation, and the last outcome, as a reload's; not counted as a reload.
    pub(crate) fn changed_elsewhere(&self, summary: String) {
        let mut history = lock(&self.history);
        history.generation += 1;
        history.finish(true, summary);
    }

    fn record(&self, result: Result<Reloaded, OpError>) -> Result<ReloadReply, OpError> {
        let mut history = lock(&self.history);
        match result {
            Ok(reloaded) => {
                self.ok.inc();
                if !reloaded.unchanged {
                    history.generation += 1;
                }
                history.finish(true, reloaded.summary.clone());
                Ok(ReloadReply {
                    generation: history.generation,
                    summary: reloaded.summary,
                    joined: false,
                    unchanged: reloaded.unchanged,
                })
            }
            Err(err) => {
                self.failed.inc();
                history.finish(false, err.to_string());
                Err(err)
            }
        }
    }
}

/// Clears `running` if the reload task ends without doing so itself (a panic in our code), so
/// a bug there cannot wedge reloads.
struct Running<'a> {
    reloads: &'a Reloads,
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.reloads.queue).running = false;
        }
    }
}

impl Reloads {
    /// Asks for a reload and waits for the outcome of the first reload that starts after the
    /// request. The reload runs on a task of the server's: the caller going away does not stop
    /// it.
    pub(crate) async fn request(self: &Arc<Self>, ctx: OpContext) -> Result<ReloadReply, OpError> {
        let Some(handler) = self.handler.clone() else {
            return Err(OpError::unsupported(ReloadRequest::NAME, []));
        };
        let (reply, outcome) = oneshot::channel();
        let (start_task, waiting) = {
            let mut queue = lock(&self.queue);
            queue.waiting.push(Waiter { ctx, reply });
            (
                !std::mem::replace(&mut queue.running, true),
                queue.waiting.len(),
            )
        };
        // Counted under the lock, so N is exact: with a reload held up, the line saying N tells
        // that N callers queue behind it (the tests wait for it).
        tracing::debug!("reload requested: {waiting} waiting for the next reload to start");
        if start_task {
            let reloads = self.clone();
            self.work
                .spawn(async move { reloads.run_reloads(&handler).await });
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(OpError::failed("the reload task stopped before answering")))
    }

    /// Runs reloads until no request is waiting.
    async fn run_reloads(&self, handler: &Hook<Result<Reloaded, OpError>>) {
        let mut running = Running {
            reloads: self,
            armed: true,
        };
        loop {
            let batch = {
                let mut queue = lock(&self.queue);
                if queue.waiting.is_empty() {
                    // In the same critical section that saw the queue empty: a request that
                    // arrives after this sees `running == false` and starts a task itself.
                    queue.running = false;
                    running.armed = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            // The most patient caller's deadline: the reload is applied as long as anyone
            // still waits for it.
            let ctx = batch
                .iter()
                .max_by_key(|w| w.ctx.deadline)
                .map(|w| w.ctx.clone())
                .expect("batch is not empty");
            if let Some(notifier) = &self.notifier {
                notifier.reloading();
            }
            let result = {
                // A check waiting meanwhile sees the generation this reload records.
                let _turn = self.turn.lock().await;
                self.record(catching(handler(ctx)).await)
            };
            if let Some(notifier) = &self.notifier {
                notifier.reloaded(&match &result {
                    Ok(r) => format!(
                        "reload ok: generation {} active ({})",
                        r.generation, r.summary
                    ),
                    Err(e) => format!("reload failed, old configuration kept: {e}"),
                });
            }
            for (i, waiter) in batch.into_iter().enumerate() {
                let reply = result.clone().map(|mut r| {
                    r.joined = i > 0;
                    r
                });
                // A caller that gave up has dropped its receiver: nothing to do.
                let _ = waiter.reply.send(reply);
            }
        }
    }
}
