//! Serve the `ctl` control plane from inside a daemon.
//!
//! A daemon registers what it has on a [`Builder`] (its configuration's load-and-validate step,
//! its log files, its work tracker, its counters, its own typed commands), and from then on
//! `ctl reload NAME`, `ctl check NAME`, `ctl rotate NAME`, `ctl drain NAME`, `ctl counters
//! NAME` and `ctl status NAME` reach it
//! over a Unix socket and report back whether it worked: the replacement for `pkill -HUP`.
//!
//! The server owns the parts that are easy to get wrong: the socket (never more open than its
//! mode, a live one refused, a stale one replaced, removed at exit), the caller's credentials
//! checked on every call, one reload at a time, mutating work that finishes even when the
//! caller gives up, panics turned into errors, a bounded graceful shutdown, and one log line per
//! call.
//!
//! # Example
//!
//! A daemon with a `reload` and a command of its own, served on a socket, and the calls
//! `ctl reload mydaemon` and `ctl call mydaemon flush-cache` make:
//!
//! ```
//! use control_server::api::{Access, Client, Command, ReloadRequest};
//! use control_server::{Reloaded, Server};
//! use serde::{Deserialize, Serialize};
//!
//! /// `flush-cache`: its fields are the command's arguments.
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct FlushCache {
//!     /// Only keys under this prefix.
//!     #[serde(default)]
//!     prefix: String,
//! }
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
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
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let socket = dir.path().join("mydaemon.sock");
//! // Without `.socket_path`, the socket is /run/ctl/mydaemon.sock as root, else
//! // /run/mydaemon/ctl.sock when that directory is the daemon user's (systemd's
//! // RuntimeDirectory=mydaemon), else $XDG_RUNTIME_DIR/ctl/mydaemon.sock; $CTL_SOCKET_DIR
//! // overrides all (see control_api::socket).
//! let server = Server::builder("mydaemon")
//!     .version("1.0.0")
//!     // Read and validate the whole new configuration; apply it only if all of it is valid.
//!     .reload(|_ctx| async { Ok(Reloaded::changed("workers 4 -> 8")) })
//!     .command(|_ctx, req: FlushCache| async move {
//!         Ok(Flushed { entries: req.prefix.len() as u64 })
//!     })
//!     .socket_path(&socket)
//!     .bind()?
//!     .spawn();
//!
//! // Another Rust program calls the command with the same type:
//! let client = Client::connect(&socket).await?;
//! let flushed = client.call(&FlushCache { prefix: "user:".into() }).await?;
//! assert_eq!(flushed.entries, 5);
//! // ... and the built-ins the same way: `ctl reload mydaemon` is this call.
//! let reloaded = client.call(&ReloadRequest::default()).await?;
//! assert_eq!(reloaded.summary, "workers 4 -> 8");
//!
//! server.shutdown().await; // stop accepting, finish calls in progress, remove the socket
//! assert!(!socket.exists());
//! # Ok(()) }
//! ```
//!
//! The guide for daemon authors (`docs/daemon-authors.md` in the repository) goes through
//! reload with [`Reloadable`], the [`LogFile`] writer, [`WorkTracker`] for drain, the
//! [`Policy`], signals and systemd.
//!
//! # Layout
//!
//! - [`server`]: [`Builder`], [`Server`], the accept loop and shutdown.
//! - [`handler`]: what handlers get and return: [`OpContext`], [`Reloaded`], [`DaemonStatus`].
//! - `registry`: every operation as one entry (name, doc, access, schemas, handler);
//!   dispatch is by name.
//! - `state`: the state every connection shares, in one place.
//! - [`policy`]: peer credentials and who may call what.
//! - `listener` (private): binding the socket safely ([`BindError`]).
//! - [`log_level`]: [`LogFilter`](log_level::LogFilter), the filter `ctl log-level` changes.
//! - [`log_file`]: [`LogFile`], a log file that `rotate` reopens without losing a line; its
//!   buffered mode (`buffer`: the writer thread) and its watch on renames (`watch`: inotify).
//! - [`config_file`]: reading a configuration file for `reload` without blocking the runtime.
//! - [`reloadable`]: [`Reloadable`], validate-then-swap configuration.
//! - [`drain`]: [`WorkTracker`], work in flight for `drain`.
//! - [`counters`]: [`Counters`], named counters and gauges for `ctl counters`, the daemon's and
//!   the server's own.
//! - `notify` (private): systemd's readiness protocol ([`Notifier`]).
//! - `ops`: the built-in operations, each a registry entry owning its state: `hello` and
//!   `describe`, `status`, `reload` (single-flight) and `check`, `rotate`, `drain` and
//!   `resume`, `log-level`, `counters`, `history` (the bounded ring of who changed what).
//! - `audit` (private): the record of each call that needs more than read access (and each
//!   SIGHUP): the caller's user name and command line read off the runtime (`caller`), into
//!   `history` and as one line to the system's log without ever waiting (`syslog`).
//! - [`signals`]: making leftover `pkill -HUP` lines harmless.
//! - `connection`, `conn_state`, `service`: admission and one connection, its state, and the
//!   glue between tarpc and the registry (policy, dispatch, logging).
//! - `panic`: panics in handlers turned into errors.
//! - `transport`: decoding requests before tarpc sees them, and replies that always fit.
//! - `noise`: rate limits on the log lines a caller can cause; [`Throttle`] is public, for
//!   the daemon's own lines of that kind.
#![deny(missing_docs)]

mod accept;
mod audit;
pub mod config_file;
mod conn_state;
mod connection;
pub mod counters;
pub mod drain;
pub mod handler;
mod listener;
pub mod log_file;
pub mod log_level;
mod noise;
mod notify;
mod ops;
mod panic;
pub mod policy;
mod registry;
pub mod reloadable;
pub mod server;
mod service;
pub mod signals;
mod state;
#[cfg(test)]
mod test_util;
mod transport;

pub use control_api as api;
pub use counters::{Counter, CounterError, Counters, Gauge};
pub use drain::{WorkGuard, WorkTracker};
pub use handler::{DaemonStatus, OpContext, Reloaded};
pub use listener::BindError;
pub use log_file::LogFile;
pub use noise::Throttle;
pub use notify::Notifier;
pub use policy::{Access, Caller, Peer, Policy};
pub use registry::{
    check_command_name, BadCommandName, DuplicateName, DynamicCommand, MAX_COMMAND_NAME_LEN,
};
pub use reloadable::{Changes, Load, ReloadError, Reloadable, Swapped};
pub use server::{BackgroundServer, Builder, Server, ServerError, ServerHandle};
pub use tokio_util::sync::CancellationToken;

/// The README's code blocks, compiled as doc tests so the embedding example cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The daemon authors' guide's code blocks that are not marked `ignore` (its complete
/// "your own commands" example), compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/daemon-authors.md")]
pub struct GuideDoctests;
