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

/// Writes each built-in's [`Command`] impl and `all`, the list of them in the order given. An
/// entry reads `Request: "name", Access -> Reply, "doc line"`; doc comments before it document
/// its access level, items in braces after it go in its impl.
macro_rules! builtins {
    ($($(#[$access_doc:meta])* $request:ident: $name:literal, $access:ident -> $reply:ident,
        $doc:literal $({ $($item:tt)* })?;)*) => {
        $(
            impl Command for $request {
                const NAME: &'static str = $name;
                const DOC: &'static str = $doc;
                $(#[$access_doc])*
                const ACCESS: Access = Access::$access;
                type Reply = $reply;
                $($($item)*)?
            }
        )*

        /// Every built-in operation, in the protocol's order: name, and the schemas of request
        /// and reply, for [`protocol`](crate::schema::protocol).
        pub(crate) fn all() -> Vec<(&'static str, Value)> {
            fn op<C: Command>() -> (&'static str, Value) {
                let schemas =
                    json!({"request": schema_of::<C>(), "reply": schema_of::<C::Reply>()});
                (C::NAME, schemas)
            }
            vec![$(op::<$request>()),*]
        }
    };
}

// In the protocol's order: those with a method first, then those added later, which travel
// inside `call`. A new built-in is one entry here.
builtins! {
    HelloRequest: "hello", Read -> Hello,
        "Show the daemon's protocol version and the operations it supports";
    StatusRequest: "status", Read -> Status,
        "Show what the daemon is doing: pid, uptime, config generation, last reload and rotate, \
         log files (and any still written at a renamed path)";
    ReloadRequest: "reload", Operate -> ReloadReply,
        "Re-read the configuration; a bad one is refused and the old one stays active";
    RotateRequest: "rotate", Operate -> RotateReply,
        "Reopen log files after logrotate renamed them";
    DrainRequest: "drain", Operate -> DrainReply,
        "Stop taking new work and finish what is in flight, within the caller's deadline";
    /// The level of changing the filter; reading it needs only `read`.
    LogLevelRequest: "log-level", Admin -> LogLevelReply,
        "Show the log filter, or validate and set a new one" {
        fn access(&self) -> Access {
            match self.filter {
                Some(_) => Access::Admin,
                None => Access::Read,
            }
        }
    };
    ResumeRequest: "resume", Operate -> ResumeReply,
        "Undo a drain: take new work again";
    DescribeRequest: "describe", Read -> Description,
        "List the daemon's operations and commands with their arguments";
    /// It reads the configuration a reload would, so it needs what a reload needs.
    CheckRequest: "check", Operate -> CheckReply,
        "Validate the configuration as a reload would, apply nothing, say what would change";
    CountersRequest: "counters", Read -> CountersReply,
        "Show the daemon's counters and gauges, and the server's own (ctl.*)";
    PingRequest: "ping", Read -> PingReply,
        "Answer at once: the round trip of a call, and nothing else";
    HistoryRequest: "history", Read -> HistoryReply,
        "Show who changed what: the last calls that needed more than read access (refusals \
         too), with caller, result and duration";
}

/// Argument of `ping`. Added after the first release: it travels inside `call`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PingRequest {}

/// Reply of `ping`: nothing but the answer itself, whose round trip the caller times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PingReply {}

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
