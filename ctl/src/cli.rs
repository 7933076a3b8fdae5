//! The command line, as clap definitions. `ctl --help` shows the exit codes.

use crate::exit::EXIT_CODES_HELP;
pub use crate::ops::Op;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::time::Duration;

/// Tell a daemon to reload, reopen its logs, drain or report status, and learn whether it
/// worked.
///
/// TARGET is a daemon name or a socket path (anything containing '/'). A name is looked up as
/// $CTL_SOCKET_DIR/NAME.sock when that is set; else at /run/ctl/NAME.sock (daemons running as
/// root), then /run/NAME/ctl.sock (a daemon running as its own user, with systemd's
/// RuntimeDirectory=NAME), then, when not root, $XDG_RUNTIME_DIR/ctl/NAME.sock. A socket in
/// /run is used only if nobody but root and its owner could have put it there, and never
/// through a symbolic link; a daemon found by name must answer as that name.
///
/// TARGET `ssh://[USER@]HOST[:PORT]/NAME` (or --host HOST with a NAME) runs the operation on
/// another host: ctl runs ssh (BatchMode, your ssh configuration applies) and the ctl there,
/// as the user ssh logs in as, and shows its answer as a local one, with the same exit codes.
#[derive(Debug, Parser)]
#[command(name = "ctl", version, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options that apply to every operation.
#[derive(Debug, Args)]
pub struct Global {
    /// Give up after this long (e.g. 500ms, 10s, 2m); the deadline is sent to the daemon
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Whether `--timeout` was given (`ctl list` has a shorter default of its own).
    #[arg(skip)]
    pub timeout_given: bool,

    /// Print one JSON document instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Exit 0 when the daemon was stopped (it left no socket or lock file); one that died (a
    /// stale socket or lock file left), runs elsewhere, or fails still fails
    #[arg(long, global = true)]
    pub missing_ok: bool,

    /// Run the operation on this host over ssh, as the user ssh logs in as: TARGET is then
    /// a daemon name there (the same as `ssh://[USER@]HOST[:PORT]/NAME`)
    #[arg(long, global = true, value_name = "[USER@]HOST[:PORT]")]
    pub host: Option<String>,
}

/// What to ask the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The operations on one daemon.
    #[command(flatten)]
    Op(Op),
    /// List the daemons with a socket where names are looked up, and check their health
    ///
    /// Each is asked for its status in parallel, within 2 s unless --timeout says otherwise.
    /// Exits 0 when every one is serving or draining, else with the code `ctl status` would
    /// give for the first one that is not (69 died, 75 hung, 77 denied or untrusted, ...).
    ///
    /// States: serving; draining (paused by `ctl drain`, healthy); stopping (shutting down);
    /// died (a socket nobody accepts on); hung (no answer within the bound); denied (the
    /// socket's mode or the daemon's policy refused you); untrusted (a socket another user
    /// could have placed); misnamed (it answers as another daemon); no-status (it has no
    /// status operation); incompatible (another protocol version); broken (a reply that could
    /// not be read); error (anything else, such as ctl's own descriptor limit).
    List,
    /// Watch daemons live: state, generation, in flight, calls/s, errors/s, last operation
    #[command(long_about = crate::top::LONG_ABOUT)]
    Top(crate::top::TopArgs),
    /// Send a signal to a daemon without a control socket, only where it is handled, and
    /// prove what it did (--verify-reopen)
    #[command(long_about = crate::signal::LONG_ABOUT)]
    Signal(crate::signal::SignalArgs),
    /// Find the lines in logrotate, cron and systemd units that would kill a daemon (sends
    /// nothing, runs nothing)
    #[command(long_about = crate::doctor::LONG_ABOUT)]
    Doctor(crate::doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, ...)
    ///
    /// Besides operations and options, it completes daemon names (from where `ctl list`
    /// looks), socket paths for a word with '/', and for `ctl call TARGET` the daemon's
    /// commands (asked within 1s). Bash: `ctl completions bash >
    /// /etc/bash_completion.d/ctl`, or `source <(ctl completions bash)`.
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print ctl's man page (roff)
    Man,
    /// Completion candidates for the scripts `ctl completions` prints, one per line; exit 1
    /// where ctl has none to add (not for people)
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
}

/// Arguments of `__complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// Which of WORDS the cursor is in
    pub index: usize,
    /// The whole command line, `ctl` first, as the shell split it
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Arguments of `log-level`.
#[derive(Debug, Args)]
pub struct LogLevelArgs {
    #[command(flatten)]
    pub daemon: TargetArg,
    /// The new filter, in tracing's EnvFilter syntax; omit it to show the current one
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
}

/// Arguments of `counters`.
#[derive(Debug, Args)]
pub struct CountersArgs {
    #[command(flatten)]
    pub daemon: TargetArg,
    /// Only the counters whose name starts with this (e.g. ctl.calls.)
    #[arg(value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Print the Prometheus text exposition format
    #[arg(long, conflicts_with = "json")]
    pub prometheus: bool,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub daemon: TargetArg,
    /// Only the newest N entries
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// Arguments of `call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub daemon: TargetArg,
    /// The command's name, as `ctl describe` lists it
    #[arg(value_name = "COMMAND")]
    pub command: String,
    /// The command's arguments, each KEY=VALUE
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// The arguments as one JSON object
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
}

/// The daemon to talk to.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// Daemon name, or socket path (anything containing '/')
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// The ids of the global options.
const ALL_GLOBALS: &[&str] = &["timeout", "json", "quiet", "missing_ok", "host"];

/// The global options each operation that ignores them does not offer: `man` and
/// `completions` talk to no daemon and print what they print, and `list` has nothing to miss.
const UNUSED_GLOBALS: &[(&str, &[&str])] = &[
    ("man", ALL_GLOBALS),
    ("completions", ALL_GLOBALS),
    ("list", &["missing_ok", "host"]),
    ("signal", &["host"]),
    ("doctor", &["timeout", "missing_ok", "host"]),
    ("top", &["quiet", "missing_ok", "host"]),
];

/// The command line as parsed, shown in help and rendered in completions and the man page:
/// the derived definitions, each operation's long help ending with the exit codes, and the
/// global options hidden where they do nothing. They are still accepted there (a global option
/// may come before the operation, where clap cannot yet know which one follows), only not
/// offered.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().into()).collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| sub.after_long_help(EXIT_CODES_HELP));
    }
    for (name, unused) in UNUSED_GLOBALS {
        // A hidden copy in the subcommand: clap propagates a global option only to the
        // subcommands that do not define it themselves. (Hiding the propagated one after
        // `build()` loses the subcommand's --help.)
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| unused.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(name, |sub| sub.args(hidden));
    }
    cmd
}

/// Longest accepted `--timeout`: long enough for any drain, short enough that adding it to the
/// clock cannot overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if d.is_zero() {
        return Err("the timeout must be longer than zero".into());
    }
    if d > MAX_TIMEOUT {
        return Err("the timeout must be at most 24h".into());
    }
    Ok(d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The operation the command line `args` asks for.
    pub(crate) fn op(args: &[&str]) -> Op {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Op(op) => op,
            _ => panic!("not an operation"),
        }
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_operation() {
        let a = Cli::try_parse_from(["ctl", "--timeout", "2s", "--json", "reload", "web"]).unwrap();
        let b = Cli::try_parse_from(["ctl", "reload", "web", "--timeout=2s", "--json"]).unwrap();
        for cli in [a, b] {
            assert_eq!(cli.global.timeout, Duration::from_secs(2));
            assert!(cli.global.json);
            assert!(
                matches!(cli.command, Command::Op(Op::Reload(TargetArg { ref target })) if target == "web")
            );
        }
    }

    #[test]
    fn default_timeout_is_30s_and_zero_is_refused() {
        let cli = Cli::try_parse_from(["ctl", "status", "web"]).unwrap();
        assert_eq!(cli.global.timeout, Duration::from_secs(30));
        let timeout = |t| Cli::try_parse_from(["ctl", "--timeout", t, "status", "web"]);
        for bad in ["0s", "soon", "300000000000y"] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
        assert!(timeout("24h").is_ok());
    }

    #[test]
    fn log_level_takes_an_optional_filter() {
        assert!(
            matches!(op(&["ctl", "log-level", "web", "debug,a=trace"]), Op::LogLevel(LogLevelArgs { ref filter, .. }) if filter.as_deref() == Some("debug,a=trace"))
        );
        assert!(matches!(
            op(&["ctl", "log-level", "web"]),
            Op::LogLevel(LogLevelArgs { filter: None, .. })
        ));
    }

    #[test]
    fn counters_takes_an_optional_prefix_and_prometheus() {
        let Op::Counters(c) = op(&["ctl", "counters", "web", "ctl.calls.", "--prometheus"]) else {
            panic!("not counters")
        };
        assert_eq!(c.prefix.as_deref(), Some("ctl.calls."));
        assert!(c.prometheus);
        assert!(Cli::try_parse_from(["ctl", "counters", "web", "--prometheus", "--json"]).is_err());
    }

    #[test]
    fn resume_takes_a_target() {
        assert!(
            matches!(op(&["ctl", "resume", "web", "--json"]), Op::Resume(TargetArg { ref target }) if target == "web")
        );
        assert!(Cli::try_parse_from(["ctl", "resume"]).is_err());
    }

    #[test]
    fn call_takes_a_command_pairs_and_json() {
        let Op::Call(call) = op(&[
            "ctl",
            "call",
            "web",
            "set-message",
            "text=hi",
            "n=2",
            "--args",
            "{}",
        ]) else {
            panic!("not call")
        };
        assert_eq!(call.command, "set-message");
        assert_eq!(call.pairs, ["text=hi", "n=2"]);
        assert_eq!(call.args.as_deref(), Some("{}"));
        assert!(Cli::try_parse_from(["ctl", "call", "web"]).is_err());
    }

    #[test]
    fn signal_takes_a_signal_a_pid_file_or_a_name_and_logs_to_verify() {
        let cli = Cli::try_parse_from([
            "ctl",
            "signal",
            "HUP",
            "--pidfile",
            "/run/nginx.pid",
            "--verify-reopen",
            "/var/log/a.log",
            "/var/log/b.log",
        ])
        .unwrap();
        let Command::Signal(s) = cli.command else {
            panic!("not signal")
        };
        assert_eq!(s.signal.to_string(), "SIGHUP");
        assert_eq!(s.target(), "/run/nginx.pid");
        assert_eq!(s.verify_reopen.len(), 2);
        let cli = Cli::try_parse_from(["ctl", "signal", "usr1", "--name", "rsyslogd"]).unwrap();
        assert!(matches!(cli.command, Command::Signal(ref s) if s.target() == "rsyslogd"));
        // Both: the pid file's process, which must have the name.
        let both = ["ctl", "signal", "HUP", "--pidfile", "p", "--name", "n"];
        let cli = Cli::try_parse_from(both).unwrap();
        assert!(matches!(cli.command, Command::Signal(ref s) if s.target() == "p"));
        for bad in [
            &["ctl", "signal", "HUP"][..],
            &["ctl", "signal", "NOPE", "--name", "n"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    /// What `ctl NAME --help` prints: through parsing, as the binary does, so that the global
    /// options are propagated as they are there.
    fn sub_help(name: &str) -> String {
        let err = command()
            .try_get_matches_from(["ctl", name, "--help"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        err.render().to_string()
    }

    #[test]
    fn each_operation_help_lists_the_exit_codes() {
        for sub in Cli::command().get_subcommands() {
            let help = sub_help(sub.get_name());
            assert!(help.contains("75  the deadline passed"), "{help}");
        }
    }

    #[test]
    fn options_that_do_nothing_are_not_offered() {
        for name in ["man", "completions"] {
            let help = sub_help(name);
            assert!(!help.contains("--timeout"), "{name}: {help}");
            assert!(!help.contains("--json"), "{name}: {help}");
        }
        assert!(!sub_help("list").contains("--missing-ok"));
        let status = sub_help("status");
        assert!(status.contains("--timeout") && status.contains("--missing-ok"));
        // Hidden, not refused: a global option before the operation still parses.
        let m = command()
            .try_get_matches_from(["ctl", "--timeout", "2s", "man"])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!(cli.global.timeout, Duration::from_secs(2));
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("69  no daemon there"), "{help}");
        assert!(
            help.contains("74  the output could not be written"),
            "{help}"
        );
    }
}
