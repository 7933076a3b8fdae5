//! Panics in a daemon's code turned into errors, so one bad call cannot take the connection, or
//! the daemon, down with it.

use control_api::OpError;
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Runs `fut`, turning a panic into [`OpError::Failed`].
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

/// Locks `mutex` even if a thread panicked while holding it: every mutex in this crate guards
/// state that stays usable after a panic (a log file, a table, a queue), and a control plane
/// that stops working after one panic would be worse than the panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
