//! Binding the control socket: refuse a live one, replace a stale one, never be more open than
//! configured, remove the file on the way out, and put it back if it is removed while serving.
//!
//! Each socket has a lock file next to it (`NAME.sock.lock`, owner-only), held for the whole
//! life of the [`BoundSocket`]: two instances never bind one path at once, and a second
//! instance refuses to start while the first is alive even if the first's socket file was
//! removed. Only the daemon's own user can open the lock file, so no other user can hold it.
//! An inotify watch on the socket's directory notices the socket file going away (a tmp
//! cleaner, a careless `rm`, logind clearing `XDG_RUNTIME_DIR`) without any idle wake-up.

use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod lock;
mod watch;

use lock::Lock;
use watch::Watch;

use crate::noise::Throttle;

/// How long start-up waits for the instance that holds the socket's lock to start serving (it
/// may be binding right now, or putting back a socket file that was removed) before it gives
/// up with [`BindError::LockHeld`].
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

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
    /// A process listens on the path but accepts nothing: its queue of pending connections is
    /// full. Found without waiting on it (a blocking connect would wait for as long as that
    /// process likes).
    #[error("a process listens on {} but accepts no connections (its queue is full); find it \
        with `ss -xlp`, remove the socket file, then start again", .path.display())]
    Squatted {
        /// The socket path.
        path: PathBuf,
    },
    /// A directory on the socket's path is not one this daemon can trust: another user's
    /// directory (who could rename the socket's away and put their own in its place), or (the
    /// socket's, made again after it was removed) a symbolic link or a directory another user
    /// made first.
    #[error("the directory {} on the socket's path is a {what} owned by uid {owner}, not a directory of \
        uid {uid} (this daemon's user) or root; another user could choose where this daemon's \
        socket and lock file go, so none are made there", .dir.display())]
    UntrustedDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is there, e.g. "symbolic link".
        what: &'static str,
        /// Its owner.
        owner: u32,
        /// This daemon's effective uid.
        uid: u32,
    },
    /// Another process holds the socket's lock file but serves nothing on the socket path.
    #[error("{} is locked by {} but nothing accepts on {} after waiting {waited:?}; if that is \
        a stuck instance of this daemon, stop it, then start again",
        .lock.display(),
        .pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "another process".into()),
        .path.display())]
    LockHeld {
        /// The socket path.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The pid holding the lock, from `/proc/locks`, when it can be found.
        pid: Option<u32>,
        /// How long start-up waited for it to serve.
        waited: Duration,
    },
    /// The lock file is not a regular file owned by this daemon's user: someone else could
    /// hold it and keep the daemon from starting, so it is never used.
    #[error("{} is a {what} owned by uid {owner}, not a lock file of uid {uid} (this daemon's \
        user), so another user could hold it to keep this daemon from starting; remove it and \
        start again", .lock.display())]
    UntrustedLockFile {
        /// The lock file.
        lock: PathBuf,
        /// What is there, e.g. "regular file", "symbolic link".
        what: &'static str,
        /// Its owner.
        owner: u32,
        /// This daemon's effective uid.
        uid: u32,
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

/// A bound control socket. Holds the socket's lock file for its whole life. Dropping it
/// removes the socket file, if the file is still the one this process created, then the lock
/// file, then releases the lock.
#[derive(Debug)]
pub struct BoundSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// Device and inode of our socket file, so that we never remove a socket that another
    /// instance put at the same path after us.
    id: (u64, u64),
    /// To bind again the same way when the file is removed.
    mode: u32,
    group: Option<u32>,
    /// `None` when inotify is unavailable or after a failed rebind: nothing more to notice.
    watch: Option<Watch>,
    /// Whoever can write the directory can remove the socket or its lock file in a loop: the
    /// lines that say so are rate-limited.
    removals: Arc<Throttle>,
    /// Whether the last rebind failed to a squatter (see [`BoundSocket::rebind`]).
    squatted: bool,
    /// The lines that say a rebind failed to a squatter, rate-limited the same way.
    failures: Arc<Throttle>,
    /// Last, so that it is released only after the socket file is gone (see `Drop`).
    lock: Lock,
}

impl BoundSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn take_listener(&mut self) -> UnixListener {
        self.listener.take().expect("listener taken once")
    }

    /// Whether `path` still names the socket file this process bound.
    fn is_ours(&self) -> bool {
        same_file(&self.path, self.id)
    }

    /// The rate limit of the lines saying the socket or its lock file was removed.
    pub(crate) fn removals(&self) -> &Arc<Throttle> {
        &self.removals
    }

    /// Resolves when the socket file is gone or replaced (checked on inotify events for its
    /// name, its lock file's name and its directory, so it never wakes while nothing happens).
    /// Never resolves if inotify is unavailable or after a
    /// rebind failed. Cancel-safe: events are read and acted on without an await in between.
    ///
    /// A removed lock file is taken again on the way, so that a second instance still cannot
    /// start while this one is alive.
    pub(crate) async fn lost(&mut self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let Some(watch) = self.watch.as_mut() else {
                return std::future::pending().await;
            };
            let relevant = match watch.next_batch(&mut buf).await {
                Ok(relevant) => relevant,
                Err(err) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "cannot watch the control socket's directory any more, a removed \
                         socket file will not be noticed: {err}"
                    );
                    self.watch = None;
                    continue;
                }
            };
            if !relevant {
                continue;
            }
            if !self.is_ours() {
                return;
            }
            if !self.lock.is_at_its_path() {
                match Lock::acquire(&self.path, Duration::ZERO) {
                    Ok(lock) => {
                        if self.removals.admit() {
                            tracing::warn!(
                                lock = %lock.path.display(),
                                "the control socket's lock file was removed while serving; took \
                                 it again"
                            );
                        }
                        self.lock = lock;
                    }
                    Err(err) => {
                        if self.removals.admit() {
                            tracing::warn!(
                                "the control socket's lock file was removed while serving and \
                                 cannot be taken again: {}",
                                chain(&err)
                            );
                        }
                    }
                }
            }
        }
    }

    /// Binds the socket again at the same path, with the same mode and group: recreates its
    /// directory (only the last component; a whole missing runtime directory is not ours to
    /// create), takes the lock file again if it is gone, and replaces a stale socket. Fails
    /// without waiting if another instance holds the name now.
    ///
    /// After a failure to a squatter ([`squatted`]), [`lost`] resolves again on the next event
    /// for the socket's name, such as the squatter's file going away, and the caller tries
    /// again. After any other failure [`lost`] never resolves again: there is nothing this
    /// instance can do but keep running unreachable.
    ///
    /// [`lost`]: BoundSocket::lost
    /// [`squatted`]: BoundSocket::squatted
    pub(crate) fn rebind(&mut self) -> Result<UnixListener, BindError> {
        let result = self.try_rebind();
        // Another process's socket at the path while this instance still holds the lock at its
        // path: no instance of this daemon can serve there without the lock, so it is a
        // squatter, and the path is free again the moment its file is removed.
        self.squatted = matches!(
            result,
            Err(BindError::AlreadyServing { .. } | BindError::Squatted { .. })
        ) && self.lock.is_at_its_path();
        if result.is_err() && !self.squatted {
            self.watch = None;
        }
        result
    }

    /// Whether the last rebind failed to a squatter, and the next event may end it.
    pub(crate) fn squatted(&self) -> bool {
        self.squatted
    }

    /// The rate limit of the lines saying a rebind failed to a squatter: it can make one fail
    /// on every event it causes.
    pub(crate) fn failures(&self) -> &Arc<Throttle> {
        &self.failures
    }

    fn try_rebind(&mut self) -> Result<UnixListener, BindError> {
        let (parent, file_name) = split(&self.path)?;
        match std::fs::DirBuilder::new().mode(0o755).create(parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", parent)(e)),
        }
        // Whoever could remove the directory may have put a link or a directory of their own
        // there first; the mkdir above does not follow a link, but all that comes below would.
        let dir_id = trusted_directory(parent)?;
        // Watch the directory now at the path before binding in it: a removal right after the
        // bind must not slip between the two.
        if let Some(watch) = self.watch.as_mut() {
            if let Err(err) = watch.rewatch(parent) {
                tracing::warn!(
                    path = %self.path.display(),
                    "cannot watch the control socket's directory again, a removed socket file \
                     will not be noticed: {err}"
                );
                self.watch = None;
            }
        }
        if !self.lock.is_at_its_path() {
            // Replacing drops the old lock, on an inode nobody can find any more.
            self.lock = Lock::acquire(&self.path, Duration::ZERO)?;
        }
        check_existing(&self.path)?;
        let staging = staging_dir(parent, file_name, &self.path)?;
        let result = bind_in(&staging, file_name, &self.path, self.mode, self.group);
        let _ = std::fs::remove_dir(&staging);
        let (listener, id) = result?;
        // Swapped after the check? In a sticky directory no other user can rename ours away;
        // anywhere else they own the path anyway. Checked so that it is never served unseen.
        if !same_file(parent, dir_id) {
            if same_file(&self.path, id) {
                let _ = std::fs::remove_file(&self.path);
            }
            return Err(BindError::Io {
                action: "keep the socket's directory in place at",
                path: parent.to_owned(),
                source: io::Error::other("it was replaced while the socket was being bound"),
            });
        }
        self.id = id;
        Ok(listener)
    }
}

/// Device and inode of `dir` if it is a directory (not a link to one) owned by this daemon's
/// user or root; [`BindError::UntrustedDirectory`] otherwise.
fn trusted_directory(dir: &Path) -> Result<(u64, u64), BindError> {
    use rustix::fs::{Mode, OFlags};
    // O_PATH|O_NOFOLLOW opens a planted link itself, never what it points at.
    let fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open directory", dir)(e.into()))?;
    let meta = std::fs::File::from(fd)
        .metadata()
        .map_err(io_err("inspect", dir))?;
    owned_directory(dir, &meta)?;
    Ok((meta.dev(), meta.ino()))
}

/// [`BindError::UntrustedDirectory`] unless every directory that `dir` (or, where it does not
/// exist yet, the deepest part of it that does) is in is owned by this daemon's user or root,
/// judged before anything is made there: the owner of any of them could rename the socket's
/// directory away and put one of their own in its place. Links on the way (say /var/run) are
/// followed, and the directories they lead to judged.
fn trusted_ancestors(dir: &Path) -> Result<(), BindError> {
    // The deepest part that exists ("" is the working directory).
    let existing = dir
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || std::fs::symlink_metadata(a).is_ok())
        .filter(|a| !a.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let real = std::fs::canonicalize(existing).map_err(io_err("resolve", existing))?;
    for ancestor in real.ancestors() {
        let meta = std::fs::metadata(ancestor).map_err(io_err("inspect", ancestor))?;
        owned_directory(ancestor, &meta)?;
    }
    Ok(())
}

/// [`BindError::UntrustedDirectory`] unless `meta` is of a directory owned by this daemon's
/// user or root: whoever owns the directory could replace the socket and its lock file with
/// their own.
fn owned_directory(dir: &Path, meta: &std::fs::Metadata) -> Result<(), BindError> {
    let uid = rustix::process::geteuid().as_raw();
    if meta.is_dir() && (meta.uid() == uid || meta.uid() == 0) {
        return Ok(());
    }
    Err(BindError::UntrustedDirectory {
        dir: dir.to_owned(),
        what: crate::log_file::describe(meta.file_type()),
        owner: meta.uid(),
        uid,
    })
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if self.is_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
        // `self.lock` drops after this: it unlinks the lock file while still holding it.
    }
}

/// Whether `path` (not followed) names the file with this device and inode.
fn same_file(path: &Path, id: (u64, u64)) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == id)
}

/// The directory and file name of a socket path.
fn split(path: &Path) -> Result<(&Path, &OsStr), BindError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match path.file_name() {
        Some(name) => Ok((parent, name)),
        None => Err(BindError::InvalidPath {
            path: path.to_owned(),
            reason: "it has no file name",
        }),
    }
}

/// Binds a listening socket at `path` with permission bits `mode` and, if given, group `group`.
///
/// The socket is created inside a fresh owner-only directory next to `path`, given its mode
/// there, and then renamed into place: at no moment can anyone connect to it with wider
/// permissions than `mode`. The parent directory is created (mode 0755) if missing; one another
/// user owns is refused ([`BindError::UntrustedDirectory`]): they could replace the socket.
///
/// The lock file `PATH.lock` (mode 0600) is taken first and held until the [`BoundSocket`] is
/// dropped. If another instance holds it, this fails at once with
/// [`BindError::AlreadyServing`] if that instance serves on `path`, and otherwise waits at
/// most [`LOCK_WAIT`] for it to, then fails with [`BindError::LockHeld`] naming its pid.
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<BoundSocket, BindError> {
    bind_waiting(path, mode, group, LOCK_WAIT)
}

fn bind_waiting(
    path: &Path,
    mode: u32,
    group: Option<u32>,
    wait: Duration,
) -> Result<BoundSocket, BindError> {
    let (parent, file_name) = split(path)?;
    trusted_ancestors(parent)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(io_err("create directory", parent))?;
    // Followed: a link an operator made (say /var/run) leads to the directory to judge.
    let meta = std::fs::metadata(parent).map_err(io_err("inspect", parent))?;
    owned_directory(parent, &meta)?;

    // Two instances starting at once must not both pass the check below and then both rename
    // a socket into place: the lock makes them take turns, and keeps the loser out for as
    // long as the winner lives.
    let lock = Lock::acquire(path, wait)?;
    // Before the socket exists, so that no removal can happen unwatched.
    let watch = Watch::new(parent, path);

    check_existing(path)?;

    let staging = staging_dir(parent, file_name, path)?;
    let result = bind_in(&staging, file_name, path, mode, group);
    let _ = std::fs::remove_dir(&staging);
    let (listener, id) = result?;
    Ok(BoundSocket {
        listener: Some(listener),
        path: path.to_owned(),
        id,
        mode,
        group,
        watch,
        removals: Throttle::new("removals of the control socket file or its lock file"),
        squatted: false,
        failures: Throttle::new("failures to bind the control socket again"),
        lock,
    })
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
    // Without blocking: whoever can write the directory can put a listener there whose queue
    // is full, and a blocking connect would then wait (on the runtime's thread, during a
    // rebind) for as long as they like.
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| io_err("probe existing socket", path)(e.into()))?;
    let addr =
        SocketAddrUnix::new(path).map_err(|e| io_err("probe existing socket", path)(e.into()))?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => Err(BindError::AlreadyServing {
            path: path.to_owned(),
            pid: peer_pid(&fd),
        }),
        // Nobody listens: a socket left behind by a crash. The rename below replaces it.
        Err(Errno::CONNREFUSED) => Ok(()),
        // A Unix stream socket says EAGAIN, not EINPROGRESS, when the queue is full.
        Err(Errno::AGAIN | Errno::INPROGRESS) => Err(BindError::Squatted {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err("probe existing socket", path)(e.into())),
    }
}

fn peer_pid(fd: impl AsFd) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(fd).ok()?;
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
) -> Result<(UnixListener, (u64, u64)), BindError> {
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
    Ok((listener, (meta.dev(), meta.ino())))
}

pub(crate) use control_api::text::chain;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{mkfifo, within_10s};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    /// A directory of the test's own, and `d.sock` in it.
    fn socket_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        (dir, path)
    }

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
        let (dir, path) = socket_path();
        let target = dir.path().join("precious");
        std::fs::write(&target, "data").unwrap();
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
        let (_dir, path) = socket_path();
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
        let (_dir, path) = socket_path();
        drop(UnixListener::bind(&path).unwrap()); // a socket file with no listener
        let bound = bind(&path, 0o600, None).unwrap();
        UnixStream::connect(bound.path()).expect("new socket accepts");
    }

    #[test]
    fn a_regular_file_is_never_replaced() {
        let (_dir, path) = socket_path();
        std::fs::write(&path, "data").unwrap();
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(BindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[test]
    fn drop_leaves_a_successor_socket_alone() {
        let (_dir, path) = socket_path();
        let lock = Lock::path_for(&path);
        let first = bind(&path, 0o600, None).unwrap();
        // Someone removes both files while we run; another instance takes the name; then we
        // shut down.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&lock).unwrap();
        let _second = bind(&path, 0o600, None).unwrap();
        drop(first);
        assert!(path.exists(), "removed the successor's socket");
        assert!(lock.exists(), "removed the successor's lock file");
    }

    #[test]
    fn the_lock_file_is_owner_only_held_for_life_and_removed_on_drop() {
        let (_dir, path) = socket_path();
        let bound = bind(&path, 0o666, None).unwrap();
        let lock = Lock::path_for(&path);
        let meta = std::fs::symlink_metadata(&lock).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
        let held = std::fs::File::open(&lock).unwrap();
        assert_eq!(
            rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive),
            Err(rustix::io::Errno::WOULDBLOCK),
            "the lock must be held while the socket is bound"
        );
        drop(bound);
        assert!(!lock.exists(), "lock file left behind");
    }

    #[test]
    fn a_lock_on_the_directory_does_not_hold_up_bind() {
        let (dir, path) = socket_path();
        let locked = std::fs::File::open(dir.path()).unwrap();
        rustix::fs::flock(&locked, rustix::fs::FlockOperation::LockExclusive).unwrap();
        // On a thread, so that a bind that blocks fails the test instead of hanging it.
        within_10s("a bind in a locked directory", move || {
            bind(&path, 0o600, None).map(|_| ())
        })
        .expect("bind");
    }

    #[test]
    fn a_holder_that_serves_nothing_fails_the_bind_after_a_bounded_wait_naming_it() {
        let (_dir, path) = socket_path();
        let _first = bind(&path, 0o600, None).unwrap();
        // The first instance is alive but its socket file is gone (and not yet back).
        std::fs::remove_file(&path).unwrap();
        let wait = Duration::from_millis(300);
        let start = Instant::now();
        let loser = path.clone();
        // On a thread, so that a wait without end fails the test instead of hanging it.
        let err = within_10s("a bind waiting for the lock", move || {
            bind_waiting(&loser, 0o600, None, wait).map(|_| ())
        })
        .unwrap_err();
        assert!(start.elapsed() >= wait, "gave up before the wait");
        match &err {
            BindError::LockHeld { lock, pid, .. } => {
                assert_eq!(lock, &Lock::path_for(&path));
                assert_eq!(*pid, Some(std::process::id()), "holder from /proc/locks");
            }
            other => panic!("expected LockHeld, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("d.sock.lock"), "{message}");
        assert!(!path.exists(), "the loser must not bind");
    }

    /// A tempdir and a directory `theirs` in it owned by nobody (65534); `None`, said, when
    /// this test cannot chown.
    fn nobodys_dir() -> Option<(tempfile::TempDir, PathBuf)> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        rustix::fs::chown(&theirs, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        Some((dir, theirs))
    }

    #[test]
    fn a_directory_above_owned_by_another_user_is_refused_before_anything_is_made_in_it() {
        let Some((_dir, theirs)) = nobodys_dir() else {
            return;
        };
        // Made by root in their directory, it could be renamed away by them and replaced.
        let ours = theirs.join("ours");
        std::fs::create_dir(&ours).unwrap();
        for path in [ours.join("d.sock"), theirs.join("missing/d.sock")] {
            match bind(&path, 0o600, None) {
                Err(BindError::UntrustedDirectory {
                    dir, owner: 65534, ..
                }) => {
                    assert_eq!(dir, theirs, "{path:?}")
                }
                other => panic!("expected UntrustedDirectory for {path:?}, got {other:?}"),
            }
        }
        assert!(
            !theirs.join("missing").exists(),
            "made a directory in theirs"
        );
        assert_eq!(std::fs::read_dir(&ours).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_another_user_owns_is_refused_before_anything_is_made_in_it() {
        let Some((dir, theirs)) = nobodys_dir() else {
            return;
        };
        // Reached through a link of our own: what is judged is the directory it leads to.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        for parent in [&theirs, &link] {
            match bind(&parent.join("d.sock"), 0o600, None) {
                Err(err @ BindError::UntrustedDirectory { owner: 65534, .. }) => {
                    let message = err.to_string();
                    assert!(message.contains("owned by uid 65534"), "{message}");
                }
                other => panic!("expected UntrustedDirectory in {parent:?}, got {other:?}"),
            }
            let made: Vec<_> = std::fs::read_dir(&theirs).unwrap().collect();
            assert!(made.is_empty(), "made {made:?} in another user's directory");
        }
    }

    #[test]
    fn untrusted_lock_files_are_refused_at_once_and_left_alone() {
        let (dir, path) = socket_path();
        let lock = Lock::path_for(&path);
        let refused = |what: &str| match bind(&path, 0o600, None) {
            Err(err @ BindError::UntrustedLockFile { .. }) => {
                let message = err.to_string();
                assert!(message.contains(&lock.display().to_string()), "{message}");
                assert!(message.contains(what), "{message}");
                assert!(message.contains("remove it"), "{message}");
            }
            other => panic!("expected UntrustedLockFile for {what}, got {other:?}"),
        };

        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &lock).unwrap();
        refused("a symbolic link");
        assert!(
            !dir.path().join("elsewhere").exists(),
            "followed the symlink"
        );
        std::fs::remove_file(&lock).unwrap();

        // A FIFO would hang a blocking open until a writer came.
        mkfifo(&lock);
        refused("a FIFO");
        std::fs::remove_file(&lock).unwrap();

        std::fs::create_dir(&lock).unwrap();
        refused("a directory");
        std::fs::remove_dir(&lock).unwrap();

        if rustix::process::geteuid().is_root() {
            std::fs::write(&lock, "").unwrap();
            rustix::fs::chown(&lock, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
            refused("uid 65534");
            assert!(lock.exists(), "removed another user's file");
        }
        assert!(!path.exists());
    }

    #[test]
    fn a_lock_file_wider_than_owner_only_is_replaced() {
        let (_dir, path) = socket_path();
        let lock = Lock::path_for(&path);
        std::fs::write(&lock, "").unwrap();
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Someone opened it while it was readable to all (kept open, its inode stays in use).
        let opened = std::fs::File::open(&lock).unwrap();
        let _bound = bind(&path, 0o600, None).unwrap();
        let meta = std::fs::metadata(&lock).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_ne!(
            meta.ino(),
            opened.metadata().unwrap().ino(),
            "kept a file others may have opened"
        );
    }

    /// Lets `lost` read the events that binding itself caused, and checks that they do not
    /// count as a loss.
    async fn settle(bound: &mut BoundSocket) {
        let early = tokio::time::timeout(Duration::from_millis(200), bound.lost()).await;
        assert!(early.is_err(), "lost() resolved with the socket in place");
    }

    /// Waits (bounded) until `lost` resolves.
    async fn lost_within(bound: &mut BoundSocket) {
        tokio::time::timeout(Duration::from_secs(10), bound.lost())
            .await
            .expect("the removal was not noticed");
    }

    #[tokio::test]
    async fn a_removed_socket_file_is_noticed_and_bound_again() {
        let (_dir, path) = socket_path();
        let mut bound = bind(&path, 0o640, None).unwrap();
        let _old = bound.take_listener();
        settle(&mut bound).await;
        std::fs::remove_file(&path).unwrap();
        lost_within(&mut bound).await;
        let listener = bound.rebind().expect("rebind");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640, "same mode again");
        UnixStream::connect(&path).expect("the new socket accepts");
        listener.accept().expect("on the new listener");
        // Our own rename back into place is not a loss.
        settle(&mut bound).await;
        drop(bound);
        assert!(!path.exists(), "the new socket is removed on drop");
    }

    #[tokio::test]
    async fn a_removed_directory_is_noticed_recreated_and_bound_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let path = sub.join("d.sock");
        let mut bound = bind(&path, 0o600, None).unwrap();
        settle(&mut bound).await;
        std::fs::remove_dir_all(&sub).unwrap();
        lost_within(&mut bound).await;
        let _listener = bound.rebind().expect("rebind");
        UnixStream::connect(&path).expect("the new socket accepts");
        assert!(Lock::path_for(&path).exists(), "lock file taken again");
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(BindError::AlreadyServing { .. })
        ));
        // And the new directory is watched.
        settle(&mut bound).await;
        std::fs::remove_file(&path).unwrap();
        lost_within(&mut bound).await;
    }

    #[tokio::test]
    async fn other_names_are_ignored_and_a_removed_lock_file_is_taken_again() {
        let (dir, path) = socket_path();
        let lock = Lock::path_for(&path);
        let mut bound = bind(&path, 0o600, None).unwrap();
        std::fs::write(dir.path().join("other.sock"), "").unwrap();
        std::fs::remove_file(dir.path().join("other.sock")).unwrap();
        std::fs::remove_file(&lock).unwrap();
        let back = async {
            for _ in 0..1000 {
                if lock.exists() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the lock file was not taken again");
        };
        tokio::select! {
            _ = bound.lost() => panic!("lost() resolved with the socket in place"),
            _ = back => {}
        }
        // Held again: a second instance cannot take the name even once the socket is gone.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            bind_waiting(&path, 0o600, None, Duration::ZERO),
            Err(BindError::LockHeld { .. })
        ));
    }

    #[tokio::test]
    async fn a_squatter_at_the_path_fails_the_rebind_until_its_file_is_removed() {
        let (_dir, path) = socket_path();
        let mut bound = bind(&path, 0o600, None).unwrap();
        settle(&mut bound).await;
        std::fs::remove_file(&path).unwrap();
        let squatter = UnixListener::bind(&path).unwrap();
        lost_within(&mut bound).await;
        match bound.rebind() {
            Err(BindError::AlreadyServing { .. }) => assert!(bound.squatted()),
            other => panic!("expected the squatter to be found, got {other:?}"),
        }
        // Its file removed, the next event wakes us, and the path is ours again.
        std::fs::remove_file(&path).unwrap();
        drop(squatter);
        lost_within(&mut bound).await;
        let listener = bound.rebind().expect("rebind once the squatter is gone");
        assert!(!bound.squatted());
        UnixStream::connect(&path).expect("the new socket accepts");
        listener.accept().expect("on the new listener");
    }

    #[tokio::test]
    async fn rebind_fails_when_another_instance_took_the_name_then_stays_quiet() {
        let (_dir, path) = socket_path();
        let mut first = bind(&path, 0o600, None).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(Lock::path_for(&path)).unwrap();
        let second = bind(&path, 0o600, None).unwrap();
        lost_within(&mut first).await;
        match first.rebind() {
            Err(BindError::AlreadyServing { .. } | BindError::LockHeld { .. }) => {}
            other => panic!("expected the name to be taken, got {other:?}"),
        }
        assert!(
            same_file(&path, second.id),
            "the second's socket was touched"
        );
        // Its leaving makes events for our names: they must not wake us any more.
        drop(second);
        let again = tokio::time::timeout(Duration::from_millis(200), first.lost()).await;
        assert!(
            again.is_err(),
            "lost() must not fire again after a failed rebind"
        );
    }
}
