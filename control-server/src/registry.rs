//! The registry of operations: every operation the server serves, built-in or the daemon's own,
//! is one [`Entry`] (name, doc line, access level, the schemas of its request and reply, and a
//! handler from JSON arguments to a JSON reply). Nothing else decides whether an operation
//! exists: `hello` and `describe` list the registry, and calls are dispatched by name.

use crate::counters::{Counter, ServerCounters};
use crate::handler::OpContext;
use control_api::command::schema_of;
use control_api::{Access, ControlRequest, OpError, OperationInfo, OperationKind};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// What every handler becomes: JSON arguments in, a JSON reply out.
type Handle =
    Arc<dyn Fn(OpContext, Value) -> BoxFuture<'static, Result<Value, OpError>> + Send + Sync>;

/// One registered operation.
pub(crate) struct Entry {
    /// The name, as handlers see it in [`OpContext::operation`].
    pub name: &'static str,
    /// What `describe` tells about it.
    pub info: OperationInfo,
    /// The level a call with these arguments needs, when it depends on them (`log-level`
    /// without a filter only reads); else `info.access`.
    access_for: Option<fn(&Value) -> Access>,
    handle: Handle,
    /// Calls that succeeded and that ran and failed, once the server counts them.
    pub calls: Option<(Counter, Counter)>,
}

impl Entry {
    /// An operation whose handler takes `Req` and answers `Rep`; a request that does not
    /// decode as `Req` is [`OpError::BadArguments`].
    pub fn new<Req, Rep, F, Fut>(
        name: &'static str,
        doc: &'static str,
        access: Access,
        kind: OperationKind,
        handler: F,
    ) -> Entry
    where
        Req: DeserializeOwned + JsonSchema,
        Rep: Serialize + JsonSchema,
        F: Fn(OpContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, OpError>> + Send + 'static,
    {
        let handle: Handle = Arc::new(move |ctx, args| {
            let req = match serde_json::from_value::<Req>(args) {
                Ok(req) => req,
                Err(err) => {
                    return Box::pin(std::future::ready(Err(OpError::BadArguments {
                        command: name.to_owned(),
                        field: String::new(),
                        expected: "arguments that fit the command's schema (see describe)".into(),
                        message: err.to_string(),
                    })))
                }
            };
            let reply = handler(ctx, req);
            Box::pin(async move {
                let reply = reply.await?;
                serde_json::to_value(reply).map_err(|e| {
                    OpError::failed(format!("the reply of `{name}` cannot be encoded: {e}"))
                })
            })
        });
        Entry {
            name,
            info: OperationInfo {
                name: name.to_owned(),
                doc: doc.to_owned(),
                access,
                kind,
                args: schema_of::<Req>(),
                reply: schema_of::<Rep>(),
            },
            access_for: None,
            handle,
            calls: None,
        }
    }

    /// A built-in operation (see [`Entry::new`]).
    pub fn builtin<Req, Rep, F, Fut>(
        op: control_api::Operation,
        doc: &'static str,
        handler: F,
    ) -> Entry
    where
        Req: DeserializeOwned + JsonSchema,
        Rep: Serialize + JsonSchema,
        F: Fn(OpContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, OpError>> + Send + 'static,
    {
        Self::new(
            op.as_str(),
            doc,
            op.access(),
            OperationKind::Builtin,
            handler,
        )
    }

    /// Makes the level a call needs depend on its arguments.
    pub fn access_for(mut self, rule: fn(&Value) -> Access) -> Entry {
        self.access_for = Some(rule);
        self
    }

    /// The level a call with `args` needs.
    pub fn access(&self, args: &Value) -> Access {
        self.access_for.map_or(self.info.access, |rule| rule(args))
    }

    /// Runs the handler.
    pub fn run(&self, ctx: OpContext, args: Value) -> BoxFuture<'static, Result<Value, OpError>> {
        (self.handle)(ctx, args)
    }
}

/// Every operation the server serves, in the order registered.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
}

/// Two operations were registered under one name.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is registered twice; each operation and command needs a name of its own")]
pub struct DuplicateName(pub String);

/// Longest name of a daemon's own command: with `ctl.calls.` before it and `.failed` after, its
/// call counters stay within [`MAX_NAME_LEN`](crate::counters::MAX_NAME_LEN).
pub const MAX_COMMAND_NAME_LEN: usize = control_api::command_name::MAX_LEN;

const _: () = assert!(
    "ctl.calls.".len() + MAX_COMMAND_NAME_LEN + ".failed".len() <= crate::counters::MAX_NAME_LEN
);

/// A daemon's own command has a name `ctl call NAME COMMAND` cannot type, or that cannot name its
/// call counters: a mistake in the daemon's code, reported by [`bind`](crate::Builder::bind).
#[derive(Debug, thiserror::Error)]
#[error(
    "the command name {name:?} {reason}: a command name is 1 to {MAX_COMMAND_NAME_LEN} ASCII \
     letters, digits, '-' or '_', starting with a letter (like `flush-cache`)"
)]
pub struct BadCommandName {
    /// The name as the command's type gives it (`Command::NAME`).
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks the name of a daemon's own command: 1 to [`MAX_COMMAND_NAME_LEN`] ASCII letters,
/// digits, `-` or `_`, starting with a letter. Such a name is one shell word that `ctl call`
/// cannot take for an option, and its `ctl.calls.NAME.ok` and `.failed` counter names are
/// always valid.
pub fn check_command_name(name: &str) -> Result<(), BadCommandName> {
    let reason = control_api::command_name::problem(name);
    match reason {
        None => Ok(()),
        Some(reason) => Err(BadCommandName {
            name: name.to_owned(),
            reason,
        }),
    }
}

impl Registry {
    /// Adds `entry`; a name already taken is an error.
    pub fn add(&mut self, entry: Entry) -> Result<(), DuplicateName> {
        if self.get(&entry.info.name).is_some() {
            return Err(DuplicateName(entry.info.name));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Gives each entry its `ctl.calls.NAME.ok` and `.failed` counters. Every name is valid in
    /// a counter's: the built-ins' are, and commands' are checked ([`check_command_name`]).
    pub fn count_calls(&mut self, counters: &ServerCounters) {
        for entry in &mut self.entries {
            entry.calls = Some(counters.calls(entry.name));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.info.name == name)
    }

    /// What `describe` lists.
    pub fn infos(&self) -> Vec<OperationInfo> {
        self.entries.iter().map(|e| e.info.clone()).collect()
    }

    /// The names of the entries of `kind` (all when `None`).
    pub fn names(&self, kind: Option<OperationKind>) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| kind.is_none_or(|k| e.info.kind == k))
            .map(|e| e.info.name.clone())
            .collect()
    }

    /// The level `request` needs, before it is decoded further: what decides whether a caller's
    /// deadline is kept exactly (see `transport`). An unknown name needs only `read`: it will be
    /// refused.
    pub fn access_of(&self, request: &ControlRequest) -> Access {
        let (name, args) = match request {
            ControlRequest::Call { req } => (req.command.as_str(), None),
            ControlRequest::LogLevel { req } => {
                return if req.filter.is_some() {
                    Access::Admin
                } else {
                    Access::Read
                }
            }
            other => (method_name(other), None::<&Value>),
        };
        self.get(name)
            .map_or(Access::Read, |e| e.access(args.unwrap_or(&Value::Null)))
    }
}

/// The operation a tarpc method stands for (`call` is dispatched by its command's name).
pub(crate) fn method_name(request: &ControlRequest) -> &'static str {
    use control_api::Operation as Op;
    match request {
        ControlRequest::Hello { .. } => Op::Hello.as_str(),
        ControlRequest::Status { .. } => Op::Status.as_str(),
        ControlRequest::Reload { .. } => Op::Reload.as_str(),
        ControlRequest::Rotate { .. } => Op::Rotate.as_str(),
        ControlRequest::Drain { .. } => Op::Drain.as_str(),
        ControlRequest::LogLevel { .. } => Op::LogLevel.as_str(),
        ControlRequest::Resume { .. } => Op::Resume.as_str(),
        ControlRequest::Describe { .. } => Op::Describe.as_str(),
        ControlRequest::Check { .. } => Op::Check.as_str(),
        ControlRequest::Counters { .. } => Op::Counters.as_str(),
        ControlRequest::Call { .. } => "call",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_one_word_of_ascii_letters_digits_dash_underscore() {
        for good in ["flush-cache", "stats", "Set_Message2", "a", &"a".repeat(64)] {
            check_command_name(good).unwrap();
            // ... and their call counters can always be registered.
            crate::counters::ServerCounters::new().calls(good);
        }
        for (bad, reason) in [
            ("", "is empty"),
            ("flush cache", "character"),
            ("a/b", "character"),
            ("a.b", "character"),
            ("vid\u{e9}", "character"),
            ("-x", "start"),
            ("1st", "start"),
            (&"a".repeat(65), "too long"),
        ] {
            let err = check_command_name(bad).unwrap_err();
            assert!(err.reason.contains(reason), "{bad:?}: {err}");
            assert_eq!(err.name, bad);
        }
    }
}
