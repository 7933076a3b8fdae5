//! The [`Builder`]: what a daemon registers, checked once at [`bind`](Builder::bind), is what
//! its server serves.

use super::{Server, ServerError, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
use super::{DEFAULT_HISTORY_LEN, DEFAULT_SYSLOG_PATH};
use super::{DEFAULT_MAX_REQUESTS_PER_CONNECTION, DEFAULT_SHUTDOWN_GRACE, DEFAULT_SOCKET_MODE};
use crate::audit::Audit;
use crate::counters::{Counters, ServerCounters};
use crate::drain::WorkTracker;
use crate::handler::{hook, DaemonStatus, Hook, OpContext, Reloaded};
use crate::listener;
use crate::log_file::LogFile;
use crate::log_level::LogFilter;
use crate::noise::Noise;
use crate::notify::Notifier;
use crate::ops;
use crate::policy::Policy;
use crate::registry::{check_command_name, DynamicCommand, Entry, Registry};
use crate::reloadable::{Changes, Load, Reloadable};
use crate::signals::Sighup;
use crate::state::Shared;
use control_api::socket::SocketEnv;
use control_api::{Command, DrainReply, OpError, OperationKind, ResumeReply, RotateReply};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the server serves once bound: what the builder sets and `run` uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Serving {
    pub idle_timeout: Duration,
    pub sighup: Sighup,
    pub max_frame_len: usize,
    pub max_connections: usize,
    pub max_requests_per_connection: usize,
    /// How long shutdown waits for calls in progress, and a connection told to stop may take
    /// to send the replies it owes.
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
    /// Set by [`Builder::reloadable`]: has the value record, in the server's generations,
    /// replacements made outside `reload`.
    record_changes: Option<RecordChanges>,
    status: Option<Hook<DaemonStatus>>,
    own_rotate: Option<Hook<Result<RotateReply, OpError>>>,
    own_drain: Option<Hook<Result<DrainReply, OpError>>>,
    own_resume: Option<Hook<Result<ResumeReply, OpError>>>,
    commands: Vec<Entry>,
    counters: Counters,
    /// How many calls `history` keeps.
    history_len: usize,
    /// Where audit lines go; `None`: not to syslog.
    syslog_path: Option<PathBuf>,
    /// What was given twice or out of bounds: [`bind`](Builder::bind) fails with the first.
    mistakes: Vec<ServerError>,
}

/// What [`Builder::reloadable`] leaves for `bind`: hands the value the server's reload
/// bookkeeping, once that exists.
type RecordChanges = Box<dyn FnOnce(&Arc<ops::reload::Reloads>)>;

/// Sets `slot`; the mistake if it was set already.
fn once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Option<ServerError> {
    slot.replace(value).map(|_| ServerError::GivenTwice(what))
}

/// Builder methods that each serve an operation with a daemon's function `f`, kept as a
/// [`Hook`] in the slot named, given once.
macro_rules! hook_methods {
    ($($(#[$doc:meta])* $method:ident => $slot:ident: $output:ty;)*) => {$(
        $(#[$doc])*
        pub fn $method<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn(OpContext) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = $output> + Send + 'static,
        {
            self.mistakes.extend(once(&mut self.$slot, hook(f), stringify!($method)));
            self
        }
    )*};
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
        self.mistakes
            .extend(once(&mut self.reload, reload, "reload"));
        self.mistakes.extend(once(&mut self.check, check, "check"));
        let config = config.clone();
        self.record_changes = Some(Box::new(move |reloads| {
            // Weak: the reload hooks hold the value, the value must not hold them up.
            let reloads = Arc::downgrade(reloads);
            config.record_with(Box::new(move |old: &T, new: &T| {
                if let Some(reloads) = reloads.upgrade().filter(|_| new != old) {
                    reloads.changed_elsewhere(new.changes_from(old));
                }
            }));
        }));
        self
    }

    hook_methods! {
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
        reload => reload: Result<Reloaded, OpError>;

        /// The daemon's part of `status` (see [`DaemonStatus`] for how it combines with what the
        /// server knows). Without it, `status` reports only the server's part.
        status => status: DaemonStatus;

        /// Serves `rotate` with `f` for files written some other way than a registered
        /// [`LogFile`] (which the server reopens itself); its files are reported after those.
        rotate => own_rotate: Result<RotateReply, OpError>;

        /// Serves `drain` with `f` for work a registered [`WorkTracker`] does not see: stop taking
        /// it and finish it by `ctx.deadline`. Its counts are added to the tracker's.
        drain => own_drain: Result<DrainReply, OpError>;

        /// Serves `resume` with `f`, undoing what the daemon's own drain closed (a listener). The
        /// tracker, if any, is resumed first; if `f` fails it drains again, so the daemon stays
        /// as it was.
        resume => own_resume: Result<ResumeReply, OpError>;

        /// Serves `check` with `f`, a validation of the configuration that applies nothing, beside
        /// a [`reload`](Builder::reload) that validates and applies: `ctl check` runs it in the
        /// reloads' turn (never overlapping one) and reports its summary. Prefer
        /// [`reloadable`](Builder::reloadable), where one load step serves both and they cannot
        /// disagree; this is for daemons whose configuration the server does not hold (such as
        /// the C library's). Given together with `reloadable`, [`bind`](Builder::bind) fails.
        check => check: Result<Reloaded, OpError>;
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

    /// Serves a command known only at run time (see [`DynamicCommand`]), as
    /// [`command`](Builder::command) serves a typed one: the same name rules, the same check of
    /// the arguments against the schema before the handler runs, the same counters.
    pub fn dynamic_command(mut self, command: DynamicCommand) -> Self {
        self.commands.push(Entry::dynamic(command));
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
        self.mistakes
            .extend(once(&mut self.tracker, tracker.clone(), "work_tracker"));
        self
    }

    /// Lets `ctl log-level` read and change the daemon's log filter, validated before it is
    /// applied; typically a `tracing_subscriber::reload::Handle<EnvFilter, _>` (see
    /// [`LogFilter`]).
    pub fn log_filter(mut self, filter: impl LogFilter) -> Self {
        self.mistakes
            .extend(once(&mut self.log_filter, Box::new(filter), "log_filter"));
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

    /// How many calls `ctl history` keeps (default 100): the newest, each call that needed
    /// more than read access (reload, check, rotate, drain, resume, setting the log filter, the
    /// daemon's commands that are not read-only), refused ones too, and each SIGHUP the server
    /// acted on. The oldest is dropped first and counted; refusals fill at most a quarter of
    /// it, so a flood of them cannot push out the calls that ran. 0 makes
    /// [`bind`](Builder::bind) fail.
    pub fn history_len(mut self, n: usize) -> Self {
        self.history_len = at_least(n, 1, "history_len", &mut self.mistakes);
        self
    }

    /// Whether each call `history` records is also written as one line to the system's log
    /// (default: yes), where an audit looks for it: to `/dev/log` (rsyslog, systemd-journald),
    /// facility `authpriv`, tag `ctl-control`, e.g. `ctl-control[4242]: demo: reload by uid
    /// 1000 (alice) pid 4243 "ctl reload demo": ok (generation 3) in 12 ms`. Sending never
    /// waits: a line the system's log cannot take at once (none listening, its queue full) is
    /// dropped and counted in `ctl.audit.syslog.dropped`. Lines of callers other than root and
    /// the daemon's own uid are rate-limited as the daemon's own log lines are.
    pub fn audit_syslog(mut self, enabled: bool) -> Self {
        let path = self.syslog_path.take();
        self.syslog_path = enabled.then(|| path.unwrap_or_else(|| DEFAULT_SYSLOG_PATH.into()));
        self
    }

    /// Sends the audit lines of [`audit_syslog`](Builder::audit_syslog) to the datagram socket
    /// at `path` instead of `/dev/log` (a test's own listener, a syslog daemon in a container),
    /// and turns them on.
    pub fn syslog_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.syslog_path = Some(path.into());
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
        // Filled once everything is registered: `hello` and `describe` list it.
        let catalog = ops::describe::Catalog::default();
        let own_uid = rustix::process::geteuid().as_raw();
        let mut audit = Audit::new(
            &self.name,
            own_uid,
            self.history_len,
            self.syslog_path.as_deref(),
            &counters,
        );
        let (builtins, reloads, rotate) =
            self.builtins(&notifier, &work, &counters, &catalog, &audit);
        audit.generations_from(&reloads);
        let registry = registry(builtins, std::mem::take(&mut self.commands), &counters)?;
        let _ = catalog.set(registry.infos());

        // Bound last: a registry error leaves no socket behind.
        let socket = listener::bind(&path, self.socket_mode, self.socket_group)?;
        let shared = Arc::new(Shared {
            name: self.name,
            own_uid,
            policy: self.policy,
            registry,
            reloads,
            rotate,
            notifier,
            audit: Arc::new(audit),
            noise: Arc::new(Noise::new()),
            counters,
            work,
            shutdown: self.shutdown,
        });
        Ok(Server {
            socket,
            shared,
            serving: self.serving,
            logs: self.logs,
        })
    }
}

impl Builder {
    /// The built-in operations of what was registered, and the two that SIGHUP also reaches.
    fn builtins(
        &mut self,
        notifier: &Option<Arc<Notifier>>,
        work: &TaskTracker,
        counters: &ServerCounters,
        catalog: &ops::describe::Catalog,
        audit: &Audit,
    ) -> (
        Vec<Entry>,
        Arc<ops::reload::Reloads>,
        Arc<ops::rotate::Rotate>,
    ) {
        let reloads = Arc::new(ops::reload::Reloads::new(
            self.reload.take(),
            self.check.take(),
            notifier.clone(),
            work.clone(),
            counters,
        ));
        if let Some(record_changes) = self.record_changes.take() {
            record_changes(&reloads);
        }
        let rotate = ops::rotate::Rotate::new(
            &self.name,
            self.logs.clone(),
            self.own_rotate.take(),
            counters,
        );
        let status = ops::status::StatusOp {
            name: self.name.clone(),
            version: self.version.clone(),
            started: Instant::now(),
            reloads: reloads.clone(),
            tracker: self.tracker.clone(),
            rotate: rotate.clone(),
            own: self.status.take(),
        };
        let drain = ops::drain::Drain {
            tracker: self.tracker.take(),
            own_drain: self.own_drain.take(),
            own_resume: self.own_resume.take(),
            notifier: notifier.clone(),
        };
        let hello = ops::describe::hello(self.name.clone(), self.version.clone(), catalog.clone());
        let entries = [
            Some(hello),
            Some(status.entry()),
            reloads.entry(),
            reloads.check_entry(),
            rotate.entry(),
        ]
        .into_iter()
        .flatten()
        .chain(drain.entries())
        .chain(self.log_filter.take().map(ops::log_level::entry))
        .chain([
            ops::describe::describe(catalog.clone()),
            ops::counters::entry(self.counters.clone(), counters.set.clone()),
        ])
        .chain(ops::stateless())
        .chain([audit.history.entry()])
        .collect();
        (entries, reloads, rotate)
    }

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
            record_changes: None,
            status: None,
            own_rotate: None,
            own_drain: None,
            own_resume: None,
            commands: Vec::new(),
            counters: Counters::new(),
            history_len: DEFAULT_HISTORY_LEN,
            syslog_path: Some(DEFAULT_SYSLOG_PATH.into()),
            mistakes: Vec::new(),
        }
    }
}
