//! The socket's lock file: held for the life of the bound socket, so that two instances never
//! bind one path, and owner-only, so that no other user can hold it.

use super::{check_existing, io_err, same_file, BindError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The socket's lock file, held (`flock`) while this value lives.
#[derive(Debug)]
pub(super) struct Lock {
    /// Never read: holding it open is holding the lock.
    _file: std::fs::File,
    pub(super) path: PathBuf,
    /// Device and inode of the file we hold, to tell it from a replacement at the same path.
    pub(super) id: (u64, u64),
}

/// One try at taking the lock file.
enum Attempt {
    Locked(Lock),
    /// Another open file description holds it: another instance, alive or binding right now.
    Held(std::fs::File),
    /// The file at the path changed under us; try again.
    Replaced,
}

/// How many times in a row the lock file may be found replaced before giving up: only someone
/// racing us on purpose gets past a few.
const MAX_REPLACED: u32 = 100;

impl Lock {
    pub(super) fn path_for(socket: &Path) -> PathBuf {
        control_api::lock::lock_path(socket)
    }

    /// Takes the lock of `socket`, waiting at most `wait` for a holder that serves nothing yet
    /// (see [`bind`]).
    pub(super) fn acquire(socket: &Path, wait: Duration) -> Result<Lock, BindError> {
        let path = Lock::path_for(socket);
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut replaced = 0;
        let mut announced = false;
        loop {
            match Lock::attempt(&path)? {
                Attempt::Locked(lock) => return Ok(lock),
                Attempt::Replaced => {
                    replaced += 1;
                    if replaced > MAX_REPLACED {
                        return Err(io_err("lock", &path)(io::Error::other(
                            "the lock file keeps being replaced while it is being locked",
                        )));
                    }
                }
                Attempt::Held(file) => {
                    // A live holder answers at once: AlreadyServing, with its pid.
                    check_existing(socket)?;
                    let waited = start.elapsed();
                    if waited >= wait {
                        return Err(BindError::LockHeld {
                            path: socket.to_owned(),
                            pid: lock_holder(&file),
                            lock: path,
                            waited,
                        });
                    }
                    if !announced && waited >= Duration::from_millis(100) {
                        // Not at once: two instances starting together is normal, and quick.
                        announced = true;
                        tracing::warn!(
                            lock = %path.display(),
                            holder = lock_holder(&file),
                            "the socket's lock is held by another process that serves nothing \
                             on {} yet; waiting at most {wait:?} for it",
                            socket.display()
                        );
                    }
                    std::thread::sleep(pause.min(wait - waited));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    fn attempt(path: &Path) -> Result<Attempt, BindError> {
        use rustix::fs::{Mode, OFlags};
        // NOFOLLOW: a planted symlink is refused (ELOOP), never followed. NONBLOCK: a planted
        // FIFO cannot hang the open. CLOEXEC: processes the daemon starts do not inherit, and
        // keep holding, the lock. Created 0600: no other user can open it, so none can lock it.
        let flags = OFlags::RDONLY
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)).map_err(|e| {
            // Why it cannot be opened, if it is because of what is there.
            let there = std::fs::symlink_metadata(path).ok();
            there
                .and_then(|meta| untrusted(path, &meta))
                .unwrap_or_else(|| io_err("open lock file", path)(e.into()))
        })?;
        let file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        if let Some(err) = untrusted(path, &meta) {
            return Err(err);
        }
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Attempt::Held(file)),
            Err(e) => return Err(io_err("lock", path)(e.into())),
        }
        let id = (meta.dev(), meta.ino());
        // An instance leaving unlinks the file while it still holds it; if that happened
        // between our open and our flock, we hold a file that nobody else will ever open.
        if !same_file(path, id) {
            return Ok(Attempt::Replaced);
        }
        if meta.mode() & 0o077 != 0 {
            // Ours, but wider than we create it: another user may have opened it meanwhile,
            // and could take the lock once we let go. Replace it while we hold it.
            let _ = std::fs::remove_file(path);
            return Ok(Attempt::Replaced);
        }
        Ok(Attempt::Locked(Lock {
            _file: file,
            path: path.to_owned(),
            id,
        }))
    }

    /// Whether the lock file's path still names the file we hold.
    pub(super) fn is_at_its_path(&self) -> bool {
        same_file(&self.path, self.id)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlinked while still held: an instance waiting for it then finds it replaced and
        // creates a new one, instead of locking a file that nobody else will look at.
        if self.is_at_its_path() {
            let _ = std::fs::remove_file(&self.path);
        }
        // `self._file` closes after this, releasing the lock.
    }
}

/// [`BindError::UntrustedLockFile`] unless `meta` is of a regular file of this daemon's user.
fn untrusted(path: &Path, meta: &std::fs::Metadata) -> Option<BindError> {
    let uid = rustix::process::geteuid().as_raw();
    (!meta.file_type().is_file() || meta.uid() != uid).then(|| BindError::UntrustedLockFile {
        lock: path.to_owned(),
        what: crate::log_file::describe(meta.file_type()),
        owner: meta.uid(),
        uid,
    })
}

/// The pid holding a `flock` on `file`, from `/proc/locks`; `None` if it cannot be told.
fn lock_holder(file: &std::fs::File) -> Option<u32> {
    control_api::lock::holder(&file.metadata().ok()?)
}
