//! `counters`: the daemon's registered counters, then the server's own, read without stopping
//! anyone who updates them.

use crate::counters::Counters;
use crate::registry::Entry;
use control_api::{CountersReply, CountersRequest, OpError};

/// The `counters` operation, over the daemon's set and the server's.
pub(crate) fn entry(daemon: Counters, server: Counters) -> Entry {
    Entry::builtin(move |_, req: CountersRequest| {
        let prefix = req.prefix.unwrap_or_default();
        let mut counters = daemon.read(&prefix);
        counters.extend(server.read(&prefix));
        std::future::ready(Ok::<_, OpError>(CountersReply { counters }))
    })
}
