//! Request and reply types. Every struct is `#[serde(default)]`: a field added later is simply
//! absent when an older peer sends the struct, and unknown fields are ignored.

use crate::Operation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Argument of [`Control::hello`](crate::Control::hello).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HelloRequest {
    /// The client's protocol version, for the daemon's log.
    pub protocol: u32,
    /// A name for the client, for the daemon's log (e.g. `ctl 0.1.0`).
    pub client: String,
}

/// Reply of [`Control::hello`](crate::Control::hello). Its shape never changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hello {
    /// The daemon's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    pub protocol: u32,
    /// The daemon's name, as used in its socket name.
    pub name: String,
    /// The daemon's own version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Operations this daemon supports, by wire name. May name operations the client does not
    /// know; an operation not listed answers [`OpError::Unsupported`](crate::OpError::Unsupported).
    pub operations: Vec<String>,
}

impl Hello {
    /// Whether the daemon lists `op` as supported.
    pub fn supports(&self, op: Operation) -> bool {
        self.operations.iter().any(|name| name == op.as_str())
    }
}

/// Argument of [`Control::status`](crate::Control::status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusRequest {}

/// Reply of [`Control::status`](crate::Control::status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The daemon's name.
    pub name: String,
    /// The daemon's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Milliseconds since the control server started.
    pub uptime_ms: u64,
    /// Generation of the configuration now active: 1 at start, one more per applied reload.
    pub config_generation: u64,
    /// Outcome of the most recent reload, if any ran.
    pub last_reload: Option<ReloadOutcome>,
    /// Whether the daemon is draining (takes no new work).
    pub draining: bool,
    /// Units of work in flight.
    pub in_flight: u64,
    /// Log files the daemon writes and reopens on `rotate`.
    pub log_files: Vec<PathBuf>,
    /// Fields the daemon adds (queue depth, peers, ...), by name.
    pub fields: BTreeMap<String, String>,
}

/// What the last reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadOutcome {
    /// Whether the new configuration was applied.
    pub ok: bool,
    /// Generation active after it (unchanged when it failed).
    pub generation: u64,
    /// On success, what changed; on failure, why it failed.
    pub message: String,
    /// When it finished, in milliseconds since the Unix epoch.
    pub finished_unix_ms: u64,
}

/// Argument of [`Control::reload`](crate::Control::reload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadRequest {}

/// Reply of a successful [`Control::reload`](crate::Control::reload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadReply {
    /// Generation of the configuration now active.
    pub generation: u64,
    /// What changed, in the daemon's words (e.g. `interval_ms 100 -> 50`); empty if it says
    /// nothing.
    pub summary: String,
    /// This call did not start a reload of its own: it arrived while another caller's request
    /// was pending and shares the result of the reload that began after both requests.
    pub joined: bool,
    /// The new configuration equals the old one; the generation did not change.
    pub unchanged: bool,
}

/// Argument of [`Control::rotate`](crate::Control::rotate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RotateRequest {}

/// Reply of a successful [`Control::rotate`](crate::Control::rotate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RotateReply {
    /// One entry per log file, in the order the daemon registered them.
    pub files: Vec<ReopenedFile>,
}

/// One log file reopened by `rotate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReopenedFile {
    /// The path the daemon writes to.
    pub path: PathBuf,
    /// The file written to before the reopen.
    pub old: Option<FileId>,
    /// The file written to now. Differs from `old` when logrotate had renamed the file.
    pub new: Option<FileId>,
    /// Bytes written to the old file since it was opened.
    pub bytes_to_old: u64,
    /// Why the file could not be reopened; the daemon then keeps writing to the old one.
    pub error: Option<String>,
}

/// Identity of a file: device and inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Argument of [`Control::drain`](crate::Control::drain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrainRequest {}

/// Reply of [`Control::drain`](crate::Control::drain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrainReply {
    /// Whether everything in flight finished before the deadline.
    pub completed: bool,
    /// Units of work still in flight when the reply was sent.
    pub in_flight: u64,
}

/// Argument of [`Control::log_level`](crate::Control::log_level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLevelRequest {
    /// The new filter (e.g. `debug`, `info,my_daemon::net=trace`); `None` only reads the
    /// current one.
    pub filter: Option<String>,
}

/// Reply of [`Control::log_level`](crate::Control::log_level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLevelReply {
    /// The filter now in effect.
    pub filter: String,
    /// The filter before this call, when it changed it.
    pub previous: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unknown_fields_are_tolerated() {
        // An older daemon sends fewer fields, a newer one more: both must decode.
        let status: Status =
            serde_json::from_str(r#"{"name":"d","pid":7,"added_in_v9":[1,2]}"#).unwrap();
        assert_eq!(status.name, "d");
        assert_eq!(status.pid, 7);
        assert_eq!(status.config_generation, 0);
        assert!(status.last_reload.is_none());
    }

    #[test]
    fn hello_lists_operations_by_name_including_unknown_ones() {
        let hello: Hello =
            serde_json::from_str(r#"{"protocol":1,"operations":["status","teleport"]}"#).unwrap();
        assert!(hello.supports(Operation::Status));
        assert!(!hello.supports(Operation::Reload));
    }
}
