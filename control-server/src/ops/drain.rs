//! `drain`: stop taking work, wait for what is in flight, report what is left. The order of
//! events is documented on [`WorkTracker`](crate::WorkTracker).

use crate::drain::WorkTracker;
use crate::handler::{Hook, OpContext};
use crate::notify::Notifier;
use crate::registry::Entry;
use control_api::{DrainReply, DrainRequest, OpError, ResumeReply, ResumeRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `drain` and `resume` act on: the registered tracker and the daemon's own parts.
pub(crate) struct Drain {
    pub tracker: Option<WorkTracker>,
    /// The daemon's own drain, for work the tracker does not see.
    pub own_drain: Option<Hook<Result<DrainReply, OpError>>>,
    /// The daemon's own resume, undoing its own drain.
    pub own_resume: Option<Hook<Result<ResumeReply, OpError>>>,
    pub notifier: Option<Arc<Notifier>>,
}

impl Drain {
    /// `drain` (with a tracker or the daemon's own drain) and `resume` (with a tracker or the
    /// daemon's own resume).
    pub fn entries(self) -> Vec<Entry> {
        let has_drain = self.tracker.is_some() || self.own_drain.is_some();
        let has_resume = self.tracker.is_some() || self.own_resume.is_some();
        let this = Arc::new(self);
        let mut entries = Vec::new();
        if has_drain {
            let drain = this.clone();
            entries.push(Entry::builtin(move |ctx, _: DrainRequest| {
                let drain = drain.clone();
                async move { drain.drain(ctx).await }
            }));
        }
        if has_resume {
            let drain = this;
            entries.push(Entry::builtin(move |ctx, _: ResumeRequest| {
                let drain = drain.clone();
                async move { drain.resume(ctx).await }
            }));
        }
        entries
    }

    async fn drain(&self, mut ctx: OpContext) -> Result<DrainReply, OpError> {
        // Only a status line: a drain is no stop (see `Notifier::draining`).
        if let Some(notifier) = &self.notifier {
            notifier.draining();
        }
        // Watched from before the drain starts, so that a resume at any later moment (even
        // before this call waits) ends the wait.
        let mut state = self.tracker.as_ref().map(|tracker| {
            tracker.start_draining();
            let mut state = tracker.watch();
            // A resume that came in between already shows.
            let resumed = !*state.borrow_and_update();
            (state, resumed)
        });
        ctx.deadline = reply_by(ctx.deadline);
        let mut reply = DrainReply {
            completed: true,
            in_flight: 0,
            resumed: false,
        };
        if let Some(own) = &self.own_drain {
            let own = own(ctx.clone()).await?;
            reply.completed &= own.completed;
            reply.in_flight += own.in_flight;
        }
        if let (Some(tracker), Some((state, resumed))) = (&self.tracker, &mut state) {
            let done = *resumed
                || tokio::select! {
                    () = tracker.drained() => true,
                    // The only change after the drain began is a resume.
                    _ = state.changed() => { *resumed = true; false }
                    () = tokio::time::sleep_until(ctx.deadline.into()) => false,
                };
            reply.resumed = *resumed;
            reply.completed &= done && !reply.resumed;
            reply.in_flight += tracker.in_flight();
        }
        if reply.resumed {
            tracing::info!(
                in_flight = reply.in_flight,
                "drain undone by resume before it completed; taking new work again"
            );
        } else if reply.completed {
            tracing::info!("drained: nothing in flight");
            if let Some(notifier) = &self.notifier {
                notifier.drained();
            }
        } else {
            tracing::warn!(
                in_flight = reply.in_flight,
                "drain deadline passed with work in flight; still draining"
            );
        }
        Ok(reply)
    }

    /// `resume`: undo a drain. The order of events is documented on
    /// [`WorkTracker`](crate::WorkTracker).
    async fn resume(&self, ctx: OpContext) -> Result<ResumeReply, OpError> {
        // The tracker first: work the handler lets in again (a reopened listener) must find
        // `begin` accepting.
        let tracker_was = self.tracker.as_ref().is_some_and(|t| t.resume());
        let mut reply = ResumeReply {
            was_draining: tracker_was,
        };
        if let Some(own) = &self.own_resume {
            match own(ctx).await {
                Ok(own) => reply.was_draining |= own.was_draining,
                Err(err) => {
                    // The daemon stays as it was: draining.
                    if let Some(tracker) = self.tracker.as_ref().filter(|_| tracker_was) {
                        tracker.start_draining();
                    }
                    return Err(err);
                }
            }
        }
        if reply.was_draining {
            if let Some(notifier) = &self.notifier {
                notifier.resumed();
            }
            tracing::info!("resumed: taking new work again");
        } else {
            tracing::info!("resume: not draining, nothing to undo");
        }
        Ok(reply)
    }
}

/// When to stop waiting so that the reply still reaches a caller whose deadline is `deadline`:
/// a little before it, so the caller learns what was left instead of only that time ran out.
fn reply_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 10).min(Duration::from_millis(250))
}
