//! `demo-daemon`: a small real daemon embedding `control-server`. It appends one `seq=N` line
//! per interval to its log file and answers `ctl status | reload | rotate | drain`.

mod config;
mod daemon;
mod gate;
mod reload;

use anyhow::{bail, Context as _};
use clap::Parser;
use config::{Config, DEFAULT_CONFIG};
use control_api::{Command, DrainRequest, LogLevelRequest, ReloadRequest, RotateRequest};
use control_server::log_file::WriteMode;
use control_server::signals::{Sighup, Termination};
use control_server::{Caller, LogFile, Policy, Server, WorkTracker};
use daemon::Demo;
use demo_daemon::{SetMessage, Stats};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// A small daemon to try `ctl` on: it writes one `seq=N` line per interval to its log file.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Daemon name; also names its socket (NAME.sock in the socket directory)
    #[arg(long, default_value = "demo")]
    name: String,

    /// Listen at this socket path instead of the conventional one
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Configuration file (TOML); without it, a default one is written to a temporary directory
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Answer `unsupported` for this operation (reload, rotate, drain, log-level); repeatable
    #[arg(long, value_name = "OPERATION", value_parser = parse_mutating_op)]
    disable: Vec<&'static str>,

    /// Permission bits of the socket, in octal
    #[arg(long, value_name = "MODE", default_value = "600", value_parser = parse_mode)]
    socket_mode: u32,

    /// Group of the socket (name or gid), e.g. with --socket-mode 660
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    socket_group: Option<u32>,

    /// Let this uid run every operation (root and our own uid always may); repeatable
    #[arg(long, value_name = "UID")]
    allow_uid: Vec<u32>,

    /// Let callers whose primary gid is GID run every operation; repeatable
    #[arg(long, value_name = "GID")]
    allow_gid: Vec<u32>,

    /// Let this uid run read-only operations (hello, status); repeatable
    #[arg(long, value_name = "UID")]
    allow_read_only_uid: Vec<u32>,

    /// Let callers whose primary gid is GID run read-only operations; repeatable
    #[arg(long, value_name = "GID")]
    allow_read_only_gid: Vec<u32>,

    /// Close connections that send nothing for this long
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    idle_timeout: std::time::Duration,

    /// Exit once a drain has completed
    #[arg(long)]
    exit_after_drain: bool,

    /// Most connections open at once; past it the oldest idle one is closed
    #[arg(long, value_name = "N", default_value_t = control_server::server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// How long a connection told to stop (at shutdown) may take to send the replies it owes
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: std::time::Duration,

    /// How lines reach the log file: `line` (one write per line, the caller waits for the disk)
    /// or `buffered` (batched by a writer thread; dropped and counted only when the disk stalls)
    #[arg(long, value_name = "MODE", default_value = "line")]
    log_mode: LogMode,

    /// Buffered mode: bytes of lines that may wait for the writer thread before a logging call
    /// waits for room (or, on a stalled disk, drops its line)
    #[arg(long, value_name = "BYTES", default_value_t = control_server::log_file::DEFAULT_BUFFER_LIMIT)]
    log_buffer_limit: usize,

    /// Reopen the log file by itself when logrotate renames it (inotify), so that a logrotate
    /// stanza needs no `postrotate`; `ctl rotate` keeps working
    #[arg(long)]
    watch_log_rotation: bool,

    /// How many calls `ctl history` keeps
    #[arg(long, value_name = "N", default_value_t = control_server::server::DEFAULT_HISTORY_LEN)]
    history_len: usize,

    /// Where the audit lines (who changed what) go: a syslog datagram socket; an empty value
    /// sends none. Default: $CTL_SYSLOG_SOCKET if set, else /dev/log
    #[arg(long, value_name = "PATH")]
    syslog_socket: Option<PathBuf>,
}

/// [`WriteMode`](control_server::log_file::WriteMode), as a command-line value.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogMode {
    Line,
    Buffered,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "{s:?} is not an octal permission mode such as 600 or 660"
        )),
    }
}

fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no group named {s:?}")),
        Err(e) => Err(format!("cannot look up group {s:?}: {e}")),
    }
}

impl Args {
    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        for &uid in &self.allow_uid {
            policy = policy.allow(Caller::Uid(uid));
        }
        for &gid in &self.allow_gid {
            policy = policy.allow(Caller::Gid(gid));
        }
        for &uid in &self.allow_read_only_uid {
            policy = policy.allow_read_only(Caller::Uid(uid));
        }
        for &gid in &self.allow_read_only_gid {
            policy = policy.allow_read_only(Caller::Gid(gid));
        }
        policy
    }
}

fn parse_mutating_op(s: &str) -> Result<&'static str, String> {
    if s == "resume" {
        // The server offers resume with the work tracker that drain uses.
        return Err("`resume` comes with `drain`: --disable drain turns off both".to_owned());
    }
    [
        ReloadRequest::NAME,
        RotateRequest::NAME,
        DrainRequest::NAME,
        LogLevelRequest::NAME,
    ]
    .into_iter()
    .find(|op| *op == s)
    .ok_or_else(|| {
        format!("`{s}` cannot be disabled; only reload, rotate, drain and log-level can")
    })
}

/// How long the last writes may take after the server's shutdown grace, before a stop that
/// does not finish (a disk that does not answer) is cut short.
const LAST_WRITES: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // First, before any thread exists: SIGTERM is then heard even when the runtime's thread is
    // stuck, and a stop ends within the grace (and the last writes) whatever the disk does.
    let termination = match Termination::start(args.shutdown_grace + LAST_WRITES) {
        Ok(termination) => termination,
        Err(err) => {
            eprintln!("demo-daemon: cannot set up SIGTERM and SIGINT handling: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(run(args, &termination));
    // A step still blocked on its thread (a `load` that never returns) must not hold up the
    // exit, as dropping the runtime would: its thread ends with the process.
    runtime.shutdown_background();
    termination.finished();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line, without anyhow's backtrace.
            eprintln!("demo-daemon: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, termination: &Termination) -> anyhow::Result<()> {
    // First, before anything else can start a thread: a leftover `pkill -HUP`, `kill -USR1`
    // or `kill -QUIT` no longer kills this daemon. SIGHUP is then bridged below.
    control_server::signals::ignore_legacy_signals().context("cannot ignore legacy signals")?;
    // The filter sits in a reload layer so that `ctl log-level` can change it at runtime.
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => write_default_config(&args.name)?,
    };
    let config = Config::load(&config_path)
        .await
        .with_context(|| match args.config {
            Some(_) => "cannot start with this configuration".to_owned(),
            None => format!(
                "cannot start with the configuration left by an earlier run; fix it, or delete {} \
                 to start again from the default one",
                config_path.display()
            ),
        })?;
    // The log file counts what reached it (and what was dropped) in the daemon's counters.
    let counters = control_server::Counters::new();
    let log = LogFile::options()
        .counters(&counters, "demo")
        .mode(match args.log_mode {
            LogMode::Line => WriteMode::Line,
            LogMode::Buffered => WriteMode::Buffered,
        })
        .buffer_limit(args.log_buffer_limit)
        .watch_rotation(args.watch_log_rotation)
        .open(&config.log_file)
        .with_context(|| format!("cannot open log_file {}", config.log_file.display()))?;
    // The daemon's own `tracing` output goes into its log file, the path the guide recommends,
    // so `rotate` moves it along with the `seq=` lines; and to stderr, through a writer thread
    // that drops lines when nobody reads them: a stalled reader of stderr (a paused pager, a
    // full pipe) must not block the thread that logged, which may be the runtime's. The guard
    // writes out what is queued when `run` returns.
    let (stderr, _stderr_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(log.clone())
                .with_ansi(false),
        )
        .init();
    let log_path = config.log_file.clone();
    let interval_ms = config.interval_ms;
    let work = WorkTracker::new();
    let demo = Arc::new(Demo::new(
        config_path.clone(),
        config,
        log.clone(),
        work.clone(),
        counters,
    ));

    let (reporting, setting, counting) = (demo.clone(), demo.clone(), demo.clone());
    let mut builder = Server::builder(&args.name)
        .status(move |_ctx| std::future::ready(reporting.status()))
        // The daemon's own commands: typed, listed by `ctl describe`, run by `ctl call`.
        .command(move |_ctx, req: SetMessage| std::future::ready(setting.set_message(req)))
        .command(move |_ctx, _: Stats| std::future::ready(Ok(counting.stats())))
        // Its own counters, which `ctl counters` shows with the server's.
        .counters(demo.counters())
        .version(env!("CARGO_PKG_VERSION"))
        .socket_mode(args.socket_mode)
        .policy(args.policy())
        .idle_timeout(args.idle_timeout)
        .max_connections(args.max_connections)
        .shutdown_grace(args.shutdown_grace)
        // A leftover `postrotate kill -HUP` means "reopen your logs": the bridge does, then
        // reloads too, since this daemon's SIGHUP used to reload. Each time it logs, into the
        // new file, the `ctl` commands to use instead; `ctl doctor` reports such a line as
        // `bridged`, to be replaced with `ctl rotate NAME`.
        .on_sighup(Sighup::ReopenLogsAndReload)
        .history_len(args.history_len)
        .notify_systemd(true);
    // The audit lines go to the system's log unless told otherwise (tests bind their own).
    let syslog = args
        .syslog_socket
        .clone()
        .or_else(|| std::env::var_os("CTL_SYSLOG_SOCKET").map(PathBuf::from));
    builder = match syslog {
        Some(path) if path.as_os_str().is_empty() => builder.audit_syslog(false),
        Some(path) => builder.syslog_path(path),
        None => builder,
    };
    if let Some(gid) = args.socket_group {
        builder = builder.socket_group(gid);
    }
    // One load-and-validate step gives `reload` and `check`. `--disable reload` plays a
    // daemon that has neither.
    if !args.disable.contains(&ReloadRequest::NAME) {
        builder = builder.reloadable(demo.config(), demo.config_source());
    }
    // Registering the log file is all it takes for `ctl rotate` to work. `--disable rotate`
    // plays a daemon that never had rotate support.
    if !args.disable.contains(&RotateRequest::NAME) {
        let rotating = demo.clone();
        builder = builder.log_file(&log).rotate(move |_ctx| {
            let rotating = rotating.clone();
            async move { rotating.rotate().await }
        });
    }
    if !args.disable.contains(&LogLevelRequest::NAME) {
        builder = builder.log_filter(filter_handle);
    }
    // Likewise `drain` and `resume`: the server drains (and resumes) the tracker the worker
    // takes its units from.
    if !args.disable.contains(&DrainRequest::NAME) {
        builder = builder.work_tracker(&work);
    }
    if let Some(socket) = &args.socket {
        builder = builder.socket_path(socket);
    }
    // Before the socket is bound: the first caller finds the start-up jobs in flight.
    demo.start_jobs()?;
    let server = builder.bind()?.spawn();
    print_banner(&args, server.path(), &config_path, &log_path, interval_ms);

    let worker = tokio::spawn(demo.run());
    tokio::select! {
        _ = termination.requested() => {}
        _ = work.drained(), if args.exit_after_drain => tracing::info!("drained: exiting"),
    }
    tracing::info!("terminating");
    server.shutdown().await;
    worker.abort();
    // The global subscriber keeps a handle, so the file's buffer is not written out by a drop:
    // write it out now, off the runtime (the disk may be slow).
    let flushing = log.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await?
        .context("cannot write out the log file's last lines")?;
    Ok(())
}

/// Writes the embedded default configuration to `$TMPDIR/ctl-demo-UID/NAME.toml`, unless a
/// previous run left one there (so edits survive a restart), and returns its path.
fn write_default_config(name: &str) -> anyhow::Result<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let dir = std::env::temp_dir().join(format!("ctl-demo-{uid}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.toml"));
    if !path.exists() {
        let log = dir.join(format!("{name}.log"));
        let Some(log) = log.to_str() else {
            bail!("temporary directory {} is not valid UTF-8", dir.display());
        };
        std::fs::write(&path, DEFAULT_CONFIG.replace("@LOG@", log))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path)
}

fn print_banner(args: &Args, socket: &Path, config: &Path, log: &Path, interval_ms: u64) {
    let ctl = ctl_command();
    // A name reaches this daemon only if the socket is where the convention puts it.
    let target = match &args.socket {
        Some(path) => path.display().to_string(),
        None => args.name.clone(),
    };
    println!(
        "demo-daemon {}: \"{}\" is running (pid {})\n\
         \x20 socket  {}\n\
         \x20 config  {}\n\
         \x20 log     {} (one line every {interval_ms} ms)\n\
         \n\
         Try, from another shell:\n\
         \x20 {ctl} status {target}\n\
         \x20 {ctl} check {target}         # after editing the config: what a reload would change\n\
         \x20 {ctl} reload {target}        # applies it; a broken edit is refused\n\
         \x20 mv {log} {log}.1 && {ctl} rotate {target}\n\
         \x20 {ctl} log-level {target} debug\n\
         \x20 {ctl} hello {target}\n\
         \x20 {ctl} describe {target}      # its operations and own commands\n\
         \x20 {ctl} call {target} set-message text=hi\n\
         \x20 {ctl} call {target} stats\n\
         \x20 {ctl} counters {target}      # its counters and the server's; --prometheus for node_exporter\n\
         \x20 {ctl} drain {target}\n\
         \x20 {ctl} resume {target}        # undoes the drain: lines are written again\n\
         Stop with Ctrl-C.",
        env!("CARGO_PKG_VERSION"),
        args.name,
        std::process::id(),
        socket.display(),
        config.display(),
        log.display(),
        log = log.display(),
    );
}

/// How to call the `ctl` built next to this binary, as short as it can be written.
fn ctl_command() -> String {
    let Some(ctl) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ctl")))
        .filter(|ctl| ctl.exists())
    else {
        return "ctl".to_owned();
    };
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| ctl.strip_prefix(cwd).ok().map(Path::to_owned))
    {
        Some(relative) => format!("./{}", relative.display()),
        None => ctl.display().to_string(),
    }
}
