//! `drain`: stop taking work, wait for what is in flight, report what is left.

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
        if let Some(tracker) = &self.tracker {
            tracker.start_draining();
        }
        let mut ctx = ctx;
        ctx.deadline = reply_by(ctx.deadline);
        let mut reply = DrainReply {
            completed: true,
            in_flight: 0,
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
        if let Some(tracker) = &self.tracker {
            let done = tokio::time::timeout_at(ctx.deadline.into(), tracker.drained())
                .await
                .is_ok();
            reply.completed &= done;
            reply.in_flight += tracker.in_flight();
        }
        if reply.completed {
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
