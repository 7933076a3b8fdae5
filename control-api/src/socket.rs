//! Where a daemon's control socket lives, and how a `ctl` target names one.
//!
//! A daemon named NAME listens at `$CTL_SOCKET_DIR/NAME.sock`; without that variable at
//! `/run/ctl/NAME.sock` when running as root, else at `$XDG_RUNTIME_DIR/ctl/NAME.sock`. Daemon
//! and client resolve it with the same function, so they cannot disagree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket directory for both sides.
pub const SOCKET_DIR_ENV: &str = "CTL_SOCKET_DIR";
/// Socket directory of daemons running as root.
pub const ROOT_SOCKET_DIR: &str = "/run/ctl";
/// File name suffix of control sockets.
pub const SOCKET_SUFFIX: &str = ".sock";
/// Longest daemon name. A socket path must fit in `sun_path` (108 bytes on Linux).
pub const MAX_NAME_LEN: usize = 64;

/// Why no socket path could be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketPathError {
    /// The name cannot be used in a socket file name.
    #[error("invalid daemon name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not root, and neither `CTL_SOCKET_DIR` nor `XDG_RUNTIME_DIR` is set.
    #[error(
        "cannot tell where control sockets live: not running as root and neither \
         CTL_SOCKET_DIR nor XDG_RUNTIME_DIR is set; set CTL_SOCKET_DIR or give a socket path"
    )]
    NoSocketDir,
}

/// The parts of the process environment the convention depends on. Kept as a value so the
/// convention can be tested without touching the real environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketEnv {
    /// Value of `CTL_SOCKET_DIR`.
    pub ctl_socket_dir: Option<OsString>,
    /// Value of `XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<OsString>,
    /// Whether the effective uid is 0.
    pub is_root: bool,
}

impl SocketEnv {
    /// Reads the current process's environment and effective uid.
    pub fn from_process() -> Self {
        SocketEnv {
            ctl_socket_dir: std::env::var_os(SOCKET_DIR_ENV),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            is_root: rustix::process::geteuid().is_root(),
        }
    }

    /// The directory holding control sockets.
    pub fn socket_dir(&self) -> Result<PathBuf, SocketPathError> {
        // An empty variable counts as unset, as shells often export them empty.
        let set = |v: &Option<OsString>| v.as_ref().filter(|v| !v.is_empty()).cloned();
        if let Some(dir) = set(&self.ctl_socket_dir) {
            return Ok(PathBuf::from(dir));
        }
        if self.is_root {
            return Ok(PathBuf::from(ROOT_SOCKET_DIR));
        }
        // The XDG spec says to ignore a relative XDG_RUNTIME_DIR.
        match set(&self.xdg_runtime_dir).map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => Ok(dir.join("ctl")),
            _ => Err(SocketPathError::NoSocketDir),
        }
    }

    /// The socket path of the daemon `name`.
    pub fn socket_path(&self, name: &str) -> Result<PathBuf, SocketPathError> {
        validate_name(name)?;
        Ok(self.socket_dir()?.join(format!("{name}{SOCKET_SUFFIX}")))
    }
}

/// The socket path of the daemon `name` in this process's environment.
pub fn default_socket_path(name: &str) -> Result<PathBuf, SocketPathError> {
    SocketEnv::from_process().socket_path(name)
}

/// Checks that `name` can be a daemon name: 1 to 64 characters from `A-Z a-z 0-9 _ - . @`,
/// not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), SocketPathError> {
    let invalid = |reason| {
        Err(SocketPathError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 64 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("it starts with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        return invalid("use only letters, digits and _ - . @");
    }
    Ok(())
}

/// What a `ctl` invocation points at: a daemon name or a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A daemon name, resolved by the convention.
    Name(String),
    /// An explicit socket path: anything containing `/`.
    Path(PathBuf),
}

impl Target {
    /// Reads a target: anything containing `/` is a path, anything else must be a valid name.
    pub fn parse(s: &str) -> Result<Self, SocketPathError> {
        if s.contains('/') {
            Ok(Target::Path(PathBuf::from(s)))
        } else {
            validate_name(s)?;
            Ok(Target::Name(s.to_owned()))
        }
    }

    /// The socket path this target designates in `env`.
    pub fn socket_path(&self, env: &SocketEnv) -> Result<PathBuf, SocketPathError> {
        match self {
            Target::Name(name) => env.socket_path(name),
            Target::Path(path) => Ok(path.clone()),
        }
    }
}

/// The daemon name a socket path implies (`/run/ctl/web.sock` → `web`), if it follows the
/// convention.
pub fn name_from_path(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.strip_suffix(SOCKET_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(ctl: Option<&str>, xdg: Option<&str>, is_root: bool) -> SocketEnv {
        SocketEnv {
            ctl_socket_dir: ctl.map(OsString::from),
            xdg_runtime_dir: xdg.map(OsString::from),
            is_root,
        }
    }

    #[test]
    fn ctl_socket_dir_wins_for_everyone() {
        for is_root in [true, false] {
            let p = env(Some("/tmp/s"), Some("/run/user/1000"), is_root).socket_path("web");
            assert_eq!(p.unwrap(), Path::new("/tmp/s/web.sock"));
        }
    }

    #[test]
    fn root_uses_run_ctl() {
        let p = env(None, Some("/run/user/0"), true).socket_path("web");
        assert_eq!(p.unwrap(), Path::new("/run/ctl/web.sock"));
    }

    #[test]
    fn users_use_xdg_runtime_dir() {
        let p = env(None, Some("/run/user/1000"), false).socket_path("web");
        assert_eq!(p.unwrap(), Path::new("/run/user/1000/ctl/web.sock"));
    }

    #[test]
    fn empty_or_relative_variables_count_as_unset() {
        let p = env(Some(""), Some("/run/user/1000"), false).socket_path("web");
        assert_eq!(p.unwrap(), Path::new("/run/user/1000/ctl/web.sock"));
        for xdg in [None, Some(""), Some("relative/dir")] {
            assert_eq!(
                env(None, xdg, false).socket_path("web"),
                Err(SocketPathError::NoSocketDir)
            );
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["web", "my-daemon", "unit@2", "a.b_c", &"x".repeat(64)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "sp ace",
            "dir/x",
            "ünï",
            &"x".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn targets_with_a_slash_are_paths() {
        assert_eq!(
            Target::parse("./x.sock").unwrap(),
            Target::Path("./x.sock".into())
        );
        assert_eq!(Target::parse("web").unwrap(), Target::Name("web".into()));
        assert!(Target::parse("bad name").is_err());
        let e = env(Some("/s"), None, false);
        assert_eq!(
            Target::parse("/abs/p.sock")
                .unwrap()
                .socket_path(&e)
                .unwrap(),
            Path::new("/abs/p.sock")
        );
    }

    #[test]
    fn name_is_read_back_from_a_conventional_path() {
        assert_eq!(name_from_path(Path::new("/run/ctl/web.sock")), Some("web"));
        assert_eq!(name_from_path(Path::new("/tmp/other")), None);
    }
}
