//! `drain`: stop taking work, wait for what is in flight, report what is left. The order of
//! events is documented on [`WorkTracker`](crate::WorkTracker).

use crate::handler::{Handler, OpContext};
use crate::service::Shared;
use control_api::{DrainReply, OpError, Operation};
use std::time::{Duration, Instant};

/// When to stop waiting so that the reply still reaches a caller whose deadline is `deadline`:
/// a little before it, so the caller learns what was left instead of only that time ran out.
fn reply_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 10).min(Duration::from_millis(250))
}

impl<H: Handler> Shared<H> {
    pub(crate) async fn drain(&self, ctx: OpContext) -> Result<DrainReply, OpError> {
        if let Some(notifier) = &self.notifier {
            notifier.stopping();
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
        let mut ctx = ctx;
        ctx.deadline = reply_by(ctx.deadline);
        let mut reply = DrainReply {
            completed: true,
            in_flight: 0,
            resumed: false,
        };
        if self.handler_ops.contains(&Operation::Drain) {
            match self.handler.drain(ctx.clone()).await {
                Ok(own) => {
                    reply.completed &= own.completed;
                    reply.in_flight += own.in_flight;
                }
                // Listed but left to the tracker.
                Err(OpError::Unsupported { .. }) if self.tracker.is_some() => {}
                Err(err) => return Err(err),
            }
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
        } else {
            tracing::warn!(
                in_flight = reply.in_flight,
                "drain deadline passed with work in flight; still draining"
            );
        }
        Ok(reply)
    }
}
