//! Exit codes: the contract with scripts, logrotate and systemd. Chosen from the error's type,
//! never from its message.

use std::process::ExitCode;

/// Why `ctl` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The operation succeeded.
    Ok = 0,
    /// The daemon ran the operation and it failed; it kept its old state.
    Failed = 1,
    /// The command line was wrong.
    Usage = 2,
    /// The daemon does not support the operation.
    Unsupported = 3,
    /// No daemon there: it was stopped (socket missing), or it died (a stale socket or a lock
    /// file nobody holds), or it runs but not where ctl looked.
    NoDaemon = 69,
    /// The output could not be written (EX_IOERR); the operation itself may have succeeded.
    Output = 74,
    /// The deadline passed before the daemon answered.
    Timeout = 75,
    /// Incompatible protocol version, or a reply that could not be read.
    Protocol = 76,
    /// Permission denied, by the socket's file mode or the daemon's policy, or a socket found
    /// by name that ctl does not trust or that another daemon answers.
    Denied = 77,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit for a code ctl gives (another host's ctl, say); `None` for any other.
    pub fn from_code(code: u8) -> Option<Exit> {
        [
            Exit::Ok,
            Exit::Failed,
            Exit::Usage,
            Exit::Unsupported,
            Exit::NoDaemon,
            Exit::Output,
            Exit::Timeout,
            Exit::Protocol,
            Exit::Denied,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// The table shown by `ctl --help` and in the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  the operation succeeded
   1  the daemon ran the operation and it failed (the daemon says why; old state kept)
   2  usage error
   3  the daemon does not support this operation
  69  no daemon there: stopped (no socket), or died (a stale socket or lock file
      left), or running but not where ctl looks; for ssh://, no route or no ctl there
  74  the output could not be written (the operation itself may have succeeded)
  75  the deadline passed before the daemon answered
  76  protocol error: incompatible version or a reply that could not be read
  77  permission denied: by the socket's file mode, by the daemon's peer policy, or by
      ctl, for a socket in /run that another user could have put there or that is a
      symbolic link, or for a daemon found by name that answers as another name; for
      ssh://, ssh refused the login or the host key";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_design() {
        assert_eq!(Exit::from_code(4), None);
        assert_eq!(Exit::from_code(255), None);
        let all = [
            (Exit::Ok, 0),
            (Exit::Failed, 1),
            (Exit::Usage, 2),
            (Exit::Unsupported, 3),
            (Exit::NoDaemon, 69),
            (Exit::Output, 74),
            (Exit::Timeout, 75),
            (Exit::Protocol, 76),
            (Exit::Denied, 77),
        ];
        for (exit, code) in all {
            assert_eq!(exit.code(), code, "{exit:?}");
            assert_eq!(Exit::from_code(code), Some(exit));
            assert!(
                EXIT_CODES_HELP.contains(&format!("{code:>4}  ")),
                "{code} missing from the help table"
            );
        }
    }
}
