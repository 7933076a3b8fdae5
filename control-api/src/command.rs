//! A daemon's own commands, typed on both sides, and the generic `describe` and `call` that carry
//! them.
//!
//! A command is one type: its fields are the arguments, its constants the name, doc line and
//! access level, and [`Command::Reply`] the reply. The daemon registers a handler for it
//! (`control_server::Builder::command`); a Rust client calls it with the same type
//! ([`Client::call`](crate::client::Client::call)); `ctl call` finds its arguments in the
//! schema `describe` returns.
//!
//! ```
//! use control_api::{Access, Command};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! /// Arguments of `flush-cache`.
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct FlushCache {
//!     /// Only entries under this prefix; all when absent.
//!     #[serde(default)]
//!     prefix: Option<String>,
//! }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Flushed {
//!     entries: u64,
//! }
//!
//! impl Command for FlushCache {
//!     const NAME: &'static str = "flush-cache";
//!     const DOC: &'static str = "Drop cached entries";
//!     const ACCESS: Access = Access::Operate;
//!     type Reply = Flushed;
//! }
//! ```

use crate::Access;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A daemon's own command: the request type, with its name, doc line, access level and reply.
pub trait Command: Serialize + DeserializeOwned + JsonSchema + Send + 'static {
    /// The name on the wire and on `ctl call`'s command line (lower case, `-` between words):
    /// 1 to 64 ASCII letters, digits, `-` or `_`, starting with a letter, or the server refuses
    /// it when it binds.
    const NAME: &'static str;
    /// One line for `ctl describe`.
    const DOC: &'static str;
    /// What a caller needs to be granted to run it.
    const ACCESS: Access;
    /// What a successful call returns.
    type Reply: Serialize + DeserializeOwned + JsonSchema + Send + 'static;

    /// What this call needs, when it depends on the arguments (reading the log filter needs
    /// `read`, changing it `admin`); [`Command::ACCESS`] unless overridden. The server decides
    /// by this alone, both when it keeps a deadline and when it admits the call.
    fn access(&self) -> Access {
        Self::ACCESS
    }

    /// Whether the call that answered `reply` changed anything in the daemon: `Some(false)`
    /// when what was asked for was already so (a value set to the one it had), `Some(true)`
    /// when something changed, `None` (the default) when the command does not say. The server
    /// sends it beside the reply of a command that travels inside `call` (`ctl --json` shows it
    /// as `changed`, and the Ansible module reports it), so a tool that runs the same command
    /// twice can tell the second run did nothing. A Rust caller with the same type asks this
    /// function itself.
    ///
    /// Decide it from the reply alone, so that both sides can: give the reply what it takes
    /// (the value before the call, or a field saying so).
    fn changed(reply: &Self::Reply) -> Option<bool> {
        let _ = reply;
        None
    }
}

/// The JSON Schema of `T`, as `describe` reports it.
pub fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// Argument of [`Control::describe`](crate::Control::describe).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DescribeRequest {}

/// Reply of [`Control::describe`](crate::Control::describe): everything the daemon serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Description {
    /// Built-in operations and the daemon's own commands, in the order registered.
    pub operations: Vec<OperationInfo>,
}

/// One operation or command, as `describe` tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OperationInfo {
    /// The wire name (`reload`, `set-message`).
    pub name: String,
    /// One line saying what it does.
    pub doc: String,
    /// What a caller needs to be granted to run it.
    pub access: Access,
    /// A built-in operation or the daemon's own command.
    pub kind: OperationKind,
    /// JSON Schema of its arguments (an object's properties).
    #[serde(default)]
    pub args: Value,
    /// JSON Schema of its reply.
    #[serde(default)]
    pub reply: Value,
}

/// Where an operation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Part of the protocol (`status`, `reload`, ...): it has a `ctl` command of its own.
    Builtin,
    /// The daemon's own, run with `ctl call`.
    Command,
    /// A kind this build does not know, from a newer daemon.
    #[serde(other)]
    Other,
}

/// Argument of [`Control::call`](crate::Control::call).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CallRequest {
    /// The command's name.
    pub command: String,
    /// Its arguments, an object: field name to value.
    pub args: Value,
}

/// Reply of a successful [`Control::call`](crate::Control::call).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallReply {
    /// The command's reply, as its `Reply` type serializes.
    pub reply: Value,
    /// Whether the call changed anything in the daemon ([`Command::changed`]); absent when the
    /// command does not say, and from daemons that predate it. Added after the first release:
    /// a client that does not know it ignores it, and one that does reads a missing one as
    /// "not said".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}
