//! Work in flight, for `drain` and `resume`: a guard per unit of work, refused while draining.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Counts units of work in flight and refuses new ones once a drain has begun.
///
/// A daemon takes a [`WorkGuard`] with [`WorkTracker::begin`] for each unit of work (a request,
/// a job) and drops it when done. Registered with
/// [`Builder::work_tracker`](crate::Builder::work_tracker), it gives the daemon `drain` (stop
/// taking work, wait for the count to reach zero or the deadline) and the `draining` and
/// `in_flight` fields of `status`, with no further code; and `resume`, which undoes a drain.
///
/// # The order of events
///
/// On `drain` the server does, in this order:
///
/// 1. tells systemd it is draining, in `STATUS=` only (with
///    [`notify_systemd`](crate::Builder::notify_systemd)): never `STOPPING=1`, which systemd
///    takes as the service stopping and ends with SIGKILL after `TimeoutStopSec`;
/// 2. starts draining the tracker: [`begin`](Self::begin) refuses from now on, and every
///    [`draining`](Self::draining) future resolves: the moment to close a listener;
/// 3. runs the daemon's own drain if it registered one with
///    [`Builder::drain`](crate::Builder::drain), for work the tracker does not see;
/// 4. waits until nothing is in flight ([`drained`](Self::drained)), the caller's deadline
///    (less a margin to deliver the reply), or a `resume`, whichever comes first.
///
/// The reply is `completed` only if the daemon's own drain and the tracker both completed; its
/// `in_flight` is the daemon's count plus the tracker's. A drain past its deadline leaves the
/// daemon draining: the work in flight still ends, and nothing new starts.
///
/// On `resume` the server stops draining the tracker first ([`begin`](Self::begin) accepts
/// again, every [`resumed`](Self::resumed) future resolves), then runs the daemon's own resume
/// if it registered one with [`Builder::resume`](crate::Builder::resume), then tells systemd
/// so in `STATUS=`. A `drain` call still waiting ends at once, not completed, with `resumed` set: what
/// it waited for will not happen. If the daemon's own resume fails, the tracker drains again,
/// so the daemon stays as it was.
///
/// A daemon that stops something when a drain begins must start it again on resume, or `resume`
/// would report success while nothing serves. A worker loop waits for [`resumed`](Self::resumed)
/// instead of ending:
///
/// ```no_run
/// # async fn serve(_: tokio::net::TcpListener, _: &control_server::WorkTracker) {}
/// # async fn run(work: control_server::WorkTracker) -> std::io::Result<()> {
/// loop {
///     let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
///     tokio::select! {
///         _ = serve(listener, &work) => {}
///         _ = work.draining() => {} // dropping the listener closes it: clients go elsewhere
///     }
///     work.resumed().await; // open it again on `resume`
/// }
/// # }
/// ```
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

#[derive(Debug)]
struct Inner {
    in_flight: AtomicU64,
    /// Read by [`WorkTracker::begin`] without a lock; written only under `state`'s lock, so the
    /// two never disagree.
    draining: AtomicBool,
    /// Whether draining, for the tasks that wait for a drain to begin or end.
    state: watch::Sender<bool>,
    /// Woken when `in_flight` drops to zero.
    idle: Notify,
    /// The same two events for threads outside any runtime ([`WorkTracker::block_until`]):
    /// notified, under its lock, on every change of state and when the count reaches zero.
    changed: (Mutex<()>, Condvar),
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            in_flight: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            // `watch::channel` rather than `Sender::new`, which needs tokio 1.33 (the floor is 1.28).
            state: watch::channel(false).0,
            idle: Notify::new(),
            changed: (Mutex::new(()), Condvar::new()),
        }
    }
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

    /// Starts a unit of work, or returns `None` while draining: the daemon should then not
    /// start it (and may try again after [`resumed`](Self::resumed)).
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

    /// Whether a drain has begun and not been undone by a resume.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Refuses new work from now on. Idempotent. The server calls this on `drain`; a daemon
    /// may call it too (e.g. on SIGTERM), with the same effect.
    pub fn start_draining(&self) {
        self.set_draining(true);
        // With nothing in flight there is no last guard to wake `drained()`: wake it here.
        self.inner.idle.notify_waiters();
    }

    /// Accepts new work again: undoes [`start_draining`](Self::start_draining). Returns whether
    /// it was draining. The server calls this on `resume`.
    pub fn resume(&self) -> bool {
        self.set_draining(false)
    }

    /// Sets the state; returns whether it changed.
    fn set_draining(&self, draining: bool) -> bool {
        let changed = self.inner.state.send_if_modified(|state| {
            // Under the watch's lock: two callers setting opposite states cannot leave the
            // flag and the watch disagreeing.
            self.inner.draining.store(draining, Ordering::SeqCst);
            std::mem::replace(state, draining) != draining
        });
        self.inner.wake_threads();
        changed
    }

    /// Blocks the calling thread until a drain has begun (as [`draining`](Self::draining)
    /// resolves), or `timeout` passed; returns whether it began. For a daemon without an async
    /// runtime: a thread that owns the listener waits here, closes it, then waits in
    /// [`block_until_resumed`](Self::block_until_resumed) to open it again. Never call it from
    /// an async task: it blocks the runtime's thread.
    pub fn block_until_draining(&self, timeout: Option<Duration>) -> bool {
        self.block_until(timeout, |work| work.is_draining())
    }

    /// Blocks until no drain is on (as [`resumed`](Self::resumed) resolves), or `timeout`
    /// passed; returns whether the daemon takes work again. See
    /// [`block_until_draining`](Self::block_until_draining).
    pub fn block_until_resumed(&self, timeout: Option<Duration>) -> bool {
        self.block_until(timeout, |work| !work.is_draining())
    }

    /// Blocks until a drain has begun and nothing is in flight (as [`drained`](Self::drained)
    /// resolves), or `timeout` passed; returns whether it is drained. See
    /// [`block_until_draining`](Self::block_until_draining).
    pub fn block_until_drained(&self, timeout: Option<Duration>) -> bool {
        self.block_until(timeout, |work| work.is_draining() && work.in_flight() == 0)
    }

    fn block_until(&self, timeout: Option<Duration>, done: impl Fn(&Self) -> bool) -> bool {
        let until = timeout.map(|t| Instant::now() + t);
        let (lock, condvar) = &self.inner.changed;
        let mut guard = crate::panic::lock(lock);
        // Checked under the lock that every change notifies under: no wake-up is missed.
        while !done(self) {
            guard = match until.map(|u| u.saturating_duration_since(Instant::now())) {
                None => condvar.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(left) if left.is_zero() => return false,
                Some(left) => {
                    condvar
                        .wait_timeout(guard, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }

    /// Resolves when a drain begins, at once if one has: the moment to stop accepting work at
    /// the source (close a listener, pause a queue consumer). See the order of events above.
    pub async fn draining(&self) {
        let mut state = self.inner.state.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = state.wait_for(|&draining| draining).await;
    }

    /// Resolves when a drain is undone by `resume`, at once if not draining: the moment to
    /// accept work again (reopen the listener closed on [`draining`](Self::draining)).
    pub async fn resumed(&self) {
        let mut state = self.inner.state.subscribe();
        let _ = state.wait_for(|&draining| !draining).await;
    }

    /// Whether draining, as a watch: it changes on every start and end of a drain.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.inner.state.subscribe()
    }

    /// Resolves once draining has begun and nothing is in flight: a daemon that wants to exit
    /// after a drain awaits this. A drain undone by `resume` does not count; this then waits
    /// for the next one.
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

impl Inner {
    /// Wakes the threads in [`WorkTracker::block_until`]: under the lock they check under.
    fn wake_threads(&self) {
        let (lock, condvar) = &self.changed;
        let _held = crate::panic::lock(lock);
        condvar.notify_all();
    }
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
            self.inner.wake_threads();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;

    /// `wait` on a clone of `work`, on a task of its own.
    fn spawned<F>(work: &WorkTracker, wait: impl FnOnce(WorkTracker) -> F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(wait(work.clone()))
    }

    /// Waits for `waiter` at most a second (of the paused clock); fails with `what` past it.
    async fn finished(waiter: JoinHandle<()>, what: &str) {
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect(what)
            .unwrap();
    }

    /// A thread outside any runtime learns of a drain, its end and the last unit of work done,
    /// each within its bound, and a bound that passes first says so.
    #[test]
    fn a_thread_without_a_runtime_blocks_until_a_drain_begins_ends_or_is_done() {
        let work = WorkTracker::new();
        assert!(!work.block_until_draining(Some(Duration::from_millis(20))));
        assert!(
            work.block_until_resumed(Some(Duration::ZERO)),
            "not draining: at once"
        );
        let guard = work.begin().unwrap();
        let (seen, saw) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let work = work.clone();
            move || {
                // Far longer than the test waits for each report below: a wake-up that is lost
                // shows as a report that does not come, not as one that comes late.
                let bound = Some(Duration::from_secs(300));
                seen.send(("draining", work.block_until_draining(bound)))
                    .unwrap();
                seen.send(("drained", work.block_until_drained(bound)))
                    .unwrap();
                seen.send(("resumed", work.block_until_resumed(bound)))
                    .unwrap();
            }
        });
        let next = || saw.recv_timeout(Duration::from_secs(20)).unwrap();
        work.start_draining();
        assert_eq!(next(), ("draining", true));
        assert!(
            !work.block_until_drained(Some(Duration::from_millis(20))),
            "one in flight"
        );
        drop(guard);
        assert_eq!(next(), ("drained", true));
        work.resume();
        assert_eq!(next(), ("resumed", true));
        waiter.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn drained_waits_for_the_last_guard() {
        let work = WorkTracker::new();
        let guards: Vec<_> = (0..3).map(|_| work.begin().unwrap()).collect();
        work.start_draining();
        let waiter = spawned(&work, |work| async move { work.drained().await });
        for guard in guards {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(!waiter.is_finished());
            drop(guard);
        }
        finished(waiter, "drained resolves once the count is zero").await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn drained_needs_a_drain_to_have_begun() {
        let work = WorkTracker::new();
        // The paused clock advances only once nothing else can run: a minute of waiting in
        // which `drained` had every chance to resolve.
        let early = tokio::time::timeout(Duration::from_secs(60), work.drained()).await;
        assert!(early.is_err(), "nothing in flight, but no drain either");
    }

    // The paused clock: the bound below advances only once nothing else can run, so it catches
    // "never" and not a machine too busy to run the waiter within 5 s.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn drained_wakes_when_a_drain_starts_with_nothing_in_flight() {
        let work = WorkTracker::new();
        let waiter = spawned(&work, |work| async move { work.drained().await });
        tokio::task::yield_now().await; // let the waiter start waiting
        work.start_draining();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("drained resolves without any guard being dropped")
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn draining_resolves_when_a_drain_starts_before_drained() {
        let work = WorkTracker::new();
        let guard = work.begin().unwrap();
        let began = spawned(&work, |work| async move { work.draining().await });
        let ended = spawned(&work, |work| async move { work.drained().await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!began.is_finished(), "no drain yet");
        work.start_draining();
        finished(
            began,
            "draining resolves when the drain starts, with work still in flight",
        )
        .await;
        assert!(!ended.is_finished(), "a unit is still in flight");
        drop(guard);
        finished(ended, "drained resolves after the last unit").await;
        // Already draining: resolves at once.
        tokio::time::timeout(Duration::ZERO, work.draining())
            .await
            .expect("at once");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn resume_undoes_a_drain_and_wakes_resumed() {
        let work = WorkTracker::new();
        tokio::time::timeout(Duration::ZERO, work.resumed())
            .await
            .expect("not draining: resumed at once");
        assert!(!work.resume(), "nothing to undo");
        work.start_draining();
        assert!(work.begin().is_none());
        let resumed = spawned(&work, |work| async move { work.resumed().await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!resumed.is_finished(), "still draining");
        assert!(work.resume(), "a drain was undone");
        finished(resumed, "resumed resolves on resume").await;
        assert!(!work.is_draining());
        let guard = work.begin().expect("work is taken again");
        assert_eq!(work.in_flight(), 1);
        drop(guard);
        // And a new drain is seen by a new `draining()`.
        let began = spawned(&work, |work| async move { work.draining().await });
        tokio::task::yield_now().await;
        assert!(!began.is_finished());
        work.start_draining();
        finished(began, "draining resolves for the second drain").await;
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn drained_ignores_a_drain_undone_before_it_completed() {
        let work = WorkTracker::new();
        let guard = work.begin().unwrap();
        work.start_draining();
        let waiter = spawned(&work, |work| async move { work.drained().await });
        tokio::task::yield_now().await;
        work.resume();
        drop(guard);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            !waiter.is_finished(),
            "idle, but serving again: not drained"
        );
        work.start_draining();
        finished(waiter, "drained by the next drain").await;
    }

    #[test]
    fn begin_after_draining_is_refused_and_uncounted() {
        let work = WorkTracker::new();
        work.start_draining();
        assert!(work.begin().is_none());
        assert_eq!(work.in_flight(), 0);
    }
}
