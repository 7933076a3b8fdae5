//! What can go wrong with an `ssh://HOST/NAME` target, each mapped to its exit code and
//! `--json` kind: ssh's own failures, a host without `ctl`, an answer that is not one `ctl
//! --json` document, and the remote `ctl`'s own failures, passed on with its code and kind.

use crate::exit::Exit;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A failed operation on another host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// An `ssh://` target or a `--host` that ctl does not take: nothing was run.
    #[error(
        "{given:?} is not a target ctl takes: {why} (the form is ssh://[USER@]HOST[:PORT]/NAME, \
             or --host [USER@]HOST[:PORT] with a daemon NAME)"
    )]
    Target {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// ssh could not reach the host: its name does not resolve, nothing listens on its port,
    /// no route to it, or it closed the connection before saying who it is.
    #[error("cannot reach {host} over ssh: {said}; nothing was done")]
    Unreachable {
        /// The host, as given.
        host: String,
        /// ssh's own words (its last line on stderr).
        said: String,
    },
    /// The host refused to let this user log in (no key it accepts, a user it does not know).
    #[error(
        "ssh to {host} was refused: {said}; nothing was done: check the user and that the \
             host accepts your key (ssh runs with BatchMode=yes: no password, no prompt)"
    )]
    Denied {
        /// The host, as given.
        host: String,
        /// ssh's own words.
        said: String,
    },
    /// ssh does not trust the host's key: unknown (BatchMode asks nobody), or changed.
    #[error(
        "ssh does not trust the host key of {host}: {said}; nothing was done: add the \
             host's key to your known_hosts (ssh-keyscan, checked against the host)"
    )]
    HostKey {
        /// The host, as given.
        host: String,
        /// ssh's own words.
        said: String,
    },
    /// No answer within the deadline: the host did not answer (ssh's ConnectTimeout), or the
    /// whole call took longer than `--timeout`, and ssh was stopped.
    #[error("no answer from {host} over ssh within {}{}; the host may be down, a firewall may \
             drop the connection, or the remote ctl was still waiting: give it more time with \
             --timeout", humantime::format_duration(*.timeout),
             .said.as_deref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Timeout {
        /// The host, as given.
        host: String,
        /// The deadline.
        timeout: Duration,
        /// ssh's words, when it gave up by itself.
        said: Option<String>,
    },
    /// The host has no `ctl` to run: the remote shell could not find or run it.
    #[error(
        "{host} has no ctl to run: the remote shell could not run {command} (exit {code}: \
             {said}); install ctl there, or set CTL_REMOTE_CTL to its path on that host"
    )]
    NoCtl {
        /// The host, as given.
        host: String,
        /// The command tried (`ctl`, or `CTL_REMOTE_CTL`).
        command: String,
        /// The remote shell's exit code (127: not found, 126: not executable).
        code: i32,
        /// Its words.
        said: String,
    },
    /// ssh failed for another reason: it could not be run, an option or configuration it
    /// refused, a connection lost midway.
    #[error("ssh to {host} failed: {said}")]
    Failed {
        /// The host, as given.
        host: String,
        /// ssh's words, or why it could not be run.
        said: String,
    },
    /// What came back is not one `ctl --json` document that fits the call: garbage, too much,
    /// a document of another operation, or an exit code the document does not give.
    #[error(
        "{host} did not answer as ctl does: {what}; check what CTL_REMOTE_CTL or `ctl` \
             runs there"
    )]
    Protocol {
        /// The host, as given.
        host: String,
        /// What was wrong.
        what: String,
    },
    /// The remote `ctl` ran the operation and it failed there: its code, kind and message,
    /// as it gave them. `missing`: it said there was nothing to do (`--missing-ok` given).
    #[error("{message}")]
    Remote {
        /// The remote's exit code.
        exit: Exit,
        /// Its `--json` kind, one this ctl knows (else `unrecognized`).
        kind: &'static str,
        /// Its message.
        message: String,
        /// The daemon's typed error, when the remote gave one that reads as such.
        detail: Value,
        /// The socket the remote named.
        socket: Option<PathBuf>,
        /// The remote found no daemon and `--missing-ok` was given: nothing to do.
        missing: bool,
    },
}

impl SshError {
    /// The exit code this error means, and its `--json` kind.
    pub fn class(&self) -> (Exit, &'static str) {
        match self {
            SshError::Target { .. } => (Exit::Usage, "usage"),
            SshError::Unreachable { .. } => (Exit::NoDaemon, "unreachable"),
            SshError::Denied { .. } => (Exit::Denied, "ssh_denied"),
            SshError::HostKey { .. } => (Exit::Denied, "host_key"),
            SshError::Timeout { .. } => (Exit::Timeout, "timeout"),
            SshError::NoCtl { .. } => (Exit::NoDaemon, "no_ctl"),
            SshError::Failed { .. } => (Exit::NoDaemon, "ssh"),
            SshError::Protocol { .. } => (Exit::Protocol, "protocol"),
            SshError::Remote { exit, kind, .. } => (*exit, kind),
        }
    }

    /// Whether `--missing-ok` makes this exit 0: only when the remote said so.
    pub fn is_missing(&self) -> bool {
        matches!(self, SshError::Remote { missing: true, .. })
    }

    /// The `detail` of its `--json` error.
    pub fn detail(&self) -> Value {
        match self {
            SshError::Remote { detail, .. } => detail.clone(),
            _ => Value::Null,
        }
    }

    /// One error of each kind, for the test that every `--json` kind is documented.
    #[cfg(test)]
    pub(crate) fn samples() -> Vec<SshError> {
        let host = || "web1".to_owned();
        let said = || "x".to_owned();
        vec![
            SshError::Target {
                given: "ssh://".into(),
                why: said(),
            },
            SshError::Unreachable {
                host: host(),
                said: said(),
            },
            SshError::Denied {
                host: host(),
                said: said(),
            },
            SshError::HostKey {
                host: host(),
                said: said(),
            },
            SshError::Timeout {
                host: host(),
                timeout: Duration::from_secs(1),
                said: None,
            },
            SshError::NoCtl {
                host: host(),
                command: "ctl".into(),
                code: 127,
                said: said(),
            },
            SshError::Failed {
                host: host(),
                said: said(),
            },
            SshError::Protocol {
                host: host(),
                what: said(),
            },
            SshError::Remote {
                exit: Exit::Denied,
                kind: "denied",
                message: said(),
                detail: Value::Null,
                socket: None,
                missing: false,
            },
        ]
    }
}

/// Tells ssh's own failures (exit 255) apart. ssh reports them only as text on stderr, so this
/// is the one place where ctl reads a message to choose a code: once, at the edge, into a
/// typed variant.
pub fn from_ssh_stderr(host: &str, stderr: &str, timeout: Duration) -> SshError {
    let said = last_words(stderr);
    let lower = stderr.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let host = host.to_owned();
    if has(&["permission denied", "too many authentication failures"]) {
        SshError::Denied { host, said }
    } else if has(&[
        "host key verification failed",
        "remote host identification has changed",
        "no matching host key type",
    ]) {
        SshError::HostKey { host, said }
    } else if has(&["timed out"]) {
        SshError::Timeout {
            host,
            timeout,
            said: Some(said),
        }
    } else if has(&[
        "could not resolve hostname",
        "name or service not known",
        "temporary failure in name resolution",
        "connection refused",
        "no route to host",
        "network is unreachable",
        "kex_exchange_identification",
        "connection reset by",
        "connection closed by",
    ]) {
        SshError::Unreachable { host, said }
    } else {
        SshError::Failed { host, said }
    }
}

/// The last line of stderr that says something (not ssh's note that it added a host key),
/// at most 300 characters: what ssh or the remote shell said last is what went wrong.
pub fn last_words(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("(it said nothing)");
    match line.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failures_map_to_their_codes() {
        let t = Duration::from_secs(1);
        let cases = [
            (
                "root@h: Permission denied (publickey).",
                Exit::Denied,
                "ssh_denied",
            ),
            ("Host key verification failed.", Exit::Denied, "host_key"),
            (
                "ssh: connect to host h port 22: Connection timed out",
                Exit::Timeout,
                "timeout",
            ),
            (
                "Connection timed out during banner exchange",
                Exit::Timeout,
                "timeout",
            ),
            (
                "ssh: Could not resolve hostname nowhere: Name or service not known",
                Exit::NoDaemon,
                "unreachable",
            ),
            (
                "ssh: connect to host h port 1: Connection refused",
                Exit::NoDaemon,
                "unreachable",
            ),
            (
                "ssh: connect to host h port 22: No route to host",
                Exit::NoDaemon,
                "unreachable",
            ),
            (
                "command-line line 0: Bad configuration option: x",
                Exit::NoDaemon,
                "ssh",
            ),
        ];
        for (stderr, exit, kind) in cases {
            let err = from_ssh_stderr("h", stderr, t);
            assert_eq!(err.class(), (exit, kind), "{stderr}");
            assert!(err.to_string().contains('h'), "{err}");
        }
    }

    #[test]
    fn the_last_line_that_says_something_is_kept_and_bounded() {
        let stderr = "Warning: Permanently added '[h]:22' (ED25519) to the list of known hosts.\n\
                      bash: ctl: command not found\n\n";
        assert_eq!(last_words(stderr), "bash: ctl: command not found");
        assert_eq!(last_words(""), "(it said nothing)");
        let long = "é".repeat(400);
        assert_eq!(last_words(&long).chars().count(), 303);
    }
}
