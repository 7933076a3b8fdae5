//! Binding the control socket: refuse a live one, replace a stale one, never be more open than
//! configured, and remove the file on the way out.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the control socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process accepts connections on the path.
    #[error("another instance is serving on {}{}; stop it first or choose another socket path",
        .path.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyServing {
        /// The socket path.
        path: PathBuf,
        /// The pid of the process holding it, as the kernel reports it.
        pid: Option<u32>,
    },
    /// Something other than a socket is at the path; it is never replaced.
    #[error("{} exists and is not a socket; refusing to replace it", .path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path cannot be a socket path.
    #[error("invalid socket path {}: {reason}", .path.display())]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("cannot {action} {}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A bound control socket. Dropping it removes the socket file, if the file is still the one
/// this process created.
#[derive(Debug)]
pub struct BoundSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// Device and inode of our socket file, so that we never remove a socket that another
    /// instance put at the same path after us.
    id: (u64, u64),
}

impl BoundSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn take_listener(&mut self) -> UnixListener {
        self.listener.take().expect("listener taken once")
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a listening socket at `path` with permission bits `mode` and, if given, group `group`.
///
/// The socket is created inside a fresh owner-only directory next to `path`, given its mode
/// there, and then renamed into place: at no moment can anyone connect to it with wider
/// permissions than `mode`. The parent directory is created (mode 0755) if missing.
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<BoundSocket, BindError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(BindError::InvalidPath {
            path: path.to_owned(),
            reason: "it has no file name",
        });
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(io_err("create directory", parent))?;

    // Two instances starting at once must not both pass the check below and then both rename
    // a socket into place: take turns, by a lock on the directory.
    let dir = std::fs::File::open(parent).map_err(io_err("open directory", parent))?;
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err("lock directory", parent)(e.into()))?;

    check_existing(path)?;

    let staging = staging_dir(parent, file_name, path)?;
    let result = bind_in(&staging, file_name, path, mode, group);
    let _ = std::fs::remove_dir(&staging);
    result
    // `dir` closes here, releasing the lock.
}

/// Fails if a live listener holds `path` or if `path` is not a socket; a stale socket is left
/// for the rename to replace.
fn check_existing(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket {
            path: path.to_owned(),
        });
    }
    match UnixStream::connect(path) {
        Ok(stream) => {
            let pid = peer_pid(&stream);
            Err(BindError::AlreadyServing {
                path: path.to_owned(),
                pid,
            })
        }
        // Nobody listens: a socket left behind by a crash. The rename below replaces it.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(io_err("probe existing socket", path)(e)),
    }
}

fn peer_pid(stream: &UnixStream) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    Some(cred.pid.as_raw_nonzero().get() as u32)
}

/// Longest path a Unix socket can be bound at: `sun_path` holds 108 bytes with the NUL.
const MAX_SOCKET_PATH: usize = 107;

fn staging_dir(parent: &Path, file_name: &OsStr, path: &Path) -> Result<PathBuf, BindError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Short, so that it costs the socket path as little of its 107 bytes as possible.
    let dir = parent.join(format!(".c{:x}.{n:x}", std::process::id()));
    let staged_len = dir.as_os_str().len() + 1 + file_name.len();
    if path.as_os_str().len() > MAX_SOCKET_PATH || staged_len > MAX_SOCKET_PATH {
        return Err(BindError::InvalidPath {
            path: path.to_owned(),
            reason: "it is too long for a Unix socket (at most about 95 bytes: 107, less the \
                     staging directory it is created in)",
        });
    }
    // mkdir never follows a symlink planted at `dir`: it fails with EEXIST instead.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io_err("create staging directory", &dir))?;
    Ok(dir)
}

fn bind_in(
    staging: &Path,
    file_name: &OsStr,
    path: &Path,
    mode: u32,
    group: Option<u32>,
) -> Result<BoundSocket, BindError> {
    let tmp = staging.join(file_name);
    let listener = UnixListener::bind(&tmp).map_err(io_err("bind", &tmp))?;
    let cleanup = |e| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    if let Some(gid) = group {
        rustix::fs::chown(&tmp, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| io_err("set the group of", &tmp)(e.into()))
            .map_err(cleanup)?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("set permissions of", &tmp))
        .map_err(cleanup)?;
    let meta = std::fs::symlink_metadata(&tmp)
        .map_err(io_err("inspect", &tmp))
        .map_err(cleanup)?;
    // rename(2) replaces a stale socket atomically: a client sees the old dead socket or the
    // new live one, never no socket.
    std::fs::rename(&tmp, path)
        .map_err(io_err("move socket into place at", path))
        .map_err(cleanup)?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configure", path))?;
    Ok(BoundSocket {
        listener: Some(listener),
        path: path.to_owned(),
        id: (meta.dev(), meta.ino()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_gets_the_requested_mode_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/d.sock");
        let bound = bind(&path, 0o600, None).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        drop(bound);
        assert!(!path.exists(), "socket file left behind");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert!(leftovers.is_empty(), "staging directory left behind");
    }

    #[test]
    fn mode_and_group_are_set_before_the_socket_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sock");
        let gid = rustix::process::getegid().as_raw();
        let _bound = bind(&path, 0o660, Some(gid)).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "data").unwrap();
        let path = dir.path().join("d.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(BindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "data");
    }

    #[test]
    fn long_paths_up_to_the_limit_work_and_longer_ones_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().as_os_str().len() + 1;
        let fits = dir.path().join("x".repeat(90 - base) + ".sock");
        assert_eq!(fits.as_os_str().len(), 95);
        bind(&fits, 0o600, None).expect("a 95-byte path fits");
        let long = dir.path().join("y".repeat(103 - base) + ".sock");
        match bind(&long, 0o600, None) {
            Err(BindError::InvalidPath { reason, .. }) => assert!(reason.contains("too long")),
            other => panic!("expected InvalidPath, got {other:?}"),
        }
    }

    #[test]
    fn concurrent_binds_on_one_path_let_exactly_one_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.sock");
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| bind(&path, 0o600, None)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
        assert!(results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(BindError::AlreadyServing { .. }))));
    }

    #[test]
    fn live_socket_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let _first = bind(&path, 0o600, None).unwrap();
        match bind(&path, 0o600, None) {
            Err(BindError::AlreadyServing { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()))
            }
            other => panic!("expected AlreadyServing, got {other:?}"),
        }
        assert!(path.exists(), "the live socket must stay");
    }

    #[test]
    fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        drop(UnixListener::bind(&path).unwrap()); // a socket file with no listener
        let bound = bind(&path, 0o600, None).unwrap();
        UnixStream::connect(bound.path()).expect("new socket accepts");
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        std::fs::write(&path, "data").unwrap();
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(BindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[test]
    fn drop_leaves_a_successor_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let first = bind(&path, 0o600, None).unwrap();
        // Another instance replaces the file (as after our crash), then we shut down.
        std::fs::remove_file(&path).unwrap();
        let _second = bind(&path, 0o600, None).unwrap();
        drop(first);
        assert!(path.exists(), "removed the successor's socket");
    }
}
