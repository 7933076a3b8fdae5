//! The demo daemon's own commands, as types: the daemon serves them and any Rust program calls
//! them with [`control_api::Client::call`], from this one definition.
#![deny(missing_docs)]

use control_api::{Access, Command};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `set-message text=STRING`: later log lines carry `text` (until the next `set-message`; a
/// reload does not undo it), and `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetMessage {
    /// The text later log lines carry.
    pub text: String,
}

/// Reply of [`SetMessage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageSet {
    /// The message before this call.
    pub previous: String,
    /// The message from now on.
    pub message: String,
}

impl Command for SetMessage {
    const NAME: &'static str = "set-message";
    const DOC: &'static str = "Set the text later log lines carry";
    const ACCESS: Access = Access::Operate;
    type Reply = MessageSet;
}

/// `stats`: the daemon's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {}

/// Reply of [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counters {
    /// Log lines written since start.
    pub lines: u64,
    /// Bytes of log lines written since start.
    pub bytes: u64,
    /// Times the reload handler ran.
    pub reloads: u64,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

impl Command for Stats {
    const NAME: &'static str = "stats";
    const DOC: &'static str =
        "Show the daemon's counters: lines and bytes written, reloads, uptime";
    const ACCESS: Access = Access::Read;
    type Reply = Counters;
}
