//! The server a daemon builds: configuration, the accept loop, and graceful shutdown.

use crate::accept::Acceptor;
use crate::counters::{Counters, ServerCounters};
use crate::drain::WorkTracker;
use crate::handler::{hook, DaemonStatus, Hook, OpContext, Reloaded};
use crate::listener::{self, BindError, BoundSocket};
use crate::log_file::LogFile;
use crate::log_level::LogFilter;
use crate::noise::Noise;
use crate::notify::Notifier;
use crate::ops;
use crate::policy::Policy;
use crate::registry::{check_command_name, BadCommandName, DuplicateName, Entry, Registry};
use crate::reloadable::{Changes, Load, Reloadable};
use crate::signals::Sighup;
use crate::state::Shared;
use control_api::socket::{SocketEnv, SocketPathError};
use control_api::{Command, DrainReply, OpError, OperationKind, ResumeReply, RotateReply};
use std::future::Future;
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

/// How the server serves once bound: what the builder sets and `run` uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Serving {
    pub idle_timeout: Duration,
    pub sighup: Sighup,
    pub max_frame_len: usize,
    pub max_connections: usize,
    pub max_requests_per_connection: usize,
    pub shutdown_grace: Duration,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            sighup: Sighup::Off,
            max_frame_len: control_api::wire::MAX_FRAME_LEN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Configures a [`Server`]. Made by [`Server::builder`].
///
/// What the daemon registers is what it serves: a load-and-validate step
/// ([`reloadable`](Builder::reloadable)) gives `reload` and `check`, a reload function alone
/// `reload`, a
/// [`LogFile`] gives `rotate`, a [`WorkTracker`] gives `drain` and `resume`, a [`LogFilter`]
/// gives `log-level`, and each [`command`](Builder::command) one command. `hello`, `status`,
/// `describe` and `counters` are always served.
pub struct Builder {
    name: String,
    version: String,
    socket_path: Option<PathBuf>,
    socket_mode: u32,
    socket_group: Option<u32>,
    policy: Policy,
    serving: Serving,
    shutdown: CancellationToken,
    logs: Vec<LogFile>,
    tracker: Option<WorkTracker>,
    notify_systemd: bool,
    log_filter: Option<Box<dyn LogFilter>>,
    reload: Option<Hook<Result<Reloaded, OpError>>>,
    /// Set with `reload` by [`Builder::reloadable`] only: the same load-and-validate step.
    check: Option<Hook<Result<Reloaded, OpError>>>,
    status: Option<Hook<DaemonStatus>>,
    own_rotate: Option<Hook<Result<RotateReply, OpError>>>,
    own_drain: Option<Hook<Result<DrainReply, OpError>>>,
    own_resume: Option<Hook<Result<ResumeReply, OpError>>>,
    commands: Vec<Entry>,
    counters: Counters,
    /// What was given twice or out of bounds: [`bind`](Builder::bind) fails with the first.
    mistakes: Vec<ServerError>,
}

/// Sets `slot`, recording a mistake if it was set already.
fn once<T>(slot: &mut Option<T>, value: T, what: &'static str, mistakes: &mut Vec<ServerError>) {
    if slot.replace(value).is_some() {
        mistakes.push(ServerError::GivenTwice(what));
    }
}

/// `given`, recording a mistake if it is below `least`.
fn at_least(
    given: usize,
    least: usize,
    what: &'static str,
    mistakes: &mut Vec<ServerError>,
) -> usize {
    if given < least {
        mistakes.push(ServerError::Limit {
            what,
            given: given as u64,
            least: least as u64,
        });
    }
    given.max(least)
}

impl Builder {
    /// Serves `reload` and `check` for the configuration held in `config`, from one
    /// load-and-validate step, `load` (see [`Load`]): `reload` runs it, and swaps the new value
    /// in when it differs and its caller still waits; `check` runs it and applies nothing, and
    /// both say what changed the same way ([`Changes`]). Prefer this to
    /// [`reload`](Builder::reload): `ctl check` then comes for free, and cannot disagree with
    /// what a reload would do. Checks and reloads take turns, never overlapping. Both steps run
    /// on tokio's blocking pool, never on the runtime: blocking file work in them is fine.
    ///
    /// ```
    /// use control_server::reloadable::{Changes, Reloadable};
    /// use control_server::{OpContext, Server};
    /// use std::sync::Arc;
    ///
    /// #[derive(PartialEq)]
    /// struct Config { workers: u32 }
    /// impl Changes for Config {
    ///     fn changes_from(&self, old: &Self) -> String {
    ///         format!("workers {} -> {}", old.workers, self.workers)
    ///     }
    /// }
    ///
    /// let config = Arc::new(Reloadable::new(Config { workers: 4 }));
    /// let builder = Server::builder("mydaemon").reloadable(&config, |_ctx: OpContext, _active| async {
    ///     // Read and validate the whole file; change nothing here.
    ///     Ok(Config { workers: 8 })
    /// });
    /// # let _ = builder;
    /// ```
    pub fn reloadable<T, L>(mut self, config: &Arc<Reloadable<T>>, load: L) -> Self
    where
        T: Changes + Send + Sync + 'static,
        L: Load<T>,
    {
        let (reload, check) = crate::reloadable::hooks(config.clone(), load);
        once(&mut self.reload, reload, "reload", &mut self.mistakes);
        self.check = Some(check);
        self
    }

    /// Serves `reload` with `f`: re-read and apply the configuration. Validate everything
    /// before applying anything; on error the old configuration must stay active (see
    /// [`Reloadable`]). The server runs one reload at a time on a task of
    /// its own, counts generations and catches panics. A daemon registered this way has no
    /// `check` (it answers unsupported): [`reloadable`](Builder::reloadable) gives both.
    ///
    /// ```
    /// # use control_server::{Reloaded, Server};
    /// let builder = Server::builder("mydaemon")
    ///     .reload(|_ctx| async { Ok(Reloaded::changed("workers 4 -> 8")) });
    /// # let _ = builder;
    /// ```
    pub fn reload<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OpContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reloaded, OpError>> + Send + 'static,
    {
        once(&mut self.reload, hook(f), "reload", &mut self.mistakes);
        self
    }

    /// The daemon's part of `status` (see [`DaemonStatus`] for how it combines with what the
    /// server knows). Without it, `status` reports only the server's part.
    pub fn status<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OpContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = DaemonStatus> + Send + 'static,
    {
        once(&mut self.status, hook(f), "status", &mut self.mistakes);
        self
    }

    /// Serves `rotate` with `f` for files written some other way than a registered
    /// [`LogFile`] (which the server reopens itself); its files are reported after those.
    pub fn rotate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OpContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<RotateReply, OpError>> + Send + 'static,
    {
        once(&mut self.own_rotate, hook(f), "rotate", &mut self.mistakes);
        self
    }

    /// Serves `drain` with `f` for work a registered [`WorkTracker`] does not see: stop taking
    /// it and finish it by `ctx.deadline`. Its counts are added to the tracker's.
    pub fn drain<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OpContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DrainReply, OpError>> + Send + 'static,
    {
        once(&mut self.own_drain, hook(f), "drain", &mut self.mistakes);
        self
    }

    /// Serves `resume` with `f`, undoing what the daemon's own drain closed (a listener). The
    /// tracker, if any, is resumed first; if `f` fails it drains again, so the daemon stays
    /// as it was.
    pub fn resume<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(OpContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ResumeReply, OpError>> + Send + 'static,
    {
        once(&mut self.own_resume, hook(f), "resume", &mut self.mistakes);
        self
    }

    /// Serves the daemon's own command `C` with `f`: `ctl call NAME C::NAME key=value` and
    /// [`Client::call`](control_api::Client::call) reach it, `describe` lists it with its
    /// arguments. Arguments are checked against `C`'s schema before `f` runs; a call needing
    /// more than read access runs on a task the server owns, like `reload`.
    ///
    /// A command named like another operation or command makes [`bind`](Builder::bind) fail, as
    /// does a name that is not 1 to 64 ASCII letters, digits, `-` or `_` starting with a letter
    /// ([`ServerError::CommandName`]): the name is one word on `ctl call`'s command line, and
    /// part of the names of the command's call counters (`ctl.calls.NAME.ok`).
    pub fn command<C, F, Fut>(mut self, f: F) -> Self
    where
        C: Command,
        F: Fn(OpContext, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, OpError>> + Send + 'static,
    {
        self.commands.push(Entry::new(OperationKind::Command, f));
        self
    }

    /// Registers the daemon's counters and gauges: `ctl counters` shows them, before the
    /// server's own (`ctl.*`: calls per operation and result, refusals, connections and
    /// evictions, reloads, rotations), which it shows whether or not this is called. Counters
    /// registered in the set later, even after `bind`, are shown too.
    pub fn counters(mut self, counters: &Counters) -> Self {
        self.counters = counters.clone();
        self
    }

    /// Registers a log file: `rotate` reopens it and `status` lists it, with no code of the
    /// daemon's. Registering one is what makes `rotate` exist.
    pub fn log_file(mut self, log: &LogFile) -> Self {
        self.logs.push(log.clone());
        self
    }

    /// The daemon's version, shown by `hello` and `status` (e.g. `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Listens at `path` instead of the conventional path for the daemon's name (see
    /// [`control_api::socket`]: `/run/ctl/NAME.sock` as root, `/run/NAME/ctl.sock` when that
    /// directory is the daemon user's own).
    pub fn socket_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket_path = Some(path.into());
        self
    }

    /// Permission bits of the socket file (default 0600). Anyone who can open the socket still
    /// faces the [`Policy`].
    pub fn socket_mode(mut self, mode: u32) -> Self {
        self.socket_mode = mode & 0o777;
        self
    }

    /// Registers the daemon's work tracker: `drain` refuses new work and waits for the work in
    /// flight, `resume` takes it again, and `status` reports both, with no code of the
    /// daemon's. Registering one is what makes `drain` and `resume` exist.
    pub fn work_tracker(mut self, tracker: &WorkTracker) -> Self {
        once(
            &mut self.tracker,
            tracker.clone(),
            "work_tracker",
            &mut self.mistakes,
        );
        self
    }

    /// Lets `ctl log-level` read and change the daemon's log filter, validated before it is
    /// applied; typically a `tracing_subscriber::reload::Handle<EnvFilter, _>` (see
    /// [`LogFilter`]).
    pub fn log_filter(mut self, filter: impl LogFilter) -> Self {
        once(
            &mut self.log_filter,
            Box::new(filter),
            "log_filter",
            &mut self.mistakes,
        );
        self
    }

    /// Tells systemd about readiness, reloads and stopping through `$NOTIFY_SOCKET` when it is
    /// set (`Type=notify` or `Type=notify-reload` units): `READY=1` once serving,
    /// `RELOADING=1` and `MONOTONIC_USEC=` when a reload starts, `READY=1` and `STATUS=` with
    /// its outcome when it ends, `STATUS=` when a drain begins, completes or is undone by
    /// `resume`, and `STOPPING=1` on shutdown only: systemd takes `STOPPING=1` as the service
    /// stopping (and kills it after `TimeoutStopSec`), which a drain is not. Does nothing when
    /// the variable is not set.
    pub fn notify_systemd(mut self, enabled: bool) -> Self {
        self.notify_systemd = enabled;
        self
    }

    /// Group of the socket file, so that with a mode such as 0660 its members can connect.
    /// Setting a group the daemon is not a member of needs root.
    pub fn socket_group(mut self, gid: u32) -> Self {
        self.socket_group = Some(gid);
        self
    }

    /// Closes connections that send nothing for this long while no reply is pending
    /// (default 30 s). A client that announces a frame and then stalls is closed too.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.serving.idle_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// What a SIGHUP does (default: nothing is bridged; see [`Sighup`]). For daemons
    /// migrating from signals, whose logrotate stanzas may still end in `kill -HUP`:
    /// [`Sighup::ReopenLogs`] reopens the log files as `ctl rotate` does (the same reopen,
    /// recorded in `status` as the last rotate), [`Sighup::ReopenLogsAndReload`] then reloads
    /// as `ctl reload` does. Either logs a warning naming the `ctl` command to use instead,
    /// after the reopen, so it lands in the new file. Whoever sent the signal learns nothing
    /// of the outcome.
    ///
    /// ```
    /// use control_server::{signals::Sighup, Server};
    /// let builder = Server::builder("mydaemon").on_sighup(Sighup::ReopenLogs);
    /// # let _ = builder;
    /// ```
    pub fn on_sighup(mut self, action: Sighup) -> Self {
        self.serving.sighup = action;
        self
    }

    /// `true`: [`on_sighup`](Builder::on_sighup)`(Sighup::ReopenLogsAndReload)`; `false`:
    /// `Sighup::Off`. A SIGHUP reopens the log files before it reloads: a leftover postrotate
    /// `kill -HUP` must not leave the daemon writing to the rotated file.
    pub fn reload_on_sighup(self, enabled: bool) -> Self {
        self.on_sighup(match enabled {
            true => Sighup::ReopenLogsAndReload,
            false => Sighup::Off,
        })
    }

    /// Who may call what (default: root and the daemon's own uid have `admin`, nobody else
    /// anything).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Largest request frame accepted, in bytes (default
    /// [`MAX_FRAME_LEN`](control_api::wire::MAX_FRAME_LEN), 64 KiB). A longer announced length
    /// closes the connection before anything is allocated for it. Replies are not bound by it:
    /// they go out up to [`MAX_REPLY_FRAME_LEN`](control_api::wire::MAX_REPLY_FRAME_LEN)
    /// (1 MiB), what `ctl` reads, and a longer reply is sent with its longest strings cut, with
    /// a mark, so that no field a daemon reports can make `status` fail. Under 1024 bytes (too
    /// small for a `hello`), [`bind`](Builder::bind) fails with [`ServerError::Limit`].
    pub fn max_frame_len(mut self, bytes: usize) -> Self {
        self.serving.max_frame_len = at_least(bytes, 1024, "max_frame_len", &mut self.mistakes);
        self
    }

    /// Cap on open connections (default 256). A connection past it closes the oldest idle
    /// one (no request in flight); if every connection is busy, the new one is closed. 0 makes
    /// [`bind`](Builder::bind) fail.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.serving.max_connections = at_least(n, 1, "max_connections", &mut self.mistakes);
        self
    }

    /// Cap on concurrent requests on one connection (default 64); requests past it get an
    /// immediate error. Connections of callers other than root and the daemon's own uid get at
    /// most 4 whatever this says: each request in flight holds memory a crowd would multiply.
    /// 0 makes [`bind`](Builder::bind) fail.
    pub fn max_requests_per_connection(mut self, n: usize) -> Self {
        let what = "max_requests_per_connection";
        self.serving.max_requests_per_connection = at_least(n, 1, what, &mut self.mistakes);
        self
    }

    /// How long shutdown waits for calls in progress (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.serving.shutdown_grace = grace;
        self
    }

    /// Shuts the server down when `token` is cancelled, in addition to the server's handles.
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Binds the socket. Fails if another instance serves on it; replaces a stale one.
    /// Needs no runtime; serving starts with [`Server::spawn`], [`Server::start`] or
    /// [`Server::run`].
    pub fn bind(mut self) -> Result<Server, ServerError> {
        if !self.mistakes.is_empty() {
            return Err(self.mistakes.swap_remove(0));
        }
        let path = match &self.socket_path {
            Some(path) => path.clone(),
            None => SocketEnv::from_process().socket_path(&self.name)?,
        };
        let notifier = self.notifier();
        let work = TaskTracker::new();
        let counters = ServerCounters::new();
        let reloads = Arc::new(ops::reload::Reloads::new(
            self.reload,
            self.check,
            notifier.clone(),
            work.clone(),
            &counters,
        ));
        // Filled once everything is registered: `hello` and `describe` list it.
        let catalog = ops::describe::Catalog::default();
        let logs = self.logs.clone();
        let rotate = ops::rotate::Rotate::new(
            &self.name,
            self.logs.clone(),
            self.own_rotate,
            counters.rotations_ok.clone(),
            counters.rotations_failed.clone(),
        );
        let status = ops::status::StatusOp {
            name: self.name.clone(),
            version: self.version.clone(),
            started: Instant::now(),
            reloads: reloads.clone(),
            tracker: self.tracker.clone(),
            logs: self.logs,
            rotate: rotate.clone(),
            own: self.status,
        };
        let drain = ops::drain::Drain {
            tracker: self.tracker,
            own_drain: self.own_drain,
            own_resume: self.own_resume,
            notifier: notifier.clone(),
        };
        let builtins: Vec<Entry> = [
            Some(ops::describe::hello(
                self.name.clone(),
                self.version.clone(),
                catalog.clone(),
            )),
            Some(status.entry()),
            reloads.entry(),
            reloads.check_entry(),
            rotate.entry(),
        ]
        .into_iter()
        .flatten()
        .chain(drain.entries())
        .chain(self.log_filter.map(ops::log_level::entry))
        .chain([
            ops::describe::describe(catalog.clone()),
            ops::counters::entry(self.counters, counters.set.clone()),
        ])
        .chain(ops::stateless())
        .collect();
        let registry = registry(builtins, self.commands, &counters)?;
        let _ = catalog.set(registry.infos());

        // Bound last: a registry error leaves no socket behind.
        let socket = listener::bind(&path, self.socket_mode, self.socket_group)?;
        let shared = Arc::new(Shared {
            name: self.name,
            own_uid: rustix::process::geteuid().as_raw(),
            policy: self.policy,
            registry,
            reloads,
            rotate,
            notifier,
            noise: Arc::new(Noise::new()),
            counters,
            work,
            shutdown: self.shutdown,
        });
        Ok(Server {
            socket,
            shared,
            serving: self.serving,
            logs,
        })
    }
}

impl Builder {
    /// systemd's notify socket, when asked for and set.
    fn notifier(&self) -> Option<Arc<Notifier>> {
        if !self.notify_systemd {
            return None;
        }
        Notifier::from_env()
            .unwrap_or_else(|err| {
                tracing::warn!("NOTIFY_SOCKET is set but unusable, not notifying systemd: {err}");
                None
            })
            .map(Arc::new)
    }
}

/// The registry of what the server serves: the built-ins with a method of their own in the
/// protocol's order ([`METHODS`](control_api::codec::METHODS)), those added later, then the daemon's commands, each
/// counted. A command whose name `ctl call` cannot reach, or a name taken twice, is an error.
fn registry(
    mut builtins: Vec<Entry>,
    commands: Vec<Entry>,
    counters: &ServerCounters,
) -> Result<Registry, ServerError> {
    builtins.sort_by_key(|e| {
        control_api::codec::METHODS
            .iter()
            .position(|(_, op)| *op == e.name)
            .unwrap_or(usize::MAX)
    });
    for entry in &commands {
        check_command_name(entry.name)?;
    }
    let mut registry = Registry::default();
    for entry in builtins.into_iter().chain(commands) {
        registry.add(entry)?;
    }
    registry.count_calls(counters);
    Ok(registry)
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
    /// Starts configuring a server for the daemon `name` (which also names its socket). What
    /// it serves is what is then registered on the [`Builder`].
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            version: String::new(),
            socket_path: None,
            socket_mode: DEFAULT_SOCKET_MODE,
            socket_group: None,
            policy: Policy::default(),
            serving: Serving::default(),
            shutdown: CancellationToken::new(),
            logs: Vec::new(),
            tracker: None,
            notify_systemd: false,
            log_filter: None,
            reload: None,
            check: None,
            status: None,
            own_rotate: None,
            own_drain: None,
            own_resume: None,
            commands: Vec::new(),
            counters: Counters::new(),
            mistakes: Vec::new(),
        }
    }

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
            match crate::signals::sighup_stream() {
                Ok(hangups) => {
                    tasks.spawn(crate::signals::bridge_sighup(
                        hangups,
                        serving.sighup,
                        shared.rotate.clone(),
                        shared.reloads.clone(),
                        shared.name.clone(),
                        shared.shutdown.clone(),
                    ));
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
            let go_on = match accepted {
                Ok((stream, _)) => {
                    acceptor.connection(stream).await;
                    true
                }
                Err(err) => acceptor.failed(err).await,
            };
            if !go_on {
                break;
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
    /// use tokio. Operations run on that thread.
    pub fn start(self) -> Result<BackgroundServer, ServerError> {
        let token = self.shutdown_token();
        let path = self.path().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServerError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("ctl-server".into())
            .spawn(move || log_failure(runtime.block_on(self.run())))
            .map_err(ServerError::Thread)?;
        Ok(BackgroundServer {
            token,
            path,
            thread: Some(thread),
        })
    }
}

/// What `spawn` and `start`, which cannot return it, do with a failure of `run`.
fn log_failure(served: Result<(), ServerError>) {
    if let Err(err) = served {
        let mut line = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(next) = cause {
            line = format!("{line}: {next}");
            cause = next.source();
        }
        tracing::error!("control server cannot serve: {line}");
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
    use control_api::Access;
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

    /// A daemon that stops loses none of its lines: the server's shutdown writes out what a
    /// registered buffered log file still holds, though its handle lives on and its writer
    /// would wait a second more.
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
            .bind()
            .unwrap();
    }

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
}
