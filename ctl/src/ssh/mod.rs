//! Targets on another host: `ctl OP ssh://[USER@]HOST[:PORT]/NAME`, or `--host` with a NAME.
//!
//! ctl stays local: it runs the real ssh client as a child, with an argument vector (never a
//! shell line), and the `ctl` on that host does the operation as the user ssh logged in as, so
//! the remote daemon judges that user's credentials as it judges anyone's. The command sent is
//! `ctl --json --timeout T OP ... NAME`, every word single-quoted for the remote shell; what
//! comes back is read as one `--json` document (at most [`MAX_DOCUMENT`] bytes) into the same
//! typed reply a local call gives, and shown as a local reply is: the same text, the same
//! `--json` envelope (with `target` the ssh URL), the same exit code. ssh's own failures
//! (exit 255) are told apart by what it says ([`error::from_ssh_stderr`]).
//!
//! The deadline is ctl's: ssh gets it as `ConnectTimeout`, the remote ctl what is left of it
//! less a margin for the way back, and at the deadline ssh is stopped (exit 75).

mod document;
pub mod error;
mod target;

pub use error::SshError;
pub use target::Remote;

use crate::cli::{Global, Op};
use crate::error::CtlError;
use crate::output::Reply;
use control_api::Hello;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The ssh command to run, split into words (not by a shell): `ssh` when unset.
pub const SSH_ENV: &str = "CTL_SSH";
/// The ctl command to run on the other host, split into words: `ctl` when unset.
pub const REMOTE_CTL_ENV: &str = "CTL_REMOTE_CTL";
/// The most a remote ctl's document may be: a reply is at most 1 MiB on the wire too.
pub const MAX_DOCUMENT: usize = 1 << 20;
/// The most of ssh's stderr kept: only its last line is shown.
const MAX_STDERR: usize = 64 * 1024;

/// What a remote daemon answered, as a local one answers.
pub struct Answer {
    pub hello: Hello,
    pub reply: Reply,
}

/// Runs `op` on `remote`'s daemon through ssh, within `global.timeout` from `started`. The
/// socket the remote named (also on failure, when it said), and the outcome.
pub fn run(
    remote: &Remote,
    op: &Op,
    global: &Global,
    started: Instant,
) -> (Option<PathBuf>, Result<Answer, CtlError>) {
    let deadline = started + global.timeout;
    let argv = command(remote, op, global, deadline);
    let host = &remote.host;
    let failed = |err: SshError| (None, Err(err.into()));
    let transcript = match exchange(&argv, deadline) {
        Ok(t) => t,
        Err(stop) => {
            let host = host.clone();
            return failed(match stop {
                Stop::Timeout => SshError::Timeout {
                    host,
                    timeout: global.timeout,
                    said: None,
                },
                Stop::TooLarge => SshError::Protocol {
                    host,
                    what: format!(
                        "it printed more than the {} MiB a document may be; ssh was stopped",
                        MAX_DOCUMENT >> 20
                    ),
                },
                Stop::Failed(said) => SshError::Failed { host, said },
            });
        }
    };
    let stderr = String::from_utf8_lossy(&transcript.stderr);
    match transcript.code {
        None => failed(SshError::Failed {
            host: host.clone(),
            said: format!(
                "ssh was killed by a signal ({})",
                error::last_words(&stderr)
            ),
        }),
        Some(255) => failed(error::from_ssh_stderr(host, &stderr, global.timeout)),
        Some(code @ (126 | 127)) if transcript.stdout.is_empty() => failed(SshError::NoCtl {
            host: host.clone(),
            command: remote_ctl().join(" "),
            code,
            said: error::last_words(&stderr),
        }),
        Some(code) => document::read(remote, op, code, &transcript.stdout, &stderr),
    }
}

/// Words of an environment variable, split at white space, or `default` when it has none.
fn words(var: &str, default: &str) -> Vec<String> {
    let value = std::env::var(var).unwrap_or_default();
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        vec![default.to_owned()]
    } else {
        words
    }
}

fn remote_ctl() -> Vec<String> {
    words(REMOTE_CTL_ENV, "ctl")
}

/// The argument vector: `ssh -T -o BatchMode=yes -o ConnectTimeout=N [-l USER] [-p PORT] --
/// HOST 'ctl' '--json' '--timeout' 'T' 'OP' ... 'NAME'`.
fn command(remote: &Remote, op: &Op, global: &Global, deadline: Instant) -> Vec<String> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A tenth, at most a second, for ssh's start and the answer's way back.
    let margin = (left / 10).min(Duration::from_secs(1));
    let remote_timeout = left.saturating_sub(margin).max(Duration::from_millis(1));
    let mut line = remote_ctl();
    line.extend(["--json", "--timeout"].map(str::to_owned));
    line.push(format!("{}ms", remote_timeout.as_millis().max(1)));
    if global.missing_ok {
        line.push("--missing-ok".to_owned());
    }
    line.extend(op.remote_args(&remote.name));
    let line: Vec<String> = line.iter().map(|w| target::quote(w)).collect();

    let mut argv = words(SSH_ENV, "ssh");
    argv.extend(["-T", "-o", "BatchMode=yes", "-o"].map(str::to_owned));
    let connect_timeout = left.as_secs_f64().ceil().max(1.0) as u64;
    argv.push(format!("ConnectTimeout={connect_timeout}"));
    if let Some(user) = &remote.user {
        argv.extend(["-l".to_owned(), user.clone()]);
    }
    if let Some(port) = remote.port {
        argv.extend(["-p".to_owned(), port.to_string()]);
    }
    argv.extend(["--".to_owned(), remote.host.clone(), line.join(" ")]);
    argv
}

/// What ssh printed and how it exited.
struct Transcript {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Why the exchange ended early; ssh was stopped in each case.
enum Stop {
    Timeout,
    TooLarge,
    Failed(String),
}

/// Runs `argv` with no input, reads its stdout (at most [`MAX_DOCUMENT`] bytes) and stderr
/// (the first [`MAX_STDERR`]) and waits for it to exit, all before `deadline`.
fn exchange(argv: &[String], deadline: Instant) -> Result<Transcript, Stop> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Stop::Failed(format!(
                "cannot run {:?}: {e} (set {SSH_ENV} to the ssh command to run)",
                argv[0]
            ))
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr_pipe = child.stderr.take().expect("piped");

    // Read on threads of their own, so that neither pipe fills while the other is waited for.
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let read = stdout
            .take(MAX_DOCUMENT as u64 + 1)
            .read_to_end(&mut buf)
            .map(|_| buf);
        let _ = out_tx.send(read);
    });
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (err_tx, err_rx) = mpsc::channel();
    {
        let stderr = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // Read to the end, keeping the first MAX_STDERR bytes: ssh must never block on it.
            while let Ok(n @ 1..) = stderr_pipe.read(&mut chunk) {
                let mut kept = stderr.lock().unwrap_or_else(|e| e.into_inner());
                let room = MAX_STDERR.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            let _ = err_tx.send(());
        });
    }

    let left = deadline.saturating_duration_since(Instant::now());
    let stdout = match out_rx.recv_timeout(left) {
        Ok(Ok(buf)) if buf.len() > MAX_DOCUMENT => {
            stop(&mut child);
            return Err(Stop::TooLarge);
        }
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => {
            stop(&mut child);
            return Err(Stop::Failed(format!("cannot read what ssh printed: {e}")));
        }
        Err(_) => {
            stop(&mut child);
            return Err(Stop::Timeout);
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                stop(&mut child);
                return Err(Stop::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(Stop::Failed(format!("cannot wait for ssh: {e}"))),
        }
    };
    // A process ssh started (a ProxyCommand) may hold stderr open: not for long.
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = err_rx.recv_timeout(left.min(Duration::from_millis(200)));
    let stderr = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Transcript {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// Stops ssh: SIGTERM first, on which it ends what it started (a ProxyCommand), then, if it
/// is still there after 200 ms, SIGKILL; and reaps it.
fn stop(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn argv(args: &[&str]) -> Vec<String> {
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        let crate::cli::Command::Op(op) = &cli.command else {
            panic!("not an operation")
        };
        let remote = Remote::from_target(op.target(), cli.global.host.as_deref())
            .unwrap()
            .unwrap();
        let deadline = Instant::now() + cli.global.timeout;
        command(&remote, op, &cli.global, deadline)
    }

    #[test]
    fn the_command_is_an_argument_vector_with_every_remote_word_quoted() {
        let got = argv(&[
            "ctl",
            "--timeout",
            "10s",
            "call",
            "ssh://root@h:2222/demo",
            "set-message",
            "text=it's $(touch PWNED)",
            "--args",
            "{}",
        ]);
        let n = got.len();
        assert_eq!(got[0], "ssh");
        assert!(got.contains(&"BatchMode=yes".to_owned()), "{got:?}");
        assert!(got.contains(&"ConnectTimeout=10".to_owned()), "{got:?}");
        assert_eq!(got[n - 7..n - 3], ["-l", "root", "-p", "2222"]);
        assert_eq!(got[n - 3..n - 1], ["--", "h"]);
        let line = &got[n - 1];
        assert!(line.starts_with("'ctl' '--json' '--timeout' '"), "{line}");
        assert!(line.contains("ms' 'call' '--args' '{}'"), "{line}");
        assert!(
            line.ends_with("'--' 'demo' 'set-message' 'text=it'\\''s $(touch PWNED)'"),
            "{line}"
        );
        let got = argv(&["ctl", "--host", "h", "--missing-ok", "rotate", "web"]);
        let line = got.last().unwrap();
        assert!(
            line.contains("'--missing-ok' 'rotate' '--' 'web'"),
            "{line}"
        );
        assert!(!got.contains(&"-l".to_owned()) && !got.contains(&"-p".to_owned()));
    }
}
