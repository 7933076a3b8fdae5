//! Names of operations, as they appear in `hello` and on the `ctl` command line.

use crate::types::*;
use crate::{Access, Command, DescribeRequest};
use std::fmt;
use std::str::FromStr;

/// One operation with a method of its own in the [`Control`](crate::Control) service: those of
/// the first releases, frozen. An operation added later is a [`Command`] that travels inside
/// `call` ([`codec`](crate::codec)), known by its type alone.
///
/// On the wire, `hello` lists operations as strings, so that an older client can read the list of
/// a newer daemon that knows operations it does not; [`Operation::from_str`] maps them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// See [`Control::hello`](crate::Control::hello).
    Hello,
    /// See [`Control::status`](crate::Control::status).
    Status,
    /// See [`Control::reload`](crate::Control::reload).
    Reload,
    /// See [`Control::rotate`](crate::Control::rotate).
    Rotate,
    /// See [`Control::drain`](crate::Control::drain).
    Drain,
    /// See [`Control::log_level`](crate::Control::log_level).
    LogLevel,
    /// See [`Control::resume`](crate::Control::resume). Added after the first release: clients
    /// send it only when `hello` lists `resume`.
    Resume,
    /// See [`Control::describe`](crate::Control::describe). Added after the first release:
    /// clients send `describe` and `call` only when `hello` lists `describe`.
    Describe,
    /// See [`Control::check`](crate::Control::check). Added after the first release: clients
    /// send it only when `hello` lists `check`.
    Check,
    /// See [`Control::counters`](crate::Control::counters). Added after the first release:
    /// clients send it only when `hello` lists `counters`.
    Counters,
}

impl Operation {
    /// Every operation this build of the protocol knows, in a stable order.
    pub const ALL: [Operation; 10] = [
        Operation::Hello,
        Operation::Status,
        Operation::Reload,
        Operation::Rotate,
        Operation::Drain,
        Operation::LogLevel,
        Operation::Resume,
        Operation::Describe,
        Operation::Check,
        Operation::Counters,
    ];

    /// The wire and command-line name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Hello => "hello",
            Operation::Status => "status",
            Operation::Reload => "reload",
            Operation::Rotate => "rotate",
            Operation::Drain => "drain",
            Operation::LogLevel => "log-level",
            Operation::Resume => "resume",
            Operation::Describe => "describe",
            Operation::Check => "check",
            Operation::Counters => "counters",
        }
    }

    /// The access level a call needs, as its request type says ([`Command::ACCESS`]):
    /// `log-level` that only reads the filter needs `read`; this is the level of changing it.
    pub const fn access(self) -> Access {
        match self {
            Operation::Hello => HelloRequest::ACCESS,
            Operation::Status => StatusRequest::ACCESS,
            Operation::Reload => ReloadRequest::ACCESS,
            Operation::Rotate => RotateRequest::ACCESS,
            Operation::Drain => DrainRequest::ACCESS,
            Operation::LogLevel => LogLevelRequest::ACCESS,
            Operation::Resume => ResumeRequest::ACCESS,
            Operation::Describe => DescribeRequest::ACCESS,
            Operation::Check => CheckRequest::ACCESS,
            Operation::Counters => CountersRequest::ACCESS,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not an operation this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation `{0}`; known operations: hello, status, reload, rotate, drain, log-level, resume, describe, check, counters"
)]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_operation_message_names_every_operation() {
        let message = UnknownOperation("x".into()).to_string();
        for op in Operation::ALL {
            assert!(message.contains(op.as_str()), "{op} missing: {message}");
        }
    }

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
        }
        assert!("frobnicate".parse::<Operation>().is_err());
        assert!(
            "Reload".parse::<Operation>().is_err(),
            "names are lower case"
        );
    }

    #[test]
    fn check_needs_operate_and_counters_read_as_the_design_says() {
        assert_eq!(Operation::Check.access(), Access::Operate);
        assert_eq!(Operation::Counters.access(), Access::Read);
        assert_eq!("check".parse(), Ok(Operation::Check));
        assert_eq!("counters".parse(), Ok(Operation::Counters));
    }
}
