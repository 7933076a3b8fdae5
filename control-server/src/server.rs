//! The server a daemon builds: configuration, the accept loop, and graceful shutdown.

mod builder;

pub use crate::audit::syslog::DEFAULT_SYSLOG_PATH;
pub use crate::ops::history::DEFAULT_HISTORY_LEN;
pub use builder::Builder;
pub(crate) use builder::Serving;

use crate::accept::Acceptor;
use crate::listener::{self, BindError, BoundSocket};
use crate::log_file::LogFile;
use crate::registry::{BadCommandName, DuplicateName};
use crate::signals::Sighup;
use crate::state::Shared;
use control_api::socket::SocketPathError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default permission bits of the socket: owner only.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default cap on concurrent requests on one connection.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// Default time after which a connection that sends nothing (and awaits no reply) is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time that shutdown waits for calls in progress.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No socket path was given and none follows from the environment.
    #[error(transparent)]
    SocketPath(#[from] SocketPathError),
    /// The socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Two operations or commands share a name.
    #[error(transparent)]
    Registry(#[from] DuplicateName),
    /// A command's name is not one `ctl call` can type (see [`Builder::command`]).
    #[error(transparent)]
    CommandName(#[from] BadCommandName),
    /// One of the builder's own operations (`reload`, `status`, ...) was given twice: the
    /// second would silently replace the first.
    #[error(
        "`{0}` is given twice on the builder; give each once (`reloadable` serves both reload \
         and check, so it replaces `reload`, not adds to it)"
    )]
    GivenTwice(&'static str),
    /// A limit is outside what the server can serve with; it is refused rather than quietly
    /// raised.
    #[error("{what} {given} is below the least the server can serve with, {least}")]
    Limit {
        /// The builder method.
        what: &'static str,
        /// The value given.
        given: u64,
        /// The smallest value that works.
        least: u64,
    },
    /// The bound socket could not be registered with the runtime's IO driver: the system
    /// refused it (out of memory, or of epoll watches).
    #[error("cannot register the control socket with the runtime's IO driver")]
    Register(#[source] io::Error),
    /// The server's own runtime or thread could not be started.
    #[error("cannot start the control server's thread")]
    Thread(#[source] io::Error),
}

/// A bound control server, ready to serve.
pub struct Server {
    socket: BoundSocket,
    shared: Arc<Shared>,
    serving: Serving,
    /// The registered log files, flushed when the server stops.
    logs: Vec<LogFile>,
}

impl Server {
    /// The socket path.
    pub fn path(&self) -> &Path {
        self.socket.path()
    }

    /// A token that shuts the server down when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then shuts down gracefully: stops
    /// accepting, removes the socket file, lets calls in progress finish (up to the grace
    /// period) and returns. Must run inside a tokio runtime with IO enabled (tokio panics
    /// otherwise). A socket the system will not register with the runtime is
    /// [`ServerError::Register`], returned at once rather than only logged.
    pub async fn run(mut self) -> Result<(), ServerError> {
        let std_listener = self.socket.take_listener();
        let mut listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(ServerError::Register)?;
        let serving = self.serving;
        let shared = self.shared.clone();
        let token = shared.shutdown.clone();
        let tasks = TaskTracker::new();
        if serving.sighup != Sighup::Off {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(hangups) => {
                    let bridge =
                        crate::signals::bridge_sighup(hangups, serving.sighup, shared.clone());
                    tasks.spawn(bridge);
                }
                Err(err) => tracing::error!("cannot bridge SIGHUP: {err}"),
            }
        }
        let mut acceptor = Acceptor::new(shared.clone(), &serving, tasks.clone());
        tracing::info!(path = %self.path().display(), "control server listening");
        if let Some(notifier) = &shared.notifier {
            notifier.ready();
        }
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                accepted = listener.accept() => accepted,
                // The socket file was removed: nobody can connect until it is back.
                _ = self.socket.lost() => {
                    if let Some(rebound) = rebind(&mut self.socket) {
                        listener = rebound;
                    }
                    continue;
                }
            };
            match accepted {
                Ok((stream, _)) => acceptor.connection(stream).await,
                Err(err) => {
                    if !acceptor.failed(err).await {
                        break;
                    }
                }
            }
        }

        // New connections fail at once from here on.
        drop(listener);
        let path = self.path().to_owned();
        drop(self.socket);
        tracing::info!(path = %path.display(), "control server stopping");
        if let Some(notifier) = &shared.notifier {
            notifier.stopping();
        }
        stop(&shared, &tasks, serving.shutdown_grace, self.logs).await;
        Ok(())
    }

    /// Serves on the current tokio runtime, in a task of its own. Adds no thread.
    pub fn spawn(self) -> ServerHandle {
        let token = self.shutdown_token();
        let path = self.path().to_owned();
        let task = tokio::spawn(async move { log_failure(self.run().await) });
        ServerHandle { token, path, task }
    }

    /// Serves on a thread of its own with a single-threaded runtime, for daemons that do not
    /// use tokio. Operations run on that thread (and reloads on the runtime's blocking threads).
    ///
    /// A daemon without a `tracing` subscriber (one that does not use `tracing` at all) would
    /// lose the server's warnings and its audit lines (who called what). So when no global
    /// subscriber is set by the time `start` is called, the server's threads write them to
    /// stderr themselves, and say so once; set a subscriber before `start` to route them.
    pub fn start(self) -> Result<BackgroundServer, ServerError> {
        let token = self.shutdown_token();
        let path = self.path().to_owned();
        let fallback = stderr_fallback();
        let for_threads = fallback.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(move || {
                if let Some(dispatch) = &for_threads {
                    // For the blocking threads' whole life: nothing else sets their default.
                    std::mem::forget(tracing::dispatcher::set_default(dispatch));
                }
            })
            .build()
            .map_err(ServerError::Thread)?;
        let serve = move || log_failure(runtime.block_on(self.run()));
        let thread = std::thread::Builder::new()
            .name("ctl-server".into())
            .spawn(move || match fallback {
                Some(dispatch) => tracing::dispatcher::with_default(&dispatch, serve),
                None => serve(),
            })
            .map_err(ServerError::Thread)?;
        Ok(BackgroundServer {
            token,
            path,
            thread: Some(thread),
        })
    }
}

/// For [`Server::start`] in a daemon with no `tracing` subscriber: one that writes the server's
/// lines (info and above) to stderr, after a line saying why. `None` when a subscriber is set.
fn stderr_fallback() -> Option<tracing::Dispatch> {
    if tracing::dispatcher::has_been_set() {
        return None;
    }
    eprintln!(
        "control-server: no tracing subscriber is set, so the control server writes its own \
         log lines (warnings, and who called what) here, to stderr; to route them elsewhere, \
         set a subscriber before Server::start (e.g. tracing_subscriber::fmt().init())"
    );
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .finish();
    Some(tracing::Dispatch::new(subscriber))
}

/// What `spawn` and `start`, which cannot return it, do with a failure of `run`.
fn log_failure(served: Result<(), ServerError>) {
    if let Err(err) = served {
        tracing::error!("control server cannot serve: {}", listener::chain(&err));
    }
}

/// Waits, within `grace`, for the connections and the operations they started, then writes
/// out the log files (with what is left of the grace, and a second at least: the last lines
/// matter most).
async fn stop(shared: &Shared, tasks: &TaskTracker, grace: Duration, logs: Vec<LogFile>) {
    tasks.close();
    shared.work.close();
    let stop_by = Instant::now() + grace;
    let finished = tokio::time::timeout(grace, async {
        tasks.wait().await;
        shared.work.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            operations = shared.work.len(),
            "control server stopped with calls still running after {grace:?}"
        );
    }
    let left = stop_by.saturating_duration_since(Instant::now());
    flush_logs(logs, left.max(Duration::from_secs(1))).await;
}

/// Writes out what the registered log files still buffer, so that a daemon that stops loses
/// none of its lines: on a blocking thread, waited for at most `bound` (a stalled disk must
/// not hold the stop).
async fn flush_logs(logs: Vec<LogFile>, bound: Duration) {
    if logs.is_empty() {
        return;
    }
    let flushed = tokio::task::spawn_blocking(move || {
        logs.iter()
            .filter_map(|log| log.flush().err().map(|err| (log.path(), err)))
            .collect::<Vec<_>>()
    });
    match tokio::time::timeout(bound, flushed).await {
        Ok(Ok(failed)) => {
            for (path, err) in failed {
                tracing::warn!(
                    path = %control_api::text::escape_path(&path),
                    "cannot write out the log file's last lines at shutdown: {err}"
                );
            }
        }
        Ok(Err(_)) => {}
        Err(_) => tracing::warn!(
            "the log files' last lines were not written within {bound:?} (a stalled disk?); \
             they may be lost"
        ),
    }
}

/// Binds `socket` again after its file was removed, and logs the outcome. `None` if it failed:
/// the daemon keeps running, unreachable through its socket, and says so.
fn rebind(socket: &mut BoundSocket) -> Option<tokio::net::UnixListener> {
    let rebound = socket.rebind().and_then(|std| {
        tokio::net::UnixListener::from_std(std).map_err(|source| BindError::Io {
            action: "register with the runtime the socket at",
            path: socket.path().to_owned(),
            source,
        })
    });
    match rebound {
        Ok(listener) => {
            if socket.removals().admit() {
                tracing::error!(
                    path = %socket.path().display(),
                    "the control socket file was removed or replaced while serving; bound it \
                     again"
                );
            }
            Some(listener)
        }
        Err(err) if socket.squatted() => {
            if socket.failures().admit() {
                tracing::error!(
                    path = %socket.path().display(),
                    "cannot bind the control socket again, this instance is unreachable until \
                     that socket file is removed (then it binds again by itself): {}",
                    listener::chain(&err)
                );
            }
            None
        }
        Err(err) => {
            tracing::error!(
                path = %socket.path().display(),
                "cannot bind the control socket again, this instance is unreachable until it \
                 restarts: {}",
                listener::chain(&err)
            );
            None
        }
    }
}

/// A server running on the daemon's tokio runtime. Dropping it does not stop the server; call
/// [`ServerHandle::shutdown`].
pub struct ServerHandle {
    token: CancellationToken,
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket, waits for calls in progress (bounded by the grace
    /// period).
    pub async fn shutdown(self) {
        self.token.cancel();
        let _ = self.task.await;
    }
}

/// A server running on its own thread. Dropping it shuts it down.
pub struct BackgroundServer {
    token: CancellationToken,
    path: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket, waits for calls in progress (bounded by the grace
    /// period). Blocks the calling thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.token.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::OpContext;
    use control_api::{Access, Command, OpError};
    use serde::{Deserialize, Serialize};

    macro_rules! command_named {
        ($ty:ident, $name:expr) => {
            #[derive(Serialize, Deserialize, schemars::JsonSchema)]
            struct $ty {}
            impl Command for $ty {
                const NAME: &'static str = $name;
                const DOC: &'static str = "A command";
                const ACCESS: Access = Access::Read;
                type Reply = ();
            }
        };
    }

    command_named!(Spaced, "flush cache");
    command_named!(Slashed, "a/b");
    command_named!(Accented, "vidé");
    command_named!(Dashed, "-x");
    command_named!(Long, "a234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012");
    command_named!(
        Longest,
        "a234567890123456789012345678901234567890123456789012345678901234"
    );
    command_named!(Fine, "Flush_cache-2");
    command_named!(Shadow, "status");

    fn bind_with<C: Command>(dir: &Path) -> Result<Server, ServerError> {
        Server::builder("t")
            .command(|_ctx, _req: C| async { Err::<C::Reply, _>(OpError::failed("unused")) })
            .socket_path(dir.join("t.sock"))
            .bind()
    }

    fn refused<C: Command>(dir: &Path) {
        let err = match bind_with::<C>(dir) {
            Ok(_) => panic!("{:?} was accepted", C::NAME),
            Err(err) => err,
        };
        assert!(
            matches!(&err, ServerError::CommandName(bad) if bad.name == C::NAME),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(C::NAME), "{message}");
        assert!(
            message.contains("ASCII letters, digits, '-' or '_'"),
            "{message}"
        );
        assert!(
            !dir.join("t.sock").exists(),
            "a refused name leaves no socket"
        );
    }

    #[test]
    fn an_operation_given_twice_or_a_limit_below_the_least_is_an_error_from_bind() {
        let dir = tempfile::tempdir().unwrap();
        let base = || Server::builder("t").socket_path(dir.path().join("t.sock"));
        let reload = |_| async { Ok(crate::Reloaded::unchanged()) };
        #[derive(PartialEq)]
        struct Workers(u32);
        impl crate::reloadable::Changes for Workers {
            fn changes_from(&self, old: &Self) -> String {
                format!("workers {} -> {}", old.0, self.0)
            }
        }
        let config = Arc::new(crate::Reloadable::new(Workers(1)));
        let load = |_: OpContext, _: Arc<Workers>| async { Ok(Workers(2)) };
        let cases: Vec<(Builder, &str)> = vec![
            (
                base().reload(reload).reload(reload),
                "`reload` is given twice",
            ),
            (
                base().reloadable(&config, load).reload(reload),
                "`reload` is given twice",
            ),
            (
                base()
                    .status(|_| async { crate::DaemonStatus::new() })
                    .status(|_| async { crate::DaemonStatus::new() }),
                "`status` is given twice",
            ),
            (base().max_frame_len(100), "max_frame_len 100 is below"),
            (base().max_connections(0), "max_connections 0 is below"),
            (
                base().max_requests_per_connection(0),
                "max_requests_per_connection 0",
            ),
            (base().history_len(0), "history_len 0 is below"),
        ];
        for (builder, says) in cases {
            let err = builder.bind().err().expect("bind fails");
            assert!(err.to_string().contains(says), "{err}");
            assert!(!dir.path().join("t.sock").exists());
        }
        // Once each, and at the least, binds.
        base()
            .reloadable(&config, load)
            .max_frame_len(1024)
            .max_connections(1)
            .history_len(1)
            .bind()
            .unwrap();
    }

    /// A daemon that stops loses none of its lines: the server's shutdown writes out what a
    /// registered buffered log file still holds, though its handle lives on and its writer
    /// would wait a second more.
    #[tokio::test]
    async fn shutdown_writes_out_the_registered_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = LogFile::options()
            .buffered()
            .flush_interval(Duration::from_secs(1))
            .open(&path)
            .unwrap();
        let server = Server::builder("t")
            .log_file(&log)
            .socket_path(dir.path().join("t.sock"))
            .bind()
            .unwrap();
        let handle = server.spawn();
        log.write_line(b"the last line\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "written too early to tell"
        );
        handle.shutdown().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "the last line\n");
        drop(log);
    }

    #[test]
    fn command_names_ctl_cannot_type_or_count_are_an_error_from_bind_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        refused::<Spaced>(dir.path());
        refused::<Slashed>(dir.path());
        refused::<Accented>(dir.path());
        refused::<Dashed>(dir.path());
        refused::<Long>(dir.path());
        // The longest name allowed gets its call counters like any other.
        let server = bind_with::<Longest>(dir.path()).unwrap();
        let names: Vec<String> = server
            .shared
            .counters
            .set
            .read("ctl.calls.a2")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                format!("ctl.calls.{}.ok", Longest::NAME),
                format!("ctl.calls.{}.failed", Longest::NAME)
            ]
        );
        drop(server);
        let dir = tempfile::tempdir().unwrap();
        bind_with::<Fine>(dir.path()).unwrap();
        // The name of a built-in with a method of its own is refused, whether or not the
        // built-in is served: `call` could never reach it.
        let dir = tempfile::tempdir().unwrap();
        let err = bind_with::<Shadow>(dir.path())
            .err()
            .expect("`status` is taken");
        assert!(
            matches!(&err, ServerError::CommandName(e) if e.reason.contains("built-in")),
            "{err:?}"
        );
        assert!(!dir.path().join("t.sock").exists());
        // A valid name registered twice is the registry's error.
        let dir = tempfile::tempdir().unwrap();
        let err = Server::builder("t")
            .socket_path(dir.path().join("t.sock"))
            .command(|_, _: Fine| async { Err(OpError::failed("unused")) })
            .command(|_, _: Fine| async { Err(OpError::failed("unused")) })
            .bind()
            .err()
            .expect("a name registered twice");
        assert!(matches!(&err, ServerError::Registry(_)), "{err:?}");
        assert!(!dir.path().join("t.sock").exists());
    }

    /// A command known only at run time: served by name inside `call`, its arguments checked
    /// against its schema before the handler runs, its name checked at bind like a typed one's.
    #[tokio::test]
    async fn a_dynamic_command_is_served_with_its_arguments_checked_against_its_schema() {
        use crate::DynamicCommand;
        use control_api::codec::{Carrier, Invocation};
        use control_api::{Client, ClientError};
        use serde_json::{json, Value};
        let schema = json!({
            "type": "object",
            "properties": {"rate": {"type": "integer", "minimum": 1, "maximum": 1000}},
            "required": ["rate"],
        });
        let ran = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = ran.clone();
        let command = DynamicCommand::new(
            "set-rate",
            "Set the rate",
            Access::Operate,
            schema.clone(),
            move |ctx, args: Value| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { Ok(json!({"op": ctx.operation, "rate": args["rate"]})) }
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("t.sock");
        let server = Server::builder("t")
            .dynamic_command(command)
            .socket_path(&socket)
            .bind()
            .unwrap()
            .spawn();
        let client = Client::connect(&socket).await.unwrap();
        let call = |args: Value| Invocation {
            name: "set-rate".into(),
            args,
            carrier: Carrier::Call,
        };
        let reply = client.invoke(call(json!({"rate": 5}))).await.unwrap();
        assert_eq!(reply, json!({"op": "set-rate", "rate": 5}));
        for bad in [json!({"rate": 0}), json!({"rate": "5"}), json!({})] {
            // A connection of its own each: three refusals in a row close one.
            let client = Client::connect(&socket).await.unwrap();
            match client.invoke(call(bad.clone())).await {
                Err(ClientError::Op(OpError::BadArguments { field, .. })) => {
                    assert_eq!(field, "rate", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
        let described = client.describe().await.unwrap();
        let info = described
            .operations
            .iter()
            .find(|o| o.name == "set-rate")
            .unwrap();
        assert_eq!((info.access, &info.args), (Access::Operate, &schema));
        server.shutdown().await;

        // A bad name is refused at bind, as a typed command's is.
        let dir = tempfile::tempdir().unwrap();
        let err = Server::builder("t")
            .dynamic_command(DynamicCommand::new(
                "bad name",
                "",
                Access::Read,
                json!({}),
                |_, _| async { Ok(Value::Null) },
            ))
            .socket_path(dir.path().join("t.sock"))
            .bind()
            .err()
            .expect("a name with a space");
        assert!(
            matches!(&err, ServerError::CommandName(e) if e.name == "bad name"),
            "{err:?}"
        );
    }
}
