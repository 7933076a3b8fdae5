//! `log-level`: read the daemon's log filter (read access), or validate and replace it (admin).

use crate::log_level::LogFilter;
use crate::registry::Entry;
use control_api::{LogLevelReply, LogLevelRequest, OpError};
use std::sync::Arc;

/// The `log-level` operation for a registered filter.
pub(crate) fn entry(filter: Box<dyn LogFilter>) -> Entry {
    let filter: Arc<dyn LogFilter> = Arc::from(filter);
    Entry::builtin(move |_, req: LogLevelRequest| {
        let filter = filter.clone();
        async move { apply(&*filter, req) }
    })
}

fn apply(log_filter: &dyn LogFilter, req: LogLevelRequest) -> Result<LogLevelReply, OpError> {
    match req.filter {
        None => Ok(LogLevelReply {
            filter: log_filter.current(),
            previous: None,
        }),
        Some(filter) => {
            let previous = log_filter.replace(&filter).map_err(|e| {
                OpError::failed_because("log filter refused, the current one stays", &e)
            })?;
            tracing::info!("log filter changed from {previous:?} to {filter:?}");
            Ok(LogLevelReply {
                filter: log_filter.current(),
                previous: Some(previous),
            })
        }
    }
}
