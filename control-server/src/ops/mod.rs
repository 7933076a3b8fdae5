//! The built-in operations, each a registry entry that owns its state. One that needs no
//! state of the server's is an entry in [`stateless`]; one that does is a file here and a line
//! in `Builder::bind`.

use crate::registry::Entry;
use control_api::{OpError, PingReply, PingRequest};
use std::future::ready;

pub(crate) mod counters;
pub(crate) mod describe;
pub(crate) mod drain;
pub(crate) mod history;
pub(crate) mod log_level;
pub(crate) mod reload;
pub(crate) mod renamed;
pub(crate) mod rotate;
pub(crate) mod status;

/// The built-ins every server serves that need nothing but the call.
pub(crate) fn stateless() -> Vec<Entry> {
    vec![Entry::builtin(|_, _: PingRequest| {
        ready(Ok::<_, OpError>(PingReply {}))
    })]
}
