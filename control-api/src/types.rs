//! Request and reply types.
//!
//! Unknown fields are ignored everywhere, so a newer peer's additions never break an older one.
//! Missing fields are treated by direction:
//!
//! - Requests are `#[serde(default)]` as a whole: a daemon fills in what an older client did not
//!   send.
//! - Replies require every field the first release sent: a reply without them is not a reply
//!   of this protocol (another program on the socket, a broken daemon), and the client must say
//!   so rather than show zeros. Optional fields (`Option`) and fields added after the first
//!   release carry `#[serde(default)]` of their own, so an older daemon's reply still decodes.
//!   A field added later must do the same.

use crate::StatusField;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Argument of [`Control::hello`](crate::Control::hello).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HelloRequest {
    /// The client's protocol version, for the daemon's log.
    pub protocol: u32,
    /// A name for the client, for the daemon's log (e.g. `ctl 0.1.0`).
    pub client: String,
}

/// Reply of [`Control::hello`](crate::Control::hello). Its shape never changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    pub fn supports(&self, op: &str) -> bool {
        self.operations.iter().any(|name| name == op)
    }
}

/// Argument of [`Control::status`](crate::Control::status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct StatusRequest {}

/// Reply of [`Control::status`](crate::Control::status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    #[serde(default)]
    pub last_reload: Option<ReloadOutcome>,
    /// Whether the daemon is draining (takes no new work).
    pub draining: bool,
    /// Units of work in flight.
    pub in_flight: u64,
    /// Log files the daemon writes and reopens on `rotate`.
    pub log_files: Vec<PathBuf>,
    /// Fields the daemon adds (queue depth, peers, ...), by name, as text. Still sent for
    /// clients that predate [`Status::values`], which carries the same fields typed.
    pub fields: BTreeMap<String, String>,
    /// The same fields as `fields`, typed and in the daemon's order; a client that finds them
    /// prefers them. Added after the first release: absent (empty) from an older daemon.
    #[serde(default)]
    pub values: Vec<StatusField>,
    /// Outcome of the most recent `rotate` (a caller's or SIGHUP's), if any ran since start.
    /// Added in the third round: absent (none) from an older daemon.
    #[serde(default)]
    pub last_rotate: Option<RotateOutcome>,
    /// Log files the daemon still writes to although their path no longer names them: renamed
    /// or deleted, and not reopened (a rotate that failed or never reached the daemon). Added
    /// in the third round: absent (empty) from an older daemon.
    #[serde(default)]
    pub renamed_log_files: Vec<RenamedLogFile>,
}

/// What the last `rotate` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RotateOutcome {
    /// Whether every log file was reopened.
    pub ok: bool,
    /// In one line: what was reopened, or why it failed.
    pub message: String,
    /// Each log file, as the rotate reply lists it (failed ones with their `error`).
    pub files: Vec<ReopenedFile>,
    /// When it finished, in milliseconds since the Unix epoch.
    pub finished_unix_ms: u64,
    /// It finished after its caller's deadline: the caller was not told the outcome.
    #[serde(default)]
    pub late: bool,
    /// It was run for a SIGHUP, not for a caller.
    #[serde(default)]
    pub sighup: bool,
}

/// A log file still written to at a path that no longer names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RenamedLogFile {
    /// The path the daemon opened, and reopens on `rotate`.
    pub path: PathBuf,
    /// The file still written to.
    pub file: FileId,
    /// Where that file is now (its name as the kernel knows it), when it is still linked
    /// somewhere and could be found.
    #[serde(default)]
    pub now_at: Option<PathBuf>,
    /// The file has no name left: deleted while still written to (its lines are lost when the
    /// daemon closes it).
    #[serde(default)]
    pub deleted: bool,
}

/// What the last reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ReloadRequest {}

/// Reply of a successful [`Control::reload`](crate::Control::reload).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadReply {
    /// Generation of the configuration now active.
    pub generation: u64,
    /// What changed, in the daemon's words (e.g. `interval_ms 100 -> 50`); empty if it says
    /// nothing.
    pub summary: String,
    /// This call did not start a reload of its own: it arrived while another caller's request
    /// was pending and shares the result of the reload that began after both requests. Added
    /// after the first release: absent (false) from an older daemon.
    #[serde(default)]
    pub joined: bool,
    /// The new configuration equals the old one; the generation did not change. Added after
    /// the first release: absent (false) from an older daemon.
    #[serde(default)]
    pub unchanged: bool,
}

/// Argument of [`Control::check`](crate::Control::check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CheckRequest {}

/// Reply of a successful [`Control::check`](crate::Control::check): the configuration on disk
/// is valid, and this is what a reload would change. Nothing was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckReply {
    /// Generation of the configuration active now, which the check did not move.
    pub generation: u64,
    /// What a reload would change, in the words a reload's
    /// [`summary`](ReloadReply::summary) would use.
    pub summary: String,
    /// The configuration on disk equals the active one: a reload would change nothing.
    pub unchanged: bool,
}

/// Argument of [`Control::counters`](crate::Control::counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CountersRequest {
    /// Only the counters whose name starts with this; all when absent.
    pub prefix: Option<String>,
}

/// Reply of [`Control::counters`](crate::Control::counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CountersReply {
    /// The daemon's counters, then the server's own (under `ctl.`), each in the order
    /// registered.
    pub counters: Vec<CounterValue>,
}

/// One counter's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CounterValue {
    /// Its name, e.g. `web.requests` (ASCII letters, digits, `_`, `.`, `:`, `-`).
    pub name: String,
    /// A monotonic count or a gauge.
    pub kind: CounterKind,
    /// The value when read.
    pub value: i64,
    /// What it counts, in one line.
    pub help: String,
}

/// What kind of number a counter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CounterKind {
    /// Only goes up (until the daemon restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Argument of [`Control::rotate`](crate::Control::rotate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RotateRequest {}

/// Reply of a successful [`Control::rotate`](crate::Control::rotate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RotateReply {
    /// One entry per log file, in the order the daemon registered them.
    pub files: Vec<ReopenedFile>,
}

/// One log file reopened by `rotate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReopenedFile {
    /// The path the daemon writes to.
    pub path: PathBuf,
    /// The file written to before the reopen.
    #[serde(default)]
    pub old: Option<FileId>,
    /// The file written to now. Differs from `old` when logrotate had renamed the file.
    #[serde(default)]
    pub new: Option<FileId>,
    /// Bytes written to the old file since it was opened.
    pub bytes_to_old: u64,
    /// Why the file could not be reopened; the daemon then keeps writing to the old one.
    #[serde(default)]
    pub error: Option<String>,
}

/// Identity of a file: device and inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Argument of [`Control::drain`](crate::Control::drain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DrainRequest {}

/// Reply of [`Control::drain`](crate::Control::drain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainReply {
    /// Whether everything in flight finished before the deadline.
    pub completed: bool,
    /// Units of work still in flight when the reply was sent.
    pub in_flight: u64,
    /// The drain ended because a `resume` undid it before it completed (`completed` is then
    /// false): the daemon takes new work again. Added after the first release: absent (false)
    /// from an older daemon.
    #[serde(default)]
    pub resumed: bool,
}

/// Argument of [`Control::resume`](crate::Control::resume).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ResumeRequest {}

/// Reply of a successful [`Control::resume`](crate::Control::resume).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeReply {
    /// Whether the daemon was draining: false when it was serving already and there was
    /// nothing to undo (not an error).
    pub was_draining: bool,
}

/// Argument of [`Control::log_level`](crate::Control::log_level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LogLevelRequest {
    /// The new filter (e.g. `debug`, `info,my_daemon::net=trace`); `None` only reads the
    /// current one.
    pub filter: Option<String>,
}

/// Reply of [`Control::log_level`](crate::Control::log_level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogLevelReply {
    /// The filter now in effect.
    pub filter: String,
    /// The filter before this call, when it changed it.
    #[serde(default)]
    pub previous: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
        let json = serde_json::to_string(&value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, value, "{json}");
    }

    fn status() -> Status {
        Status {
            name: "d".into(),
            version: "1.2.3".into(),
            pid: 7,
            uptime_ms: 1500,
            config_generation: 3,
            last_reload: Some(ReloadOutcome {
                ok: false,
                generation: 3,
                message: "line 2: bad".into(),
                finished_unix_ms: 1_700_000_000_000,
            }),
            draining: true,
            in_flight: 2,
            log_files: vec!["/var/log/d.log".into()],
            fields: [("queue".to_owned(), "4".to_owned())].into(),
            values: vec![StatusField::new("queue", 4u64)],
            last_rotate: Some(RotateOutcome {
                ok: false,
                message: "could not reopen 1 of 1 log files".into(),
                files: vec![ReopenedFile {
                    path: "/var/log/d.log".into(),
                    old: Some(FileId { dev: 1, ino: 2 }),
                    new: None,
                    bytes_to_old: 10,
                    error: Some("owned by uid 65534".into()),
                }],
                finished_unix_ms: 1_700_000_000_000,
                late: true,
                sighup: false,
            }),
            renamed_log_files: vec![RenamedLogFile {
                path: "/var/log/d.log".into(),
                file: FileId { dev: 1, ino: 2 },
                now_at: Some("/var/log/d.log.1".into()),
                deleted: false,
            }],
        }
    }

    #[test]
    fn every_reply_as_a_daemon_sends_it_decodes() {
        round_trip(Hello {
            protocol: 1,
            name: "d".into(),
            version: "1.2.3".into(),
            pid: 7,
            operations: vec!["hello".into(), "status".into()],
        });
        round_trip(status());
        round_trip(Status {
            last_reload: None,
            ..status()
        });
        round_trip(ReloadReply {
            generation: 4,
            summary: "interval_ms 100 -> 50".into(),
            joined: true,
            unchanged: false,
        });
        let id = FileId { dev: 1, ino: 2 };
        round_trip(RotateReply {
            files: vec![
                ReopenedFile {
                    path: "/var/log/d.log".into(),
                    old: Some(id),
                    new: Some(FileId { ino: 3, ..id }),
                    bytes_to_old: 10,
                    error: None,
                },
                ReopenedFile {
                    path: "/var/log/e.log".into(),
                    old: Some(id),
                    new: None,
                    bytes_to_old: 0,
                    error: Some("permission denied".into()),
                },
            ],
        });
        round_trip(DrainReply {
            completed: false,
            in_flight: 1,
            resumed: true,
        });
        round_trip(ResumeReply { was_draining: true });
        round_trip(CountersReply {
            counters: vec![CounterValue {
                name: "web.requests".into(),
                kind: CounterKind::Counter,
                value: 7,
                help: "Requests".into(),
            }],
        });
        assert_eq!(
            serde_json::to_value(CounterKind::Gauge).unwrap(),
            serde_json::json!("gauge")
        );
        round_trip(CheckReply {
            generation: 3,
            summary: "interval_ms 100 -> 50".into(),
            unchanged: false,
        });
        round_trip(LogLevelReply {
            filter: "debug".into(),
            previous: Some("info".into()),
        });
    }

    #[test]
    fn a_reply_missing_its_fields_is_an_error_not_zeros() {
        // `{}` is what a program that is not a daemon of this protocol can easily send; read
        // as all zeros, it would look like a daemon with pid 0 that is fine.
        assert!(serde_json::from_str::<Hello>("{}").is_err());
        assert!(serde_json::from_str::<Status>("{}").is_err());
        assert!(serde_json::from_str::<Status>(r#"{"name":"d","pid":7}"#).is_err());
        assert!(serde_json::from_str::<ReloadReply>("{}").is_err());
        assert!(serde_json::from_str::<RotateReply>("{}").is_err());
        assert!(serde_json::from_str::<ReopenedFile>(r#"{"path":"/x"}"#).is_err());
        assert!(serde_json::from_str::<DrainReply>("{}").is_err());
        assert!(serde_json::from_str::<LogLevelReply>("{}").is_err());
        assert!(serde_json::from_str::<ResumeReply>("{}").is_err());
        assert!(serde_json::from_str::<CheckReply>("{}").is_err());
        assert!(serde_json::from_str::<CountersReply>("{}").is_err());
    }

    #[test]
    fn a_reply_without_optional_or_later_fields_decodes() {
        // What a first-release daemon sent for a reload: no `joined`, no `unchanged`.
        let reply: ReloadReply = serde_json::from_str(r#"{"generation":2,"summary":""}"#).unwrap();
        assert!(!reply.joined && !reply.unchanged);
        let mut doc = serde_json::to_value(status()).unwrap();
        doc.as_object_mut().unwrap().remove("last_reload");
        let status: Status = serde_json::from_value(doc).unwrap();
        assert_eq!(status.last_reload, None);
        let reply: LogLevelReply = serde_json::from_str(r#"{"filter":"info"}"#).unwrap();
        assert_eq!(reply.previous, None);
        // A daemon from before typed fields and resume.
        let mut doc = serde_json::to_value(self::status()).unwrap();
        doc.as_object_mut().unwrap().remove("values");
        let old: Status = serde_json::from_value(doc).unwrap();
        assert!(old.values.is_empty());
        assert_eq!(old.fields["queue"], "4");
        let reply: DrainReply =
            serde_json::from_str(r#"{"completed":false,"in_flight":2}"#).unwrap();
        assert!(!reply.resumed);
    }

    #[test]
    fn unknown_fields_from_a_newer_peer_are_ignored() {
        let mut doc = serde_json::to_value(status()).unwrap();
        doc["added_in_v9"] = serde_json::json!([1, 2]);
        assert_eq!(serde_json::from_value::<Status>(doc).unwrap(), status());
    }

    #[test]
    fn requests_may_omit_every_field() {
        // A daemon fills in what an older client did not send.
        assert_eq!(
            serde_json::from_str::<HelloRequest>("{}").unwrap(),
            HelloRequest::default()
        );
        assert_eq!(
            serde_json::from_str::<LogLevelRequest>(r#"{"new":1}"#).unwrap(),
            LogLevelRequest::default()
        );
        serde_json::from_str::<StatusRequest>("{}").unwrap();
    }

    #[test]
    fn hello_lists_operations_by_name_including_unknown_ones() {
        let hello: Hello = serde_json::from_str(
            r#"{"protocol":1,"name":"d","version":"1","pid":7,"operations":["status","teleport"]}"#,
        )
        .unwrap();
        assert!(hello.supports("status"));
        assert!(!hello.supports("reload"));
    }
}
