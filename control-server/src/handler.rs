//! What a daemon's handlers get and return: the call's [`OpContext`], [`Reloaded`] and
//! [`DaemonStatus`].

use crate::policy::Peer;
use control_api::{FieldValue, StatusField};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What a call is about: who asked, and until when they wait.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpContext {
    /// The operation or command being run, by name.
    pub operation: &'static str,
    /// The caller, as the kernel identified it.
    pub peer: Peer,
    /// When the caller stops waiting. Mutating operations run to completion anyway (the reply
    /// is then only logged), so use this to decide whether to start slow work, not to abandon
    /// work half-done.
    pub deadline: Instant,
}

impl OpContext {
    /// A context for calling a handler directly, e.g. in the daemon's own tests.
    pub fn new(operation: &'static str, peer: Peer, deadline: Instant) -> Self {
        OpContext {
            operation,
            peer,
            deadline,
        }
    }

    /// Whether the caller's deadline has passed: check it before applying anything the caller
    /// may no longer expect (see [`Reloadable::reload`](crate::Reloadable::reload)).
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Resolves at the caller's deadline: `select!` on it to stop waiting for something.
    pub async fn until_deadline(&self) {
        tokio::time::sleep_until(self.deadline.into()).await
    }
}

/// A successful reload, as the daemon describes it. The server assigns the generation: one
/// more for each reload that changed something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// What changed, in one line (e.g. `interval_ms 100 -> 50`); may be empty.
    pub summary: String,
    /// The new configuration equals the old one: the generation stays.
    pub unchanged: bool,
}

impl Reloaded {
    /// A reload that applied a new configuration; `summary` says what changed.
    pub fn changed(summary: impl Into<String>) -> Self {
        Reloaded {
            summary: summary.into(),
            unchanged: false,
        }
    }

    /// A reload that found the configuration as it was.
    pub fn unchanged() -> Self {
        Reloaded {
            summary: "no change".into(),
            unchanged: true,
        }
    }
}

/// The daemon's part of `status`; the server adds pid, uptime, name, version and the reload
/// history.
///
/// Add your own fields with [`field`](Self::field): each keeps its type (`ctl --json status`
/// shows numbers as numbers) and its place (`ctl status` shows them in the order added).
///
/// ```
/// use control_server::DaemonStatus;
/// use std::time::Duration;
///
/// let status = DaemonStatus::new()
///     .field("lines_written", 42u64)
///     .field("interval", Duration::from_millis(50))
///     .field("message", "hi");
/// assert_eq!(status.values[1].name, "interval");
/// ```
///
/// # How it combines with what the server knows
///
/// - `in_flight`: the handler's count is **added** to that of the registered
///   [`WorkTracker`](crate::WorkTracker); report only work the tracker does not see.
/// - `draining`: **or-ed** with the tracker's: the daemon is draining if either says so.
/// - `log_files`: the files registered with [`Builder::log_file`](crate::Builder::log_file)
///   first, then these.
/// - fields: [`values`](Self::values) in their order, then the entries of the untyped
///   [`fields`](Self::fields) map not named there, as text. Clients that predate typed fields
///   get all of them as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonStatus {
    /// Whether the daemon is draining (or-ed with the tracker's).
    pub draining: bool,
    /// Units of work in flight (added to the tracker's).
    pub in_flight: u64,
    /// Log files the daemon writes, besides those registered with the server.
    pub log_files: Vec<PathBuf>,
    /// Anything else worth showing an operator, typed, in the order to show it. Set with
    /// [`field`](Self::field).
    pub values: Vec<StatusField>,
    /// Fields as text, by name, from before [`values`](Self::values); shown after them. Prefer
    /// [`field`](Self::field).
    pub fields: BTreeMap<String, String>,
}

impl DaemonStatus {
    /// Nothing in flight, not draining, no fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the field `name` after those added before, or replaces its value if there is one:
    /// an integer, float, bool, text or [`Duration`](std::time::Duration).
    pub fn field(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        let field = StatusField::new(name, value);
        match self.values.iter_mut().find(|f| f.name == field.name) {
            Some(existing) => existing.value = field.value,
            None => self.values.push(field),
        }
        self
    }

    /// The fields as sent: typed in order, and as text for older clients.
    pub(crate) fn into_wire_fields(self) -> (Vec<StatusField>, BTreeMap<String, String>) {
        let mut values = self.values;
        for (name, text) in self.fields {
            if !values.iter().any(|f| f.name == name) {
                values.push(StatusField::new(name, text));
            }
        }
        let text = values
            .iter()
            .map(|f| (f.name.clone(), f.value.to_string()))
            .collect();
        (values, text)
    }
}

/// A daemon's function run for an operation, boxed: what the builder keeps of a closure such
/// as `.reload(|ctx| async move { ... })`.
pub(crate) type Hook<T> = Arc<dyn Fn(OpContext) -> BoxFuture<'static, T> + Send + Sync>;

/// Boxes `f` as a [`Hook`].
pub(crate) fn hook<T, F, Fut>(f: F) -> Hook<T>
where
    F: Fn(OpContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fields_keep_their_order_and_types_and_a_name_is_replaced_in_place() {
        let mut status = DaemonStatus::new()
            .field("zeta", 1u64)
            .field("alpha", Duration::from_millis(50))
            .field("mid", "x")
            .field("zeta", 2u64);
        status.fields.insert("alpha".into(), "ignored".into());
        status.fields.insert("legacy".into(), "text".into());
        let (values, text) = status.into_wire_fields();
        let names: Vec<_> = values.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid", "legacy"]);
        assert_eq!(values[0].value, FieldValue::Unsigned(2));
        assert_eq!(
            values[1].value,
            FieldValue::Duration(Duration::from_millis(50))
        );
        assert_eq!(values[3].value, FieldValue::String("text".into()));
        // Older clients get every field as text; the typed value wins over the untyped one.
        assert_eq!(text["zeta"], "2");
        assert_eq!(text["alpha"], "50ms");
        assert_eq!(text["legacy"], "text");
        assert_eq!(text.len(), 4);
    }
}
