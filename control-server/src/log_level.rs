//! `log-level`: read or change the daemon's `tracing` filter at runtime.

use std::fmt;
use tracing_subscriber::reload;
use tracing_subscriber::EnvFilter;

/// Longest filter accepted, in bytes: a filter is a few directives, and parsing and matching
/// cost grows with it.
pub const MAX_FILTER_LEN: usize = 1024;

/// A log filter the server can read and replace for `ctl log-level`.
///
/// Field values in the filters `ctl log-level` sends match the value's `Debug` form literally
/// (`info[{user="alice"}]`, `[{port=8080}]=debug`), never as regular expressions: a caller's regex can take the daemon seconds and gigabytes to
/// compile, and the filter is parsed on the runtime.
///
/// Implemented for [`tracing_subscriber::reload::Handle<EnvFilter, S>`]: build the daemon's
/// subscriber with a reloadable `EnvFilter` and give the handle to
/// [`Builder::log_filter`](crate::Builder::log_filter).
///
/// ```
/// use tracing_subscriber::{prelude::*, reload, EnvFilter};
///
/// let (filter, handle) = reload::Layer::new(EnvFilter::new("info"));
/// tracing_subscriber::registry()
///     .with(filter)
///     .with(tracing_subscriber::fmt::layer())
///     .init();
/// # use control_server::log_level::LogFilter;
/// assert_eq!(handle.current(), "info");
/// assert!(handle.replace("not==a filter").is_err(), "refused, and `info` stays");
/// assert_eq!(handle.replace("debug,my_daemon::net=trace").unwrap(), "info");
/// // Server::builder("mydaemon").log_filter(handle)
/// ```
pub trait LogFilter: Send + Sync + 'static {
    /// The filter in effect, in the syntax `replace` accepts.
    fn current(&self) -> String;

    /// Validates `filter` completely and, only if it is valid, puts it in effect; returns the
    /// previous filter. On error nothing changes.
    fn replace(&self, filter: &str) -> Result<String, FilterError>;
}

/// Why a filter was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The filter does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    Invalid {
        /// The filter as given.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// The filter is longer than [`MAX_FILTER_LEN`].
    #[error("the filter is {len} bytes long, more than the {limit} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_FILTER_LEN`].
        limit: usize,
    },
    /// The subscriber holding the filter is gone.
    #[error("the log subscriber is gone; the filter cannot be changed")]
    Gone,
}

impl<S> LogFilter for reload::Handle<EnvFilter, S>
where
    S: Send + Sync + 'static,
{
    fn current(&self) -> String {
        self.with_current(|f| f.to_string()).unwrap_or_default()
    }

    fn replace(&self, filter: &str) -> Result<String, FilterError> {
        let new = parse(filter)?;
        let previous = self.current();
        self.reload(new).map_err(|_| FilterError::Gone)?;
        Ok(previous)
    }
}

/// Parses strictly (`parse` rejects what `EnvFilter::new` would silently drop), in bounded
/// time and memory: a length cap, and field values as literals, with no regex compiled.
fn parse(filter: &str) -> Result<EnvFilter, FilterError> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(FilterError::TooLong {
            len: filter.len(),
            limit: MAX_FILTER_LEN,
        });
    }
    let invalid = |message: &dyn fmt::Display| FilterError::Invalid {
        filter: filter.to_owned(),
        message: message.to_string(),
    };
    if filter.trim().is_empty() {
        return Err(invalid(&"it is empty; to log nothing, use `off`"));
    }
    EnvFilter::builder()
        .with_regex(false)
        .parse(filter)
        .map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing() {
        for good in [
            "info",
            "debug,my_daemon::net=trace",
            "off",
            "warn,tarpc=error",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for bad in ["", "  ", "not==a filter", "my_daemon=loud"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("info,{}", "a=debug,".repeat(200));
        assert!(matches!(parse(&long), Err(FilterError::TooLong { .. })));
    }

    /// The filter from the issue: with regexes on, `EnvFilter` compiled its field value into a
    /// DFA for 14-20 s and 800 MB, on the runtime.
    #[test]
    fn a_regex_bomb_is_parsed_at_once_as_a_literal() {
        let filter = format!("info[{{x=(a|b)*a{}}}]", "(a|b)".repeat(20));
        let (tx, rx) = std::sync::mpsc::channel();
        let f = filter.clone();
        std::thread::spawn(move || {
            tx.send(parse(&f).map(|f| f.to_string()).map_err(|e| e.to_string()))
        });
        let parsed = rx
            // Parsing a literal takes microseconds; the bound is for a compile that never ends,
            // generous enough that a loaded machine does not trip it.
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("parsing took more than 30 s: a regex is being compiled")
            .unwrap();
        assert!(parsed.contains("x=(a|b)*a(a|b)"), "{parsed}");
    }

    #[test]
    fn field_values_match_literally() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tracing_subscriber::prelude::*;

        /// Counts the events the filter lets through.
        struct Count(Arc<AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
            fn on_event(
                &self,
                _: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        let filter = parse(r#"warn,[{user="a.c"}]=debug"#).unwrap();
        let subscriber =
            tracing_subscriber::registry().with(Count(count.clone()).with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            // The literal `"a.c"` is the Debug form of the second value only; as a regex it
            // would need quotes inside the value and match neither.
            tracing::info_span!("req", user = "abc").in_scope(|| tracing::debug!("hidden"));
            tracing::info_span!("req", user = "a.c").in_scope(|| tracing::debug!("shown"));
        });
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
