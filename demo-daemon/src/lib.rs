//! The demo daemon's own commands, as types: the daemon serves them and any Rust program calls
//! them with [`control_api::Client::call`], from this one definition.
#![deny(missing_docs)]

use control_api::{Access, Command};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest `set-message` text, in bytes: every later log line carries it.
pub const MAX_MESSAGE_LEN: usize = 256;

/// `set-message text=STRING`: later log lines carry `text` (until the next `set-message`; a
/// reload does not undo it), and `status` shows it. At most [`MAX_MESSAGE_LEN`] bytes;
/// newlines and control characters are written escaped (`\n`), so the text stays on its line.
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
    /// An earlier `set-message` had set this very text: nothing changed. (Text that only
    /// equals the configuration's `message` is a change: a reload no longer changes it.)
    #[serde(default)]
    pub unchanged: bool,
}

impl Command for SetMessage {
    const NAME: &'static str = "set-message";
    const DOC: &'static str = "Set the text later log lines carry";
    const ACCESS: Access = Access::Operate;
    type Reply = MessageSet;

    /// Sent beside the reply (`ctl --json call` shows it as `changed`): the Ansible module's
    /// task is `ok`, not `changed`, when the text was already set.
    fn changed(reply: &MessageSet) -> Option<bool> {
        Some(!reply.unchanged)
    }
}

/// `stats`: the daemon's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {}

/// Reply of [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counters {
    /// `seq=` lines handed to the log file since start.
    pub lines: u64,
    /// Bytes written to the log file since start (the daemon's own log lines included).
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
