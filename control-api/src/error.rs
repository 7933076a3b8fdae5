//! The failure of an operation, as it crosses the wire.

use crate::Access;
use serde::{Deserialize, Serialize};
use std::error::Error as StdError;

/// Why an operation did not succeed.
///
/// Encoded with an explicit `kind` tag. A kind added by a newer daemon decodes as
/// [`OpError::Unrecognized`] in an older client instead of failing the whole reply.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpError {
    /// The daemon does not implement this operation (or was built without it).
    #[error("the daemon does not support `{operation}`; it supports: {}", .supported.join(", "))]
    Unsupported {
        /// The operation that was asked for.
        operation: String,
        /// What the daemon does support.
        supported: Vec<String>,
    },
    /// The daemon ran the operation and it failed; its previous state is kept.
    #[error("{reason}{}", cause_chain(.causes))]
    Failed {
        /// What went wrong, in one line.
        reason: String,
        /// The underlying causes, outermost first (e.g. the parser's message).
        #[serde(default)]
        causes: Vec<String>,
    },
    /// The daemon's policy does not let this caller run this operation.
    #[error("permission denied: uid {uid} may not call `{operation}` on this daemon{}", needs(.needed))]
    Denied {
        /// The operation that was refused.
        operation: String,
        /// The caller's uid, as the kernel reported it.
        uid: u32,
        /// The access level the operation needs. Added after the first release: absent from
        /// an older daemon.
        #[serde(default)]
        needed: Option<Access>,
    },
    /// The arguments of a command do not fit its schema: an unknown name, a missing one, or a
    /// value of the wrong type. A usage error: the call was not run.
    #[error("`{command}`: argument `{field}`: {message}; expected {expected}")]
    BadArguments {
        /// The command called.
        command: String,
        /// The argument at fault (empty when the arguments as a whole are wrong).
        field: String,
        /// What would have fitted, in words.
        expected: String,
        /// What was wrong.
        message: String,
    },
    /// The daemon cannot take this request now; retrying later may work.
    #[error("the daemon is busy: {reason}")]
    Busy {
        /// What it is busy with.
        reason: String,
    },
    /// The daemon is shutting down and takes no new requests.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A kind of error this build does not know, sent by a newer daemon.
    #[serde(other)]
    #[error("the daemon reported an error of a kind this client does not know; upgrade the client to see it")]
    Unrecognized,
}

impl OpError {
    /// `op` is not supported; `supported` lists what is.
    pub fn unsupported<'a>(op: &str, supported: impl IntoIterator<Item = &'a str>) -> Self {
        OpError::Unsupported {
            operation: op.to_owned(),
            supported: supported.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The error's `kind` as it travels (`failed`, `denied`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            OpError::Unsupported { .. } => "unsupported",
            OpError::Failed { .. } => "failed",
            OpError::Denied { .. } => "denied",
            OpError::BadArguments { .. } => "bad_arguments",
            OpError::Busy { .. } => "busy",
            OpError::ShuttingDown => "shutting_down",
            OpError::Unrecognized => "unrecognized",
        }
    }

    /// A failure with no underlying error.
    pub fn failed(reason: impl Into<String>) -> Self {
        OpError::Failed {
            reason: reason.into(),
            causes: Vec::new(),
        }
    }

    /// A failure caused by `err`: its message and its whole `source()` chain are kept, so the
    /// caller sees e.g. the parser's line and column.
    pub fn failed_because(reason: impl Into<String>, err: &(dyn StdError + 'static)) -> Self {
        OpError::Failed {
            reason: reason.into(),
            causes: std::iter::successors(Some(err), |&e| e.source())
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// The level a refused operation needs, when the daemon said.
fn needs(needed: &Option<Access>) -> String {
    needed.map_or_else(String::new, |level| {
        format!("; it needs `{level}` access, which the daemon's policy grants to uids and gids")
    })
}

/// A cause chain as `: cause: cause`.
fn cause_chain(causes: &[String]) -> String {
    causes
        .iter()
        .map(|c| format!(": {}", c.trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn cause_chain_survives_the_wire() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = OpError::failed_because("cannot read config", &Outer(io));
        let json = serde_json::to_string(&err).unwrap();
        let back: OpError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, err);
        assert_eq!(back.to_string(), "cannot read config: outer: no such file");
    }

    #[test]
    fn every_kind_round_trips() {
        for err in [
            OpError::unsupported("rotate", ["hello", "status"]),
            OpError::failed("x"),
            OpError::Denied {
                operation: "reload".into(),
                uid: 65534,
                needed: Some(Access::Operate),
            },
            OpError::BadArguments {
                command: "set-message".into(),
                field: "text".into(),
                expected: "a string".into(),
                message: "missing".into(),
            },
            OpError::Busy { reason: "y".into() },
            OpError::ShuttingDown,
        ] {
            let json = serde_json::to_string(&err).unwrap();
            let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(doc["kind"], err.kind(), "kind() names the tag");
            assert_eq!(
                serde_json::from_str::<OpError>(&json).unwrap(),
                err,
                "{json}"
            );
        }
    }

    #[test]
    fn unknown_kind_from_a_newer_daemon_still_decodes() {
        let err: OpError = serde_json::from_str(r#"{"kind":"quota_exceeded","limit":3}"#).unwrap();
        assert_eq!(err, OpError::Unrecognized);
    }

    #[test]
    fn unsupported_names_what_is_supported() {
        let err = OpError::unsupported("rotate", ["hello", "status"]);
        assert_eq!(
            err.to_string(),
            "the daemon does not support `rotate`; it supports: hello, status"
        );
    }
}
