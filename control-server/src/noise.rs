//! Log lines a caller can cause, rate-limited: the first of a kind is logged whole, the rest of
//! the interval are counted and summed up in one line when it ends.
//!
//! Without this, one connection pipelining refused requests wrote 268,000 warnings in five
//! seconds: a control plane that any local user could turn into a disk filler. The same holds
//! for lines that another user causes through the file system (a symbolic link swapped in at
//! the log path, over and over), which the log file's own threads say: a [`Throttle`] works on
//! any thread, with or without a Tokio runtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a kind of line stays quiet after it was logged.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// The rate limit of one kind of log line: the first of an interval (10 s) is logged whole,
/// the rest are counted and summed up in one line when the interval ends.
///
/// ```
/// use control_server::Throttle;
///
/// let refused = Throttle::new("refused requests");
/// // Wherever a caller can make the daemon say a line as often as they like:
/// if refused.admit() {
///     tracing::warn!("request refused: ...");
/// }
/// ```
pub struct Throttle {
    /// What is counted, for the summary line ("refused calls").
    what: &'static str,
    window: Mutex<Window>,
    /// Where else the summary goes (the audit's syslog lines sum up there too).
    also: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("what", &self.what)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Window {
    /// When the line was last logged whole; `None` before the first.
    logged_at: Option<Instant>,
    /// Lines not logged since then.
    suppressed: u64,
    /// Whether a task will log the summary at the window's end.
    summary_due: bool,
}

impl Throttle {
    /// A throttle whose summary line counts `what` ("refused calls").
    pub fn new(what: &'static str) -> Arc<Throttle> {
        Arc::new(Throttle {
            what,
            window: Mutex::new(Window::default()),
            also: None,
        })
    }

    /// A throttle whose summary is also given to `also` (the number held back), for lines
    /// that go somewhere besides the daemon's log.
    pub(crate) fn summing_up_to(
        what: &'static str,
        also: impl Fn(u64) + Send + Sync + 'static,
    ) -> Arc<Throttle> {
        Arc::new(Throttle {
            what,
            window: Mutex::new(Window::default()),
            also: Some(Box::new(also)),
        })
    }

    /// Whether to log this occurrence whole. If not, it is counted, and the count is logged in
    /// one line when the interval ends (by a timer that exists only while lines are being
    /// suppressed: a quiet daemon has no wake-ups for this). On a runtime the timer is a task;
    /// on a thread of its own (the log file's watch and writer), a short-lived thread that
    /// sleeps until the interval ends, at most one per throttle and interval.
    pub fn admit(self: &Arc<Self>) -> bool {
        let now = Instant::now();
        let schedule_summary_at = {
            let mut window = self.lock();
            match window.logged_at {
                Some(at) if now < at + INTERVAL => {
                    window.suppressed += 1;
                    if window.summary_due {
                        None
                    } else {
                        window.summary_due = true;
                        Some(at + INTERVAL)
                    }
                }
                _ => {
                    window.logged_at = Some(now);
                    return true;
                }
            }
        };
        if let Some(at) = schedule_summary_at {
            let this = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        tokio::time::sleep_until(at).await;
                        this.summarise();
                    });
                }
                Err(_) => {
                    let spawned =
                        std::thread::Builder::new()
                            .name("log-noise".into())
                            .spawn(move || {
                                let left = at.saturating_duration_since(Instant::now());
                                std::thread::sleep(left);
                                this.summarise();
                            });
                    if spawned.is_err() {
                        // No thread to be had: the count waits for the next suppressed line.
                        self.lock().summary_due = false;
                    }
                }
            }
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        crate::panic::lock(&self.window)
    }

    /// Logs how many lines the ending window held back. Logged outside the lock: a subscriber
    /// must never wait on it.
    fn summarise(&self) {
        let suppressed = {
            let mut window = self.lock();
            window.summary_due = false;
            // The next occurrence starts a new window and is logged whole.
            window.logged_at = None;
            std::mem::take(&mut window.suppressed)
        };
        if suppressed > 0 {
            tracing::warn!(
                "{suppressed} more {} in the last {}s, not logged one by one",
                self.what,
                INTERVAL.as_secs()
            );
            if let Some(also) = &self.also {
                also(suppressed);
            }
        }
    }
}

/// The throttles of the server's caller-caused lines, one per kind.
#[derive(Debug)]
pub(crate) struct Noise {
    /// Calls refused by the policy.
    pub refused_calls: Arc<Throttle>,
    /// Connections refused or dropped for want of room (slots, descriptors).
    pub no_room: Arc<Throttle>,
    /// Connections closed for what their caller sent or did not read.
    pub bad_input: Arc<Throttle>,
    /// Connections closed for saying nothing.
    pub idle: Arc<Throttle>,
    /// The lines of calls by callers other than root (which root's own are never held in).
    pub calls: Arc<Throttle>,
    /// Replies over the frame limit: any caller may ask for them again and again.
    pub big_replies: Arc<Throttle>,
}

impl Noise {
    pub fn new() -> Noise {
        Noise {
            refused_calls: Throttle::new("refused calls"),
            no_room: Throttle::new("connections refused or closed for want of room"),
            bad_input: Throttle::new("connections closed for bad input"),
            idle: Throttle::new("idle connections closed"),
            calls: Throttle::new("calls by callers other than root"),
            big_replies: Throttle::new("replies over the frame limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_first_is_logged_the_rest_counted_until_the_interval_ends() {
        let throttle = Throttle::new("things");
        assert!(throttle.admit());
        for _ in 0..1000 {
            assert!(!throttle.admit());
        }
        assert_eq!(throttle.lock().suppressed, 1000);
        assert!(throttle.lock().summary_due);
        tokio::time::sleep(INTERVAL + Duration::from_millis(1)).await;
        assert_eq!(throttle.lock().suppressed, 0, "summed up at the end");
        assert!(throttle.admit(), "a new interval logs the first again");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_lone_line_per_interval_is_always_logged() {
        let throttle = Throttle::new("things");
        for _ in 0..3 {
            assert!(throttle.admit());
            tokio::time::sleep(INTERVAL).await;
        }
        assert!(!throttle.lock().summary_due, "nothing held back, no timer");
    }
}
