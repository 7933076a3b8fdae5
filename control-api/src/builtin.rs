//! The built-in operations as [`Command`]s: each request type carries its operation's name, doc
//! line, access level and reply type, exactly as a daemon's own command does. This file is the
//! one place those are written; the server registers, the client calls, `describe` and `ctl`
//! read them from here.

use crate::command::{schema_of, Command, DescribeRequest, Description};
use crate::text::{escape, Escaped};
use crate::types::*;
use crate::Access;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Every built-in operation, in the protocol's order (those with a method first, then those
/// added later, which travel inside `call`): name, and the schemas of request and reply, for
/// [`protocol`](crate::schema::protocol). A new built-in is one line here.
pub(crate) fn all() -> Vec<(&'static str, Value)> {
    fn op<C: Command>() -> (&'static str, Value) {
        let schemas = json!({"request": schema_of::<C>(), "reply": schema_of::<C::Reply>()});
        (C::NAME, schemas)
    }
    vec![
        op::<HelloRequest>(),
        op::<StatusRequest>(),
        op::<ReloadRequest>(),
        op::<RotateRequest>(),
        op::<DrainRequest>(),
        op::<LogLevelRequest>(),
        op::<ResumeRequest>(),
        op::<DescribeRequest>(),
        op::<CheckRequest>(),
        op::<CountersRequest>(),
        op::<PingRequest>(),
        op::<HistoryRequest>(),
    ]
}

impl Command for HelloRequest {
    const NAME: &'static str = "hello";
    const DOC: &'static str = "Show the daemon's protocol version and the operations it supports";
    const ACCESS: Access = Access::Read;
    type Reply = Hello;
}

impl Command for StatusRequest {
    const NAME: &'static str = "status";
    const DOC: &'static str = "Show what the daemon is doing: pid, uptime, config generation, \
                               last reload and rotate, log files (and any still written at a \
                               renamed path)";
    const ACCESS: Access = Access::Read;
    type Reply = Status;
}

impl Command for ReloadRequest {
    const NAME: &'static str = "reload";
    const DOC: &'static str =
        "Re-read the configuration; a bad one is refused and the old one stays active";
    const ACCESS: Access = Access::Operate;
    type Reply = ReloadReply;
}

impl Command for RotateRequest {
    const NAME: &'static str = "rotate";
    const DOC: &'static str = "Reopen log files after logrotate renamed them";
    const ACCESS: Access = Access::Operate;
    type Reply = RotateReply;
}

impl Command for DrainRequest {
    const NAME: &'static str = "drain";
    const DOC: &'static str =
        "Stop taking new work and finish what is in flight, within the caller's deadline";
    const ACCESS: Access = Access::Operate;
    type Reply = DrainReply;
}

impl Command for LogLevelRequest {
    const NAME: &'static str = "log-level";
    const DOC: &'static str = "Show the log filter, or validate and set a new one";
    /// The level of changing the filter; reading it needs only `read`.
    const ACCESS: Access = Access::Admin;
    type Reply = LogLevelReply;

    fn access(&self) -> Access {
        match self.filter {
            Some(_) => Access::Admin,
            None => Access::Read,
        }
    }
}

impl Command for ResumeRequest {
    const NAME: &'static str = "resume";
    const DOC: &'static str = "Undo a drain: take new work again";
    const ACCESS: Access = Access::Operate;
    type Reply = ResumeReply;
}

impl Command for DescribeRequest {
    const NAME: &'static str = "describe";
    const DOC: &'static str = "List the daemon's operations and commands with their arguments";
    const ACCESS: Access = Access::Read;
    type Reply = Description;
}

impl Command for CheckRequest {
    const NAME: &'static str = "check";
    const DOC: &'static str =
        "Validate the configuration as a reload would, apply nothing, say what would change";
    /// It reads the configuration a reload would, so it needs what a reload needs.
    const ACCESS: Access = Access::Operate;
    type Reply = CheckReply;
}

impl Command for CountersRequest {
    const NAME: &'static str = "counters";
    const DOC: &'static str = "Show the daemon's counters and gauges, and the server's own (ctl.*)";
    const ACCESS: Access = Access::Read;
    type Reply = CountersReply;
}

/// Argument of `ping`. Added after the first release: it travels inside `call`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PingRequest {}

/// Reply of `ping`: nothing but the answer itself, whose round trip the caller times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PingReply {}

impl Command for PingRequest {
    const NAME: &'static str = "ping";
    const DOC: &'static str = "Answer at once: the round trip of a call, and nothing else";
    const ACCESS: Access = Access::Read;
    type Reply = PingReply;
}

/// Argument of `history`. Added in the third round: it travels inside `call`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HistoryRequest {
    /// Only the newest `limit` entries (`null`: every entry kept).
    pub limit: Option<u32>,
}

/// Reply of `history`: the calls that needed more than read access (refused ones too), and the
/// SIGHUPs the server acted on, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HistoryReply {
    /// Oldest first, newest last, as a log reads.
    pub entries: Vec<HistoryEntry>,
    /// Entries dropped since start to keep the bound (the oldest first; refusals before
    /// anything else once they fill their share).
    pub dropped: u64,
    /// How many entries the daemon keeps (its `history_len`).
    pub capacity: u64,
}

/// One call (or signal) in `history`: who, what, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HistoryEntry {
    /// When the call arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The operation or command, by name (`reload`, `set-message`).
    pub operation: String,
    /// The caller's effective uid, from the kernel (`SO_PEERCRED`); `null` for a signal.
    pub uid: Option<u32>,
    /// The uid's user name, from the system's user database; `null` when it has none.
    pub user: Option<String>,
    /// The caller's pid, from the kernel; `null` for a signal or a caller in another pid
    /// namespace.
    pub pid: Option<u32>,
    /// The caller's command line, read from `/proc/PID/cmdline` at the call: arguments joined
    /// by spaces, at most 512 bytes (cut ones end in `...`); `null` when it could not be read
    /// (`command_line_unread` says why).
    pub command_line: Option<String>,
    /// Why `command_line` is `null`: `gone` (the process exited first, or the pid is now
    /// another user's), `no pid`, `busy` (too many lookups at once), `signal`.
    pub command_line_unread: Option<String>,
    /// The names (`comm`, from `/proc`) of the caller's parent, grandparent, ... (at most 4,
    /// ending at pid 1): `["sh", "logrotate", "systemd"]` tells a postrotate script from a
    /// shell. Names a process chose for itself: a hint, not proof (the uid is).
    pub ancestors: Vec<String>,
    /// The signal that caused it (`SIGHUP`), when no caller did.
    pub signal: Option<String>,
    /// `ok`, or the error's kind: `failed`, `denied`, `busy`, `bad_arguments`,
    /// `unsupported`, `shutting_down`.
    pub result: String,
    /// What the error said, or on success a short summary (what a reload changed); may be
    /// empty.
    pub message: String,
    /// How long the call took, in milliseconds.
    pub duration_ms: u64,
    /// The configuration generation active after the call.
    pub generation: u64,
}

impl Command for HistoryRequest {
    const NAME: &'static str = "history";
    const DOC: &'static str = "Show who changed what: the last calls that needed more than read \
                               access (refusals too), with caller, result and duration";
    const ACCESS: Access = Access::Read;
    type Reply = HistoryReply;
}

impl HistoryEntry {
    /// `uid 1000 (alice) pid 4242 "ctl reload demo" under bash < sshd < systemd`, `uid 1000 pid
    /// 4242 (gone)`, or `signal SIGHUP`: as syslog and `ctl history` show the caller, every
    /// part another process chose escaped (a command line in quotes, a quote in it as `\"`).
    pub fn caller(&self) -> String {
        if let Some(signal) = &self.signal {
            return format!("signal {}", Escaped(signal));
        }
        let mut who = self
            .uid
            .map_or_else(|| "uid ?".to_owned(), |uid| format!("uid {uid}"));
        if let Some(user) = &self.user {
            who.push_str(&format!(" ({})", Escaped(user)));
        }
        if let Some(pid) = self.pid {
            who.push_str(&format!(" pid {pid}"));
        }
        match (&self.command_line, &self.command_line_unread) {
            (Some(line), _) => who.push_str(&format!(" {}", quoted(line))),
            (None, Some(why)) => who.push_str(&format!(" ({})", Escaped(why))),
            (None, None) => {}
        }
        if !self.ancestors.is_empty() {
            let names: Vec<_> = self.ancestors.iter().map(|a| escape(a)).collect();
            who.push_str(&format!(" under {}", names.join(" < ")));
        }
        who
    }
}

/// `text` escaped and in double quotes, a quote inside written `\"`: a command line of
/// `a" pid 1 "b` still reads as one.
fn quoted(text: &str) -> String {
    format!("\"{}\"", escape(text).replace('"', "\\\""))
}
