//! Work in flight, for `drain`: a guard per unit of work, refused once draining.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Counts units of work in flight and refuses new ones once a drain has begun.
///
/// A daemon takes a [`WorkGuard`] with [`WorkTracker::begin`] for each unit of work (a request,
/// a job) and drops it when done. Registered with
/// [`Builder::work_tracker`](crate::Builder::work_tracker), it gives the daemon `drain` (stop
/// taking work, wait for the count to reach zero or the deadline) and the `draining` and
/// `in_flight` fields of `status`, with no further code.
///
/// ```
/// use control_server::WorkTracker;
///
/// let work = WorkTracker::new();
/// let guard = work.begin().expect("not draining yet");
/// assert_eq!(work.in_flight(), 1);
/// work.start_draining();
/// assert!(work.begin().is_none(), "new work is refused");
/// drop(guard);
/// assert_eq!(work.in_flight(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WorkTracker {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    in_flight: AtomicU64,
    draining: AtomicBool,
    /// Woken when `in_flight` drops to zero.
    idle: Notify,
}

/// One unit of work in flight; dropping it ends the unit.
#[derive(Debug)]
#[must_use = "the unit of work ends when the guard is dropped"]
pub struct WorkGuard {
    inner: Arc<Inner>,
}

impl WorkTracker {
    /// A tracker with nothing in flight, not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a unit of work, or returns `None` once draining: the daemon should then not
    /// start it.
    pub fn begin(&self) -> Option<WorkGuard> {
        // Count first, then check: a drain that begins in between sees this unit.
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = WorkGuard {
            inner: self.inner.clone(),
        };
        if self.inner.draining.load(Ordering::SeqCst) {
            return None; // dropping the guard uncounts it
        }
        Some(guard)
    }

    /// Units of work in flight.
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Whether a drain has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Refuses new work from now on. Idempotent.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        // With nothing in flight there is no last guard to wake `drained()`: wake it here.
        self.inner.idle.notify_waiters();
    }

    /// Resolves once draining has begun and nothing is in flight: a daemon that wants to exit
    /// after a drain awaits this.
    pub async fn drained(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a guard dropped in between still wakes us.
            idle.as_mut().enable();
            if self.is_draining() && self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn drained_waits_for_the_last_guard() {
        let work = WorkTracker::new();
        let guards: Vec<_> = (0..3).map(|_| work.begin().unwrap()).collect();
        work.start_draining();
        let waiter = tokio::spawn({
            let work = work.clone();
            async move { work.drained().await }
        });
        for guard in guards {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(!waiter.is_finished());
            drop(guard);
        }
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("drained resolves once the count is zero")
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn drained_needs_a_drain_to_have_begun() {
        let work = WorkTracker::new();
        let early = tokio::time::timeout(Duration::from_millis(20), work.drained()).await;
        assert!(early.is_err(), "nothing in flight, but no drain either");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn drained_wakes_when_a_drain_starts_with_nothing_in_flight() {
        let work = WorkTracker::new();
        let waiter = tokio::spawn({
            let work = work.clone();
            async move { work.drained().await }
        });
        tokio::task::yield_now().await; // let the waiter start waiting
        work.start_draining();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("drained resolves without any guard being dropped")
            .unwrap();
    }

    #[test]
    fn begin_after_draining_is_refused_and_uncounted() {
        let work = WorkTracker::new();
        work.start_draining();
        assert!(work.begin().is_none());
        assert_eq!(work.in_flight(), 0);
    }
}
