//! Serve the `ctl` control plane from inside a daemon.
//!
//! A daemon implements [`Handler`] for the operations it has, builds a [`Server`], and from
//! then on `ctl reload NAME`, `ctl rotate NAME`, `ctl drain NAME` and `ctl status NAME` reach it
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
//! A daemon with a `reload`, served on a socket, and the call `ctl reload mydaemon` makes:
//!
//! ```
//! use control_server::{Handler, OpContext, Reloaded, Server};
//! use control_server::api::{wire, ControlClient, OpError, Operation, ReloadRequest};
//!
//! struct Daemon;
//!
//! impl Handler for Daemon {
//!     fn operations(&self) -> Vec<Operation> {
//!         vec![Operation::Reload] // anything not listed answers `unsupported`
//!     }
//!     async fn reload(&self, _ctx: OpContext) -> Result<Reloaded, OpError> {
//!         // Read and validate the whole new configuration; apply it only if all of it is valid.
//!         Ok(Reloaded::changed("workers 4 -> 8"))
//!     }
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
//! let server = Server::builder("mydaemon", Daemon)
//!     .version("1.0.0")
//!     .socket_path(&socket)
//!     .bind()?
//!     .spawn();
//!
//! // What `ctl reload mydaemon` does, after its `hello`:
//! let stream = tokio::net::UnixStream::connect(&socket).await?;
//! let client = ControlClient::new(Default::default(), wire::transport(stream)).spawn();
//! let reply = client.reload(tarpc::context::current(), ReloadRequest::default()).await??;
//! assert_eq!(reply.generation, 2);
//! assert_eq!(reply.summary, "workers 4 -> 8");
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
//! - [`handler`]: the [`Handler`] trait a daemon implements.
//! - [`policy`]: peer credentials and who may call what.
//! - [`listener`]: binding the socket safely.
//! - [`log_level`]: [`LogFilter`](log_level::LogFilter), the filter `ctl log-level` changes.
//! - [`log_file`]: [`LogFile`], a log file that `rotate` reopens without losing a line.
//! - [`config_file`]: reading a configuration file for `reload` without blocking the runtime.
//! - [`reloadable`]: [`Reloadable`], validate-then-swap configuration.
//! - [`drain`]: [`WorkTracker`], work in flight for `drain`.
//! - [`notify`]: systemd's readiness protocol.
//! - `ops`: the machinery of `reload` (single-flight), `rotate` and `drain`.
//! - [`signals`]: making leftover `pkill -HUP` lines harmless.
//! - `connection`, `service`: admission and one connection, and the glue between tarpc and
//!   the handler.
//! - `transport`: decoding requests before tarpc sees them, and replies that always fit.
//! - `noise`: rate limits on the log lines a caller can cause.
#![deny(missing_docs)]

pub mod config_file;
mod connection;
pub mod drain;
pub mod handler;
pub mod listener;
pub mod log_file;
pub mod log_level;
mod noise;
pub mod notify;
mod ops;
pub mod policy;
pub mod reloadable;
pub mod server;
mod service;
pub mod signals;
mod transport;

pub use control_api as api;
pub use drain::{WorkGuard, WorkTracker};
pub use handler::{DaemonStatus, Handler, OpContext, Reloaded};
pub use listener::BindError;
pub use log_file::LogFile;
pub use notify::Notifier;
pub use policy::{Caller, Peer, Policy};
pub use reloadable::{ReloadError, Reloadable, Swapped};
pub use server::{BackgroundServer, Builder, Server, ServerError, ServerHandle};
pub use tokio_util::sync::CancellationToken;

/// The README's code blocks, compiled as doc tests so the embedding example cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
