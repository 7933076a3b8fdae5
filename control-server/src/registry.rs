//! The registry of operations: every operation the server serves, built-in or the daemon's own,
//! is one [`Entry`] (name, doc line, access level, the schemas of its request and reply, and a
//! handler from JSON arguments to a JSON reply). Nothing else decides whether an operation
//! exists: `hello` and `describe` list the registry, and calls are dispatched by name.

use crate::counters::{Counter, ServerCounters};
use crate::handler::OpContext;
use control_api::codec::{Carrier, Invocation};
use control_api::command::schema_of;
use control_api::{Access, Command, OpError, OperationInfo, OperationKind};
use futures::future::BoxFuture;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// What every handler becomes: JSON arguments in, a JSON reply out.
type Handle =
    Arc<dyn Fn(OpContext, Value) -> BoxFuture<'static, Result<Replied, OpError>> + Send + Sync>;

/// A handler's reply as JSON, and whether the call changed anything ([`Command::changed`] of
/// the typed reply, decided before it was erased).
#[derive(Debug)]
pub(crate) struct Replied {
    pub value: Value,
    pub changed: Option<bool>,
}

/// One registered operation.
pub(crate) struct Entry {
    /// The name, as handlers see it in [`OpContext::operation`].
    pub name: &'static str,
    /// What `describe` tells about it.
    pub info: OperationInfo,
    /// The level a call with these arguments needs ([`Command::access`]).
    access: AccessOf,
    handle: Handle,
    /// Calls that succeeded and that ran and failed, once the server counts them.
    pub calls: Option<(Counter, Counter)>,
}

impl Entry {
    /// The operation `C`, a built-in or a daemon's own command: its handler takes `C` and
    /// answers `C::Reply`; arguments that do not decode as `C` are [`OpError::BadArguments`].
    pub fn new<C, F, Fut>(kind: OperationKind, handler: F) -> Entry
    where
        C: Command,
        F: Fn(OpContext, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, OpError>> + Send + 'static,
    {
        let handle: Handle = Arc::new(move |ctx, args| {
            let req = match serde_json::from_value::<C>(args) {
                Ok(req) => req,
                Err(err) => {
                    return Box::pin(std::future::ready(Err(OpError::BadArguments {
                        command: C::NAME.to_owned(),
                        field: String::new(),
                        expected: "arguments that fit the command's schema (see describe)".into(),
                        message: err.to_string(),
                    })))
                }
            };
            let reply = handler(ctx, req);
            Box::pin(async move {
                let reply = reply.await?;
                let changed = C::changed(&reply);
                let value = serde_json::to_value(reply).map_err(|e| {
                    OpError::failed(format!("the reply of `{}` cannot be encoded: {e}", C::NAME))
                })?;
                Ok(Replied { value, changed })
            })
        });
        Entry {
            name: C::NAME,
            info: OperationInfo {
                name: C::NAME.to_owned(),
                doc: C::DOC.to_owned(),
                access: C::ACCESS,
                kind,
                args: schema_of::<C>(),
                reply: schema_of::<C::Reply>(),
            },
            access: AccessOf::Args(access_of::<C>),
            handle,
            calls: None,
        }
    }

    /// A daemon's command known only at run time ([`DynamicCommand`]).
    pub fn dynamic(command: DynamicCommand) -> Entry {
        let DynamicCommand {
            name,
            doc,
            access,
            args,
            handle,
        } = command;
        Entry {
            name,
            info: OperationInfo {
                name: name.to_owned(),
                doc,
                access,
                kind: OperationKind::Command,
                args,
                // Anything: the daemon's handler says what it replies, the schema does not.
                reply: Value::Object(Default::default()),
            },
            access: AccessOf::Fixed(access),
            handle,
            calls: None,
        }
    }

    /// A built-in operation (see [`Entry::new`]).
    pub fn builtin<C, F, Fut>(handler: F) -> Entry
    where
        C: Command,
        F: Fn(OpContext, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, OpError>> + Send + 'static,
    {
        Self::new(OperationKind::Builtin, handler)
    }

    /// The level a call with `args` needs.
    pub fn access(&self, args: &Value) -> Access {
        match self.access {
            AccessOf::Fixed(access) => access,
            AccessOf::Args(of) => of(args),
        }
    }

    /// Runs the handler.
    pub fn run(&self, ctx: OpContext, args: Value) -> BoxFuture<'static, Result<Replied, OpError>> {
        (self.handle)(ctx, args)
    }
}

/// The level a call needs: one for every call, or decided by its arguments.
#[derive(Clone, Copy)]
enum AccessOf {
    Fixed(Access),
    Args(fn(&Value) -> Access),
}

/// A daemon's own command known only at run time, by a name, a doc line, an access level and
/// the JSON Schema of its arguments, rather than by a [`Command`] type: for daemons that are not
/// written in Rust (the C library, `control-server-c`) or that read their commands from
/// configuration. Registered with [`Builder::dynamic_command`](crate::Builder::dynamic_command);
/// its name is checked at [`bind`](crate::Builder::bind) as a typed command's is
/// ([`check_command_name`]), and its arguments against `args` before the handler runs, field by
/// field, as a typed command's are (an object schema with `properties` and `required`, like
/// the ones `schemars` writes).
pub struct DynamicCommand {
    name: &'static str,
    doc: String,
    access: Access,
    args: Value,
    handle: Handle,
}

impl DynamicCommand {
    /// The command `name`, needing `access`, whose arguments fit `args_schema`, served by
    /// `handler`: the checked arguments in, the reply out.
    ///
    /// The name is kept for the life of the process (handlers see it as the `&'static str`
    /// [`OpContext::operation`]): make these once at start, not per call.
    pub fn new<F, Fut>(
        name: &str,
        doc: impl Into<String>,
        access: Access,
        args_schema: Value,
        handler: F,
    ) -> DynamicCommand
    where
        F: Fn(OpContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, OpError>> + Send + 'static,
    {
        let handle: Handle = Arc::new(move |ctx, args| {
            let reply = handler(ctx, args);
            Box::pin(async move {
                Ok(Replied {
                    value: reply.await?,
                    changed: None,
                })
            })
        });
        DynamicCommand {
            name: Box::leak(name.to_owned().into_boxed_str()),
            doc: doc.into(),
            access,
            args: args_schema,
            handle,
        }
    }
}

/// [`Command::access`] of the request `args`; arguments that do not decode need the command's
/// own level (they will be refused anyway, and a caller without it learns nothing more).
fn access_of<C: Command>(args: &Value) -> Access {
    serde::Deserialize::deserialize(args).map_or(C::ACCESS, |req: C| req.access())
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
    let reason = control_api::command_name::problem(name).or_else(|| {
        // A name with a method of its own could never be reached through `call`.
        (Carrier::of(name) != Carrier::Call).then_some("is the name of a built-in operation")
    });
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

    /// The entry `call` runs: one of that name reached the way its name travels (a built-in
    /// of the first releases by its own method, anything else inside `call`).
    pub fn lookup(&self, call: &Invocation) -> Option<&Entry> {
        self.get(&call.name)
            .filter(|e| Carrier::of(e.name) == call.carrier)
    }

    /// The names `call` could have named: those its carrier reaches.
    pub fn reachable(&self, call: &Invocation) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| call.carrier != Carrier::Call || Carrier::of(e.name) == Carrier::Call)
            .map(|e| e.info.name.clone())
            .collect()
    }

    /// The level `call` needs: what decides whether a caller's deadline is kept exactly (see
    /// `transport`). An unknown name needs only `read`: it will be refused.
    pub fn access(&self, call: &Invocation) -> Access {
        self.lookup(call)
            .map_or(Access::Read, |e| e.access(&call.args))
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
            ("reload", "built-in"),
            ("log-level", "built-in"),
            ("1st", "start"),
            (&"a".repeat(65), "too long"),
        ] {
            let err = check_command_name(bad).unwrap_err();
            assert!(err.reason.contains(reason), "{bad:?}: {err}");
            assert_eq!(err.name, bad);
        }
    }
}
