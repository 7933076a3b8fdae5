//! `hello` and `describe`: what the registry holds, as the first call of every client and as
//! the full description `ctl describe` prints.

use crate::registry::Entry;
use control_api::{
    DescribeRequest, Description, Hello, HelloRequest, OpError, OperationInfo, PROTOCOL_VERSION,
};
use std::sync::{Arc, OnceLock};

/// The registry's contents, filled in once every operation is registered (the entries of
/// `hello` and `describe` are themselves in it).
pub(crate) type Catalog = Arc<OnceLock<Vec<OperationInfo>>>;

fn listed(catalog: &Catalog) -> &[OperationInfo] {
    catalog.get().map_or(&[], Vec::as_slice)
}

/// `hello`: protocol version, identity, and the names of everything registered.
pub(crate) fn hello(name: String, version: String, catalog: Catalog) -> Entry {
    Entry::builtin(move |_, req: HelloRequest| {
        tracing::trace!(client = req.client, protocol = req.protocol, "hello");
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            name: name.clone(),
            version: version.clone(),
            pid: std::process::id(),
            operations: listed(&catalog).iter().map(|i| i.name.clone()).collect(),
        };
        std::future::ready(Ok::<_, OpError>(hello))
    })
}

/// `describe`: every operation and command with its doc line, access level and schemas.
pub(crate) fn describe(catalog: Catalog) -> Entry {
    Entry::builtin(move |_, _: DescribeRequest| {
        let operations = listed(&catalog).to_vec();
        std::future::ready(Ok::<_, OpError>(Description { operations }))
    })
}
