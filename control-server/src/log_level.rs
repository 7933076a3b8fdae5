//! `log-level`: read or change the daemon's `tracing` filter at runtime.

use std::fmt;
use tracing_subscriber::reload;
use tracing_subscriber::EnvFilter;

/// A log filter the server can read and replace for `ctl log-level`.
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
/// // Server::builder("mydaemon", handler).log_filter(handle)
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

/// Parses strictly: `EnvFilter::try_new` rejects what `EnvFilter::new` would silently drop.
fn parse(filter: &str) -> Result<EnvFilter, FilterError> {
    let invalid = |message: &dyn fmt::Display| FilterError::Invalid {
        filter: filter.to_owned(),
        message: message.to_string(),
    };
    if filter.trim().is_empty() {
        return Err(invalid(&"it is empty; to log nothing, use `off`"));
    }
    EnvFilter::try_new(filter).map_err(|e| invalid(&e))
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
    }
}
