//! `resume`: undo a drain. The order of events is documented on
//! [`WorkTracker`](crate::WorkTracker).

use crate::handler::{Handler, OpContext};
use crate::service::Shared;
use control_api::{OpError, Operation, ResumeReply};

impl<H: Handler> Shared<H> {
    pub(crate) async fn resume(&self, ctx: OpContext) -> Result<ResumeReply, OpError> {
        // The tracker first: work the handler lets in again (a reopened listener) must find
        // `begin` accepting.
        let tracker_was = self.tracker.as_ref().is_some_and(|t| t.resume());
        let mut reply = ResumeReply {
            was_draining: tracker_was,
        };
        if self.handler_ops.contains(&Operation::Resume) {
            match self.handler.resume(ctx).await {
                Ok(own) => reply.was_draining |= own.was_draining,
                // Listed but left to the tracker.
                Err(OpError::Unsupported { .. }) if self.tracker.is_some() => {}
                Err(err) => {
                    // The daemon stays as it was: draining.
                    if tracker_was {
                        if let Some(tracker) = &self.tracker {
                            tracker.start_draining();
                        }
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
