//! Everything that can go wrong in one `ctl` call, each mapped to its exit code.

use crate::exit::Exit;
use crate::running::{Process, Remains};
use control_api::socket::{Lookup, SocketPathError, Untrusted};
use control_api::text::chain as error_chain;
use control_api::OpError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failed `ctl` call.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The target is neither a valid name nor a path, or no socket directory is known.
    #[error(transparent)]
    Target(#[from] SocketPathError),
    /// Nobody listens at the socket path.
    // No `--missing-ok` hint here: it means something only for an operation on one target, so
    // `Output::error` adds it there, and `ctl list` shows this without it.
    #[error("no daemon at {}{}: {why}; is it running?", .path.display(), nor(.also))]
    NoDaemon {
        /// The socket path.
        path: PathBuf,
        /// What was found there.
        why: &'static str,
        /// The other places looked at, where nothing was found.
        also: Vec<PathBuf>,
    },
    /// No socket answers, but a process that root or the daemon's owner runs holds the lock of
    /// a socket for the daemon's name: it runs, and listens somewhere else (or will again, once
    /// it has bound a removed socket anew). Never hidden by `--missing-ok`.
    #[error("no daemon answers at {}{}, but {name} is running ({}): nothing was done; if its \
        socket was just removed it binds it again within seconds, so retry; else point ctl at \
        its socket path, or run it where ctl looks (see TARGETS in `man ctl`); --missing-ok \
        does not hide a running daemon",
        .looked.first().map(|p| p.display().to_string()).unwrap_or_default(),
        nor(.looked.get(1..).unwrap_or_default()), holders(.processes))]
    Running {
        /// The daemon's name.
        name: String,
        /// Where ctl looked.
        looked: Vec<PathBuf>,
        /// The processes holding its lock.
        processes: Vec<Process>,
    },
    /// The daemon died: it left a socket nobody accepts on, or a lock file nobody holds, which
    /// a daemon that stops removes. Never hidden by `--missing-ok`: that is for a daemon that
    /// was stopped.
    #[error("{name} died: {} is left at {}{}; a daemon that stops removes it, so this one \
        crashed or was killed (its log, or `journalctl -u` its unit, says why); nothing was \
        done; start it again; --missing-ok does not hide a daemon that died",
        .remains.what, .remains.path.display(), since(&.remains.since))]
    Died {
        /// The daemon's name (or the socket path given).
        name: String,
        /// What it left.
        remains: Remains,
    },
    /// A socket found by name is in a directory another user could have put it in.
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
    /// A target given by name was answered by a daemon of another name: the socket's place
    /// was pointed at another daemon, or that daemon was started with another name. Nothing
    /// was asked of it but `hello`.
    #[error(
        "{} is answered by a daemon named \"{}\" (pid {pid}), not {expected}: nothing was \
         done; whoever owns that place may have pointed it at another daemon, or the daemon \
         was started with another name (give its socket path to talk to it anyway)",
        .path.display(), .answered
    )]
    WrongDaemon {
        /// The name given as target.
        expected: String,
        /// The name the daemon answered `hello` with.
        answered: String,
        /// Its pid, from the connection's peer credentials (else as it says).
        pid: u32,
        /// The socket.
        path: PathBuf,
    },
    /// The request would not fit in the frame a daemon reads: nothing was sent.
    #[error(
        "the `{operation}` request is {size} bytes encoded, more than the {limit} bytes ({} KiB) \
         a daemon reads in one request; nothing was sent: pass less (arguments count whole, \
         as JSON)", .limit / 1024
    )]
    RequestTooLarge {
        /// The operation or command.
        operation: String,
        /// The encoded request's size, in bytes.
        size: usize,
        /// The frame limit ([`control_api::wire::MAX_FRAME_LEN`]).
        limit: usize,
    },
    /// The socket's file mode does not let this user connect.
    #[error("permission denied connecting to {}: the socket's file mode does not let uid {uid} in; run as the daemon's user or root", .path.display())]
    SocketDenied {
        /// The socket path.
        path: PathBuf,
        /// Our effective uid.
        uid: u32,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to {}: {source}", .path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The deadline passed.
    #[error("{}", timed_out(*.timeout, .hint, *.pid, .path.as_deref()))]
    Timeout {
        /// The deadline given.
        timeout: Duration,
        /// What the daemon may still be doing.
        hint: String,
        /// The daemon's pid, from the connection's peer credentials, when connected.
        pid: Option<u32>,
        /// The socket it was reached (or not reached) at.
        path: Option<PathBuf>,
    },
    /// The daemon speaks another protocol version.
    #[error("the daemon speaks protocol version {daemon}, this ctl speaks {ours}; use a ctl built for that daemon")]
    Incompatible {
        /// The daemon's version.
        daemon: u32,
        /// Ours.
        ours: u32,
    },
    /// The connection broke or a reply could not be read.
    #[error("{what}; see the daemon's log")]
    Protocol {
        /// What happened.
        what: String,
    },
    /// The daemon answered a request with the reply of another operation.
    #[error(
        "the daemon answered a `{asked}` request with a `{answered}` reply: it does not follow \
             the protocol (a bug in the daemon, or another program listening on its socket)"
    )]
    WrongReply {
        /// The operation asked for.
        asked: String,
        /// The operation whose reply came.
        answered: String,
    },
    /// The daemon answered with an error.
    #[error(transparent)]
    Op(#[from] OpError),
    /// `ctl signal` failed: no process, an untrusted pid file, a signal it would not handle, ...
    #[error(transparent)]
    Signal(#[from] crate::signal::SignalError),
    /// `ctl doctor` could not start: its `--root` cannot be opened.
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
    /// A target on another host failed: ssh's own failure, no ctl there, an answer that is not
    /// one, or the remote ctl's failure with its code and kind.
    // Boxed: its remote failure carries the remote's whole error, and every `Result` here
    // carries a `CtlError`.
    #[error(transparent)]
    Ssh(Box<crate::ssh::SshError>),
    /// stdout could not be written (a closed pipe is not this: it is not an error).
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
}

impl From<crate::ssh::SshError> for CtlError {
    fn from(err: crate::ssh::SshError) -> CtlError {
        CtlError::Ssh(Box::new(err))
    }
}

/// Every `--json` error kind ctl gives, as docs/operators.md lists them: a remote ctl's kind
/// is passed on only if it is one of these.
pub const KINDS: &[&str] = &[
    "usage",
    "no_daemon",
    "died",
    "not_listening",
    "wrong_daemon",
    "too_large",
    "untrusted",
    "denied",
    "timeout",
    "incompatible",
    "protocol",
    "unsupported",
    "failed",
    "busy",
    "shutting_down",
    "bad_arguments",
    "output",
    "unrecognized",
    "not_sent",
    "killed",
    "not_reopened",
    "bad_pid_file",
    "no_process",
    "too_many",
    "unreachable",
    "ssh_denied",
    "host_key",
    "no_ctl",
    "ssh",
];

impl CtlError {
    /// The exit code this error means.
    pub fn exit(&self) -> Exit {
        self.class().0
    }

    /// A short machine-readable kind for `--json`.
    pub fn kind(&self) -> &'static str {
        self.class().1
    }

    /// The exit code and the `--json` kind, side by side.
    pub fn class(&self) -> (Exit, &'static str) {
        match self {
            CtlError::Target(_) => (Exit::Usage, "usage"),
            CtlError::RequestTooLarge { .. } => (Exit::Usage, "too_large"),
            CtlError::NoDaemon { .. } | CtlError::Connect { .. } => (Exit::NoDaemon, "no_daemon"),
            CtlError::Running { .. } => (Exit::NoDaemon, "not_listening"),
            CtlError::Died { .. } => (Exit::NoDaemon, "died"),
            CtlError::SocketDenied { .. } => (Exit::Denied, "denied"),
            CtlError::Untrusted(_) => (Exit::Denied, "untrusted"),
            CtlError::WrongDaemon { .. } => (Exit::Denied, "wrong_daemon"),
            CtlError::Timeout { .. } => (Exit::Timeout, "timeout"),
            CtlError::Incompatible { .. } => (Exit::Protocol, "incompatible"),
            CtlError::Protocol { .. } | CtlError::WrongReply { .. } => (Exit::Protocol, "protocol"),
            CtlError::Output(_) => (Exit::Output, "output"),
            CtlError::Signal(e) => e.class(),
            CtlError::Doctor(e) => e.class(),
            CtlError::Ssh(e) => e.class(),
            CtlError::Op(op) => match op {
                OpError::Unsupported { .. } => (Exit::Unsupported, "unsupported"),
                OpError::Denied { .. } => (Exit::Denied, "denied"),
                // Arguments that do not fit the command: the caller's usage.
                OpError::BadArguments { .. } => (Exit::Usage, "bad_arguments"),
                // A daemon on its way out is, for a caller, no daemon.
                OpError::ShuttingDown => (Exit::NoDaemon, "shutting_down"),
                OpError::Failed { .. } => (Exit::Failed, "failed"),
                OpError::Busy { .. } => (Exit::Failed, "busy"),
                OpError::Unrecognized => (Exit::Failed, "unrecognized"),
            },
        }
    }

    /// Whether `--missing-ok` turns this error into success: the daemon was stopped (nothing
    /// left where ctl looked: [`NoDaemon`](Self::NoDaemon) once [`crate::running::judge`]
    /// found no remains), or it says it is stopping. Not one that died. Not any other failure to
    /// connect (a path that is not a socket is a misconfiguration worth failing on).
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            CtlError::NoDaemon { .. } | CtlError::Op(OpError::ShuttingDown)
        ) || matches!(self, CtlError::Signal(e) if e.is_missing())
            || matches!(self, CtlError::Ssh(e) if e.is_missing())
    }

    /// What a lookup that found no socket to connect to means: a socket the trust rule
    /// refused, which says more than "nothing there"; else no daemon where it would listen.
    pub fn nothing_found(lookup: &Lookup) -> CtlError {
        match lookup.untrusted.first() {
            Some(untrusted) => CtlError::Untrusted(untrusted.clone()),
            None => CtlError::NoDaemon {
                path: lookup.looked.first().cloned().unwrap_or_default(),
                why: "no socket there",
                also: lookup.looked.iter().skip(1).cloned().collect(),
            },
        }
    }

    /// Maps a failure to connect.
    pub fn from_connect(path: PathBuf, err: io::Error) -> CtlError {
        match err.kind() {
            io::ErrorKind::NotFound => CtlError::NoDaemon {
                path,
                why: "no socket there",
                also: Vec::new(),
            },
            // Linux refuses a connection to a path that is not a socket the same way; that is a
            // misconfigured target, not a stopped daemon.
            io::ErrorKind::ConnectionRefused if !is_socket(&path) => CtlError::Connect {
                path,
                source: io::Error::other("it is not a socket"),
            },
            io::ErrorKind::ConnectionRefused => CtlError::NoDaemon {
                path,
                why: "the socket is stale (nobody accepts on it)",
                also: Vec::new(),
            },
            io::ErrorKind::PermissionDenied => CtlError::SocketDenied {
                path,
                uid: rustix::process::geteuid().as_raw(),
            },
            _ => CtlError::Connect { path, source: err },
        }
    }

    /// Maps a transport-level failure of one call.
    pub fn from_rpc(err: tarpc::client::RpcError, timeout: Duration, op: &str) -> CtlError {
        use tarpc::client::RpcError;
        match err {
            RpcError::DeadlineExceeded => CtlError::Timeout {
                timeout,
                pid: None,
                path: None,
                hint: match op {
                    "reload" => {
                        "; the reload goes on in the daemon, which does not apply \
                        a configuration after its caller's deadline: `ctl status` shows the outcome"
                    }
                    "rotate" => {
                        "; the daemon keeps reopening its logs: `ctl status` \
                        shows them"
                    }
                    "drain" => {
                        "; the daemon keeps draining: `ctl status` shows what is \
                        still in flight"
                    }
                    _ => "",
                }
                .to_owned(),
            },
            RpcError::Shutdown => CtlError::Protocol {
                what: "the daemon closed the connection without answering (it may be stopping, \
                       have too many connections open, or have been unable to read the request)"
                    .into(),
            },
            RpcError::Server(e) if e.kind == io::ErrorKind::WouldBlock => {
                CtlError::Op(OpError::Busy {
                    reason: "too many requests on this connection".into(),
                })
            }
            RpcError::Server(e) => CtlError::Protocol {
                what: format!("the daemon could not process the request: {}", e.detail),
            },
            // What the daemon sent is not a reply of this protocol: undecodable JSON, an unknown
            // variant, or a reply missing fields every daemon sends.
            RpcError::Channel(tarpc::ChannelError::Read(e)) => CtlError::Protocol {
                what: format!("the daemon's reply could not be read: {}", error_chain(&*e)),
            },
            RpcError::Channel(e) => CtlError::Protocol {
                what: format!("the connection to the daemon failed: {}", error_chain(&e)),
            },
            RpcError::Send(e) => CtlError::Protocol {
                what: format!("cannot send the request: {}", error_chain(&*e)),
            },
        }
    }

    /// Names the daemon a timeout was waiting for: an operator facing exit 75 needs to know
    /// which process to look at, not only that "the daemon" did not answer.
    pub fn waiting_for(self, pid: Option<u32>, at: &Path) -> CtlError {
        match self {
            CtlError::Timeout { timeout, hint, .. } => CtlError::Timeout {
                timeout,
                hint,
                pid,
                path: Some(at.to_owned()),
            },
            other => other,
        }
    }
}

/// The text of a timeout: who did not answer, what it may still be doing, and what to do next
/// (a SIGSTOPped or overloaded daemon looks the same from here; `ps` tells them apart).
fn timed_out(timeout: Duration, hint: &str, pid: Option<u32>, path: Option<&Path>) -> String {
    let who = match (pid, path) {
        (Some(pid), Some(path)) => format!("pid {pid} at {}", path.display()),
        (None, Some(path)) => format!("the daemon at {}", path.display()),
        (Some(pid), None) => format!("pid {pid}"),
        (None, None) => "the daemon".to_owned(),
    };
    let mut checks = Vec::new();
    if let Some(pid) = pid {
        checks.push(format!("`ps -o stat= -p {pid}` (T: stopped)"));
    }
    if let Some(path) = path {
        checks.push(format!("`ctl status {}`", path.display()));
    }
    let check = if checks.is_empty() {
        String::new()
    } else {
        format!("check {}, or ", checks.join(", "))
    };
    format!(
        "no answer from {who} within {}{hint}; is it stopped or overloaded? {check}give it more \
         time with --timeout",
        humantime::format_duration(timeout)
    )
}

/// " (nor at A, B)" for the other places looked at, or nothing.
pub(crate) fn nor(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    let list: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(" (nor at {})", list.join(", "))
}

/// "pid 12 holds the lock of /srv/web.sock; pid 13 holds ...".
fn holders(processes: &[Process]) -> String {
    let each: Vec<_> = processes
        .iter()
        .map(|p| format!("pid {} holds the lock of {}", p.pid, p.socket.display()))
        .collect();
    each.join("; ")
}

/// ", last changed 3h 2m ago" when the time is known.
fn since(when: &Option<std::time::SystemTime>) -> String {
    match when.and_then(|t| t.elapsed().ok()) {
        Some(ago) => format!(
            " (made {} ago)",
            humantime::format_duration(std::time::Duration::from_secs(ago.as_secs()))
        ),
        None => String::new(),
    }
}

fn is_socket(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn op_errors_map_to_their_codes() {
        let cases = [
            (OpError::unsupported("rotate", []), Exit::Unsupported),
            (OpError::failed("bad"), Exit::Failed),
            (
                OpError::Denied {
                    operation: "reload".into(),
                    uid: 1,
                    needed: Some(control_api::Access::Operate),
                },
                Exit::Denied,
            ),
            (
                OpError::BadArguments {
                    command: "set-message".into(),
                    field: "text".into(),
                    expected: "a string".into(),
                    message: "missing".into(),
                },
                Exit::Usage,
            ),
            (OpError::Busy { reason: "x".into() }, Exit::Failed),
            (OpError::ShuttingDown, Exit::NoDaemon),
            (OpError::Unrecognized, Exit::Failed),
        ];
        for (err, exit) in cases {
            assert_eq!(CtlError::Op(err.clone()).exit(), exit, "{err:?}");
        }
    }

    /// The error a real `connect` gets at `path`, mapped.
    fn connect_to(path: &std::path::Path) -> CtlError {
        let err = std::os::unix::net::UnixStream::connect(path).expect_err("nobody listens");
        CtlError::from_connect(path.to_owned(), err)
    }

    #[test]
    fn connect_errors_map_to_their_codes() {
        let dir = tempfile::tempdir().unwrap();

        // Nothing there: a stopped daemon.
        let err = connect_to(&dir.path().join("none.sock"));
        assert!(matches!(err, CtlError::NoDaemon { why, .. } if why == "no socket there"));
        assert!(err.is_missing());

        // A socket nobody accepts on: what a crash leaves, also a stopped daemon.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = connect_to(&stale);
        assert!(
            matches!(err, CtlError::NoDaemon { why, .. } if why.contains("stale")),
            "{err:?}"
        );
        assert!(err.is_missing());

        // A regular file: Linux refuses it the same way, but it is a wrong target.
        let file = dir.path().join("file.sock");
        std::fs::write(&file, "").unwrap();
        let err = connect_to(&file);
        assert!(matches!(err, CtlError::Connect { .. }), "{err:?}");
        assert_eq!(err.exit(), Exit::NoDaemon);
        assert!(
            !err.is_missing(),
            "--missing-ok must not hide a path that is not a socket"
        );

        // Root passes file modes, so this one is built by hand.
        let denied = CtlError::from_connect(file, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.exit(), Exit::Denied);
    }

    #[test]
    fn transport_errors_map_to_their_codes() {
        use tarpc::client::RpcError;
        let t = Duration::from_secs(1);
        assert_eq!(
            CtlError::from_rpc(RpcError::DeadlineExceeded, t, "reload").exit(),
            Exit::Timeout
        );
        assert_eq!(
            CtlError::from_rpc(RpcError::Shutdown, t, "status").exit(),
            Exit::Protocol
        );
        let busy = tarpc::ServerError::new(io::ErrorKind::WouldBlock, "full".into());
        assert_eq!(
            CtlError::from_rpc(RpcError::Server(busy), t, "status").exit(),
            Exit::Failed
        );
        assert_eq!(
            CtlError::Incompatible { daemon: 2, ours: 1 }.exit(),
            Exit::Protocol
        );
        let no_dir = SocketPathError::NoSocketDir {
            runtime_dir: "/run/web".into(),
            uid: 1000,
        };
        assert_eq!(CtlError::Target(no_dir).exit(), Exit::Usage);
    }

    /// Failures that are no stopped daemon, each with its code and kind, never hidden by
    /// `--missing-ok`, and parts of what they say.
    #[test]
    fn failures_map_to_their_codes_and_are_never_missing() {
        let cases = [
            // A reply to another operation.
            (
                CtlError::WrongReply {
                    asked: "status".into(),
                    answered: "reload".into(),
                },
                Exit::Protocol,
                "protocol",
                &["`status`", "`reload`"][..],
            ),
            (
                CtlError::Died {
                    name: "web".into(),
                    remains: Remains {
                        path: "/run/ctl/web.sock".into(),
                        what: "a socket that nobody accepts on",
                        since: Some(std::time::SystemTime::now() - Duration::from_secs(7200)),
                    },
                },
                Exit::NoDaemon,
                "died",
                &[
                    "web died: ",
                    "/run/ctl/web.sock",
                    "made 2h ago",
                    "--missing-ok",
                ],
            ),
            // A running daemon that does not answer.
            (
                CtlError::Running {
                    name: "web".into(),
                    looked: vec!["/run/ctl/web.sock".into(), "/run/web/ctl.sock".into()],
                    processes: vec![Process {
                        pid: 4242,
                        socket: "/srv/web.sock".into(),
                    }],
                },
                Exit::NoDaemon,
                "not_listening",
                &[
                    "pid 4242",
                    "/srv/web.sock",
                    "/run/web/ctl.sock",
                    "--missing-ok",
                ],
            ),
            (
                CtlError::Untrusted(Untrusted {
                    path: "/run/web/ctl.sock".into(),
                    why: control_api::socket::Distrust::DirWritable { mode: 0o777 },
                }),
                Exit::Denied,
                "untrusted",
                &[],
            ),
            // Another daemon answering for a name: named, raw here (human output escapes the
            // whole line, [`crate::output::print_err`]).
            (
                CtlError::WrongDaemon {
                    expected: "alpha".into(),
                    answered: "beta\n\u{202e}x".into(),
                    pid: 4242,
                    path: "/run/alpha/ctl.sock".into(),
                },
                Exit::Denied,
                "wrong_daemon",
                &["\"beta\n\u{202e}x\"", "pid 4242", "not alpha"],
            ),
        ];
        for (err, exit, kind, parts) in cases {
            assert_eq!(err.class(), (exit, kind), "{err:?}");
            assert!(!err.is_missing(), "--missing-ok would hide {err:?}");
            let text = err.to_string();
            for part in parts {
                assert!(text.contains(part), "{part:?} not in {text}");
            }
        }
    }

    #[test]
    fn an_unwritable_output_exits_74() {
        let err = CtlError::Output(io::Error::from_raw_os_error(28)); // ENOSPC
        assert_eq!(err.exit(), Exit::Output);
        assert_eq!(err.exit().code(), 74);
        assert!(
            err.to_string().starts_with("cannot write the output: "),
            "{err}"
        );
    }

    /// Which variant `err` is: exhaustive, so that a new variant must be given a sample below.
    fn variant(err: &CtlError) -> usize {
        match err {
            CtlError::Target(_) => 0,
            CtlError::NoDaemon { .. } => 1,
            CtlError::Running { .. } => 2,
            CtlError::Died { .. } => 3,
            CtlError::Untrusted(_) => 4,
            CtlError::WrongDaemon { .. } => 5,
            CtlError::RequestTooLarge { .. } => 6,
            CtlError::SocketDenied { .. } => 7,
            CtlError::Connect { .. } => 8,
            CtlError::Timeout { .. } => 9,
            CtlError::Incompatible { .. } => 10,
            CtlError::Protocol { .. } => 11,
            CtlError::WrongReply { .. } => 12,
            CtlError::Op(_) => 13,
            CtlError::Output(_) => 14,
            CtlError::Signal(_) => 15,
            CtlError::Doctor(_) => 16,
            CtlError::Ssh(_) => 17,
        }
    }

    /// docs/operators.md lists the `--json` error kinds; ctl produces exactly those.
    #[test]
    fn every_error_kind_is_documented_and_every_documented_kind_is_produced() {
        let path = std::path::PathBuf::from("/run/x.sock");
        let op = |e: OpError| CtlError::Op(e);
        let samples = [
            CtlError::Target(SocketPathError::NoSocketDir {
                runtime_dir: "/run/web".into(),
                uid: 1,
            }),
            CtlError::NoDaemon {
                path: path.clone(),
                why: "no socket there",
                also: Vec::new(),
            },
            CtlError::Running {
                name: "web".into(),
                looked: Vec::new(),
                processes: Vec::new(),
            },
            CtlError::Died {
                name: "web".into(),
                remains: Remains {
                    path: path.clone(),
                    what: "a socket",
                    since: None,
                },
            },
            CtlError::Untrusted(Untrusted {
                path: path.clone(),
                why: control_api::socket::Distrust::DirWritable { mode: 0o777 },
            }),
            CtlError::WrongDaemon {
                expected: "a".into(),
                answered: "b".into(),
                pid: 1,
                path: path.clone(),
            },
            CtlError::RequestTooLarge {
                operation: "call".into(),
                size: 2,
                limit: 1,
            },
            CtlError::SocketDenied {
                path: path.clone(),
                uid: 1,
            },
            CtlError::Connect {
                path,
                source: io::Error::other("x"),
            },
            CtlError::Timeout {
                timeout: Duration::from_secs(1),
                hint: String::new(),
                pid: None,
                path: None,
            },
            CtlError::Incompatible { daemon: 2, ours: 1 },
            CtlError::Protocol { what: "x".into() },
            CtlError::WrongReply {
                asked: "a".into(),
                answered: "b".into(),
            },
            op(OpError::unsupported("rotate", [])),
            op(OpError::failed("x")),
            op(OpError::Denied {
                operation: "reload".into(),
                uid: 1,
                needed: None,
            }),
            op(OpError::Busy { reason: "x".into() }),
            op(OpError::BadArguments {
                command: "c".into(),
                field: "f".into(),
                expected: "e".into(),
                message: "m".into(),
            }),
            op(OpError::ShuttingDown),
            op(OpError::Unrecognized),
            CtlError::Output(io::Error::other("x")),
        ]
        .into_iter()
        .chain(
            crate::signal::SignalError::samples()
                .into_iter()
                .map(CtlError::Signal),
        )
        .chain(
            crate::doctor::DoctorError::samples()
                .into_iter()
                .map(CtlError::Doctor),
        )
        .chain(
            crate::ssh::SshError::samples()
                .into_iter()
                .map(CtlError::from),
        )
        .collect::<Vec<_>>();
        let variants: BTreeSet<usize> = samples.iter().map(variant).collect();
        assert_eq!(variants, (0..=17).collect(), "a variant lacks a sample");
        let produced: Vec<&str> = samples
            .iter()
            .map(CtlError::kind)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        let guide = include_str!("../../docs/operators.md");
        let start = guide.find("where K is one of").expect("the list of kinds");
        let end = start + guide[start..].find("`detail` is").expect("its end");
        let mut documented: Vec<&str> = guide[start..end]
            .split('`')
            .skip(1)
            .step_by(2)
            // Kinds are one word; `ctl signal` there is the operation they come from.
            .filter(|word| word.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        documented.sort();
        assert_eq!(
            produced, documented,
            "produced (left) and documented (right) differ"
        );
        let mut known = KINDS.to_vec();
        known.sort();
        assert_eq!(
            known, documented,
            "KINDS (left) and the documented kinds differ"
        );
        // The man page lists them too.
        for kind in &produced {
            assert!(
                crate::man::JSON.contains(kind),
                "{kind} is not in the man page"
            );
        }
        // Every message reads as one sentence, and points where an installed system has docs.
        for err in &samples {
            let text = err.to_string();
            assert!(!text.contains("  "), "a run of spaces in {text:?}");
            assert!(
                !text.contains("docs/"),
                "a path of the source tree in {text:?}"
            );
        }
    }
}
