//! The contract between `ctl` and a daemon: one tarpc service, its request and reply types, the
//! error that crosses the wire, the protocol version, the framing, and where sockets live.
//!
//! Both sides depend on this crate and nothing else of each other. It evolves **add-only**:
//! operations are never renamed, removed or retyped, and new fields are optional, so a `ctl` and a
//! daemon built from different versions still understand each other. A client calls
//! [`Control::hello`] first: its shape never changes, and it says which operations the daemon
//! supports, so a client never sends a request the daemon cannot decode.
//!
//! # Layout
//!
//! - [`service`]: the [`Control`] trait (`hello`, `status`, `reload`, `rotate`, `drain`,
//!   `log_level`, `resume`, `describe`, `call`, `check`, `counters`): the wire's methods,
//!   frozen; operations added later travel inside `call`.
//! - [`codec`]: those methods as one name and JSON arguments in, one JSON result out: what
//!   both sides dispatch.
//! - [`access`]: [`Access`], the levels a policy grants.
//! - [`command`]: [`Command`], one operation as one type (name, doc line, access, reply):
//!   every built-in (their impls are in this crate) and a daemon's own commands.
//! - [`args`]: arguments checked against a command's schema, the same on both sides.
//! - [`client`]: [`Client`], the one typed client: `ctl` is built on it.
//! - [`schema`]: the built-in protocol as JSON Schema, and the add-only check of its snapshot.
//! - [`types`]: the request and reply structs.
//! - [`error`]: [`OpError`], the typed failure of an operation.
//! - [`socket`]: the socket-path convention and how a `ctl` target is read.
//! - [`wire`]: framing and encoding, identical on both sides.
//! - [`text`]: strings someone else chose, escaped for one log line or one terminal row.
//!
//! # Examples
//!
//! Where a daemon's socket is, as both sides compute it, and an error as it crosses the wire:
//!
//! ```
//! use control_api::socket::{SocketEnv, Target};
//! use control_api::OpError;
//!
//! let root = SocketEnv { uid: 0, ..SocketEnv::default() };
//! assert_eq!(root.socket_path("web").unwrap().to_str(), Some("/run/ctl/web.sock"));
//! // ctl looks there, then in the runtime directory of a daemon running as its own user.
//! let places: Vec<_> = root.places("web").unwrap().into_iter().map(|(_, p)| p).collect();
//! assert_eq!(places, ["/run/ctl/web.sock", "/run/web/ctl.sock"].map(std::path::PathBuf::from));
//! assert!(matches!(Target::parse("/tmp/x.sock").unwrap(), Target::Path(_)));
//!
//! let err = OpError::unsupported("rotate", ["hello", "status"]);
//! let json = serde_json::to_string(&err).unwrap();
//! assert_eq!(
//!     json,
//!     r#"{"kind":"unsupported","operation":"rotate","supported":["hello","status"]}"#
//! );
//! assert_eq!(serde_json::from_str::<OpError>(&json).unwrap(), err);
//! ```
//!
//! Calling a daemon by hand (this is what `ctl status NAME` does): every operation, built-in or
//! the daemon's own, is a [`Command`], and [`Client::call`] runs any of them.
//!
//! ```no_run
//! use control_api::{socket, Client, StatusRequest};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let path = socket::default_socket_path("mydaemon")?;
//! let client = Client::connect(&path).await?.timeout(Duration::from_secs(5));
//! assert!(client.hello().supports("status"));
//! let status = client.call(&StatusRequest::default()).await?;
//! println!("{} pid {} generation {}", status.name, status.pid, status.config_generation);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod access;
pub mod args;
mod builtin;
pub mod client;
pub mod codec;
pub mod command;
pub mod command_name;
pub mod error;
pub mod field;
pub mod lock;
pub mod schema;
pub mod service;
pub mod socket;
pub mod text;
pub mod types;
pub mod wire;

pub use access::Access;
pub use builtin::*;
pub use client::{Client, ClientError};
pub use command::{
    CallReply, CallRequest, Command, DescribeRequest, Description, OperationInfo, OperationKind,
};
pub use error::OpError;
pub use field::{FieldValue, StatusField};
/// The serde and schemars a [`Command`]'s types derive with, for a daemon that has neither as a
/// dependency of its own: derive `serde::Serialize`, `serde::Deserialize` and
/// `schemars::JsonSchema` from here, with `#[serde(crate = "control_api::serde")]` and
/// `#[schemars(crate = "control_api::schemars")]` on the type (`control_server::api::...` from
/// a daemon). Re-exported as this crate is built, so the versions always agree.
pub use schemars;
pub use serde;
pub use service::{Control, ControlClient, ControlRequest, ControlResponse};
pub use types::*;

/// The protocol this crate speaks. It changes only on a change that is not add-only, which the
/// design rules out; a client refuses a daemon whose `hello` names another version.
pub const PROTOCOL_VERSION: u32 = 1;
