//! A log file that `rotate` reopens without losing, splitting or duplicating a line.
//!
//! Give each [`LogFile`] to [`Builder::log_file`](crate::Builder::log_file) and the server
//! answers `rotate` by reopening it: the daemon writes no rotate code at all.
//!
//! The path is not trusted: whoever can write to the log directory can put anything there
//! between two rotations. A log file is only ever opened without following a symbolic link,
//! without blocking (a FIFO would otherwise stall the caller in `open`), and only adopted if it
//! is a regular file owned by the daemon's effective uid or root; see [`OpenErrorKind`].

use control_api::{FileId, ReopenedFile};
use rustix::fs::{Mode, OFlags};
use std::fs::{File, FileType, Metadata, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Mode of a log file created where none existed before. When a reopen finds no file at the
/// path it creates one with the old file's mode, owner and group instead (as logrotate's
/// `create` does with no arguments); when logrotate's `create MODE OWNER GROUP` already made
/// the new file, that file is used as it is.
pub const DEFAULT_LOG_MODE: u32 = 0o640;

/// Longest partial line a handle buffers before writing it anyway, so that a writer that never
/// ends a line cannot grow memory without bound.
const MAX_PENDING: usize = 64 * 1024;

/// An append-only log file that can be reopened at its path after logrotate renamed it.
///
/// Lines are written whole, each under a lock that [`LogFile::reopen`] takes only to swap the
/// file: every line lands complete in exactly one file, from any number of threads, even while
/// `rotate` runs. A line lands whole or not at all: when a write fails midway (a full disk), the
/// part written is cut off again before the error is returned, so the caller can retry the whole
/// line. If the new file cannot be opened, writing goes on to the old one.
///
/// No lock is held while a `LogFile` logs through `tracing`, so the daemon's own `tracing`
/// output may go to the same file.
///
/// A `LogFile` is a cheap handle: clones share the file. Its [`Write`] implementation buffers
/// until a newline (so `writeln!` with many pieces still writes one whole line) and writes the
/// rest on `flush` or drop; give each thread its own clone. It is also a `tracing_subscriber`
/// [`MakeWriter`](tracing_subscriber::fmt::MakeWriter): each event is written whole.
///
/// ```
/// use control_server::LogFile;
/// use std::io::Write;
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("app.log");
/// let mut log = LogFile::open(&path)?;
/// writeln!(log, "started, {} workers", 4)?;
/// log.write_line(b"one whole line\n")?;
/// // After logrotate renamed the file (the server does this on `ctl rotate`):
/// # std::fs::rename(&path, dir.path().join("app.log.1"))?;
/// let reopened = log.reopen();
/// assert!(reopened.error.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogFile {
    shared: Arc<Shared>,
    /// This handle's unfinished line.
    pending: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    /// Held through a whole reopen or switch so that two never interleave. Writers never take
    /// it: a reopen waiting on a slow `open` holds up no line.
    reopening: Mutex<()>,
    /// Taken by every write, and by a reopen only to swap the file.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Shared so that a reopen can read the old file's metadata without holding the lock.
    file: Arc<File>,
    id: FileId,
    /// Bytes written since this file was opened, reported by `rotate`.
    written: u64,
    /// The file ends in part of a line: a write failed midway and cutting it off failed too.
    /// The next write starts with a newline, so the fragment never merges with a whole line.
    torn: bool,
}

impl Inner {
    fn new(path: PathBuf, (file, id): (File, FileId)) -> Inner {
        Inner {
            path,
            file: Arc::new(file),
            id,
            written: 0,
            torn: false,
        }
    }
}

impl Clone for LogFile {
    /// Another handle on the same file, with a buffer of its own.
    fn clone(&self) -> Self {
        LogFile {
            shared: self.shared.clone(),
            pending: Vec::new(),
        }
    }
}

/// Why a log file was not opened, naming its path; what the error is, is in [`OpenError::kind`].
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct OpenError {
    /// The path that was opened.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: OpenErrorKind,
}

/// What is wrong with the file at a log path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenErrorKind {
    /// The operating system refused (permission, missing directory, full disk, ...).
    #[error("{0}")]
    Io(io::Error),
    /// A symbolic link: following it would let whoever can write to the log directory send
    /// the daemon's lines, with the daemon's rights, into any file.
    #[error(
        "is a symbolic link, and log files are never opened through one; \
         remove it, so that the file is created anew"
    )]
    Symlink,
    /// A FIFO, socket, device or directory, which a writer could block on or which is no log.
    #[error("is a {0}, not a regular file; remove it, so that the file is created anew")]
    NotRegular(&'static str),
    /// A regular file that neither the daemon's effective uid nor root owns: another user
    /// made it, and may read what the daemon writes or have linked it to something else.
    #[error(
        "is owned by uid {owner}, neither this daemon's uid {euid} nor root, so it is not \
         used; remove it, or chown it to uid {euid}"
    )]
    ForeignOwner {
        /// The file's owner.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
}

impl From<OpenError> for io::Error {
    /// For callers in `io::Result` code: the kind of the OS error where there is one.
    fn from(err: OpenError) -> io::Error {
        let kind = match &err.kind {
            OpenErrorKind::Io(e) => e.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

/// What a file type is called in messages.
pub(crate) fn describe(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_fifo() {
        "FIFO (named pipe)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Opens the log file at `path` for appending, under the rules in the module docs: a regular
/// file found there is used as it is; a missing one is created (never through a link), with
/// the mode, owner and group of `like` when given, else with [`DEFAULT_LOG_MODE`].
fn open_log(path: &Path, like: Option<&Metadata>) -> Result<(File, FileId), OpenErrorKind> {
    // Three tries: logrotate (or anyone) may create or remove the file between our calls.
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for _ in 0..3 {
        // The lstat only makes the message precise and spares opening a device; the fstat
        // below, on what was actually opened, is the check that counts.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(OpenErrorKind::Symlink),
            // A directory is left to `open`, whose EISDIR says it as operators know it.
            Ok(meta) if !meta.file_type().is_file() && !meta.is_dir() => {
                return Err(OpenErrorKind::NotRegular(describe(meta.file_type())));
            }
            Ok(_) => match open_flags(path, OFlags::empty(), Mode::empty()) {
                Ok(file) => return adopt(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = e,
                Err(e) => return Err(refusal(path, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = like.map_or(DEFAULT_LOG_MODE, |old| old.mode() & 0o7777);
                let excl = OFlags::CREATE | OFlags::EXCL;
                match open_flags(path, excl, Mode::from_raw_mode(mode)) {
                    Ok(file) => return created(file, like),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                    Err(e) => return Err(refusal(path, e)),
                }
            }
            Err(e) => return Err(OpenErrorKind::Io(e)),
        }
    }
    Err(OpenErrorKind::Io(last))
}

fn open_flags(path: &Path, extra: OFlags, mode: Mode) -> io::Result<File> {
    // NONBLOCK: opening a FIFO for writing otherwise waits for a reader, forever.
    let flags = OFlags::WRONLY
        | OFlags::APPEND
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC
        | extra;
    Ok(File::from(rustix::fs::open(path, flags, mode)?))
}

/// Names what an `open` ran into when the path changed after the lstat.
fn refusal(path: &Path, err: io::Error) -> OpenErrorKind {
    match err.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => OpenErrorKind::Symlink,
        // What a FIFO without a reader, or a socket, answers to a non-blocking open.
        Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => {
            let kind = std::fs::symlink_metadata(path)
                .map_or("FIFO or socket", |meta| describe(meta.file_type()));
            OpenErrorKind::NotRegular(kind)
        }
        _ => OpenErrorKind::Io(err),
    }
}

/// Checks what was opened, and makes it a blocking descriptor again.
fn adopt(file: File) -> Result<(File, FileId), OpenErrorKind> {
    let meta = file.metadata().map_err(OpenErrorKind::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenErrorKind::NotRegular(describe(meta.file_type())));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(OpenErrorKind::ForeignOwner {
            owner: meta.uid(),
            euid,
        });
    }
    blocking(&file)?;
    Ok((file, id_of(&meta)))
}

/// Finishes a file this call created: exactly `like`'s mode and owner where given.
fn created(file: File, like: Option<&Metadata>) -> Result<(File, FileId), OpenErrorKind> {
    if let Some(old) = like {
        // The umask narrowed the mode at creation; set it exactly. The owner can only be
        // carried over when running as root; otherwise the file is ours anyway.
        file.set_permissions(Permissions::from_mode(old.mode() & 0o7777))
            .map_err(OpenErrorKind::Io)?;
        let _ = rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(old.uid())),
            Some(rustix::fs::Gid::from_raw(old.gid())),
        );
    }
    blocking(&file)?;
    let meta = file.metadata().map_err(OpenErrorKind::Io)?;
    Ok((file, id_of(&meta)))
}

fn blocking(file: &File) -> Result<(), OpenErrorKind> {
    let flags = rustix::fs::fcntl_getfl(file).map_err(|e| OpenErrorKind::Io(e.into()))?;
    rustix::fs::fcntl_setfl(file, flags - OFlags::NONBLOCK).map_err(|e| OpenErrorKind::Io(e.into()))
}

fn id_of(meta: &Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// `path` made absolute against the current directory, once, at open: a daemon that changes
/// directory later must still reopen the same file on `rotate`.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

impl LogFile {
    /// Opens `path` for appending, creating it with mode [`DEFAULT_LOG_MODE`] if needed.
    /// Refuses a symbolic link, anything but a regular file, and a file owned by another user
    /// than the daemon's effective uid or root ([`OpenErrorKind`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<LogFile, OpenError> {
        let path = absolute(path.into());
        let opened = open_log(&path, None).map_err(|kind| OpenError {
            path: path.clone(),
            kind,
        })?;
        Ok(LogFile::from_inner(Inner::new(path, opened)))
    }

    fn from_inner(inner: Inner) -> LogFile {
        LogFile {
            shared: Arc::new(Shared {
                reopening: Mutex::new(()),
                inner: Mutex::new(inner),
            }),
            pending: Vec::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared.inner)
    }

    /// The path written to.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Appends `bytes` (one or more whole lines): all of them, or, on error, none.
    pub fn write_line(&self, bytes: &[u8]) -> io::Result<()> {
        append(&self.shared, bytes)
    }

    /// Opens the file at the path anew and moves writing to it; used by `rotate`. On failure
    /// writing goes on to the old file and the reply carries the error. The open may block (a
    /// slow filesystem), so call it off an async runtime, as the server does.
    pub fn reopen(&self) -> ReopenedFile {
        let one_at_a_time = lock(&self.shared.reopening);
        let (path, old_file, old) = {
            let inner = self.lock();
            (inner.path.clone(), inner.file.clone(), inner.id)
        };
        // The open runs with no lock that writers take, so lines keep flowing meanwhile.
        let opened = old_file
            .metadata()
            .map_err(OpenErrorKind::Io)
            .and_then(|meta| open_log(&path, Some(&meta)));
        drop(old_file);
        let reopened = match opened {
            Ok((file, id)) => {
                let mut inner = self.lock();
                let bytes_to_old = std::mem::replace(&mut inner.written, 0);
                let old_file = std::mem::replace(&mut inner.file, Arc::new(file));
                inner.id = id;
                inner.torn = false;
                drop(inner);
                // Closed here, outside the lock: a close can wait on a network filesystem.
                drop(old_file);
                Ok(ReopenedFile {
                    path,
                    old: Some(old),
                    new: Some(id),
                    bytes_to_old,
                    error: None,
                })
            }
            Err(kind) => Err((self.lock().written, kind, path)),
        };
        drop(one_at_a_time);
        reopened.unwrap_or_else(|(bytes_to_old, kind, path)| {
            // Only now, with no lock held: the daemon's own `tracing` output may go to this
            // very file, and would wait forever on a lock held here.
            tracing::warn!(path = %path.display(), "cannot reopen log file, still writing to the old one: {kind}");
            ReopenedFile {
                path,
                old: Some(old),
                new: None,
                bytes_to_old,
                error: Some(kind.to_string()),
            }
        })
    }

    /// Moves writing to another path (after a reload changed it), under the same rules as
    /// [`LogFile::open`]. The new file is opened first; on error nothing changes.
    pub fn switch_to(&self, path: impl Into<PathBuf>) -> Result<(), OpenError> {
        let path = absolute(path.into());
        let _one_at_a_time = lock(&self.shared.reopening);
        let opened = open_log(&path, None).map_err(|kind| OpenError {
            path: path.clone(),
            kind,
        })?;
        let old = std::mem::replace(&mut *self.lock(), Inner::new(path, opened));
        // Closed outside the lock.
        drop(old);
        Ok(())
    }

    /// A writer that buffers and writes whole lines; what [`MakeWriter`] hands out.
    ///
    /// [`MakeWriter`]: tracing_subscriber::fmt::MakeWriter
    pub fn writer(&self) -> LineWriter<'_> {
        LineWriter {
            shared: &self.shared,
            pending: Vec::new(),
        }
    }
}

// A writer that panicked mid-write leaves a usable Inner: keep logging.
use crate::panic::lock;

/// Writes `bytes` whole or not at all; see [`LogFile`].
fn append(shared: &Shared, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut inner = lock(&shared.inner);
    let mended;
    let out = if inner.torn {
        mended = [b"\n", bytes].concat();
        &mended[..]
    } else {
        bytes
    };
    let mut done = 0;
    let mut file = &*inner.file;
    let failure = loop {
        if done == out.len() {
            break None;
        }
        match file.write(&out[done..]) {
            Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    let Some(err) = failure else {
        inner.written += done as u64;
        inner.torn = false;
        return Ok(());
    };
    // A short write then an error (ENOSPC): cut off the part written, so that the caller's
    // retry of the whole line does not follow a fragment of itself. Only on this path, so a
    // line costs no extra syscall. Appends happen only under this lock, so the file grew by
    // exactly `done` bytes (unless another process appends to it too).
    if done > 0 && cut_off(file, done as u64).is_err() {
        inner.written += done as u64;
        inner.torn = true;
    }
    Err(err)
}

fn cut_off(file: &File, tail: u64) -> io::Result<()> {
    let size = file.metadata()?.len();
    let Some(before) = size.checked_sub(tail) else {
        return Err(io::Error::other(
            "the file is shorter than what was written",
        ));
    };
    file.set_len(before)
}

/// Buffers `buf` into `pending` and writes out every complete line.
fn buffer_lines(shared: &Shared, pending: &mut Vec<u8>, buf: &[u8]) -> io::Result<usize> {
    let before = pending.len();
    pending.extend_from_slice(buf);
    let complete = match pending.iter().rposition(|&b| b == b'\n') {
        Some(last_newline) => last_newline + 1,
        None if pending.len() > MAX_PENDING => pending.len(),
        None => return Ok(buf.len()),
    };
    match append(shared, &pending[..complete]) {
        Ok(()) => {
            pending.drain(..complete);
            Ok(buf.len())
        }
        Err(err) => {
            // `Write` promises that an error took nothing: give `buf` back, so that a retry
            // does not write it twice; earlier lines stay for the next attempt.
            pending.truncate(before);
            Err(err)
        }
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        buffer_lines(&self.shared, &mut self.pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Kept on error, for the next flush.
        append(&self.shared, &self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A borrowed writer on a [`LogFile`] with its own line buffer, written out on drop.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
    pending: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        buffer_lines(self.shared, &mut self.pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        append(self.shared, &self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        self.writer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_made_absolute_at_open() {
        let dir = tempfile::tempdir().unwrap();
        // The same file, named relative to the current directory (no chdir: tests share it).
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count().saturating_sub(1));
        let relative = PathBuf::from(up)
            .join(dir.path().strip_prefix("/").unwrap())
            .join("r.log");
        assert!(relative.is_relative());
        let log = LogFile::open(&relative).unwrap();
        assert!(log.path().is_absolute(), "{}", log.path().display());
        assert_eq!(log.path().file_name(), relative.file_name());
        log.switch_to(&relative).unwrap();
        assert!(log.path().is_absolute());
    }
    use std::collections::HashMap;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    fn on_file(path: &str) -> LogFile {
        let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let id = id_of(&file.metadata().unwrap());
        LogFile::from_inner(Inner::new(path.into(), (file, id)))
    }

    /// Runs `f` on a thread and waits at most 10 s for it: what a deadlock would block forever.
    fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what} did not return within 10 s"))
    }

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn a_symlink_at_the_path_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = LogFile::open(&path).unwrap_err();
        assert!(matches!(err.kind, OpenErrorKind::Symlink), "{err}");
        assert!(err
            .to_string()
            .starts_with(&format!("{}: is a symbolic link", path.display())));

        // At a reopen too, and a dangling link is not created through either.
        std::fs::remove_file(&path).unwrap();
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &path).unwrap();
        let r = log.reopen();
        assert!(r.error.unwrap().starts_with("is a symbolic link"));
        log.write_line(b"x\n").unwrap();
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log.1")).unwrap(),
            "x\n"
        );
        assert!(log.switch_to(&path).is_err());
    }

    #[test]
    fn a_fifo_at_the_path_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        mkfifo(&path);
        let r = within_10s("a reopen on a FIFO", {
            let log = log.clone();
            move || log.reopen()
        });
        assert_eq!(r.error.as_deref(), Some("is a FIFO (named pipe), not a regular file; remove it, so that the file is created anew"));
        // A FIFO swapped in after the lstat: the open itself must not wait for a reader.
        let fifo = path.clone();
        let err = within_10s("an open of a FIFO", move || {
            open_flags(&fifo, OFlags::empty(), Mode::empty()).unwrap_err()
        });
        assert!(matches!(
            refusal(&path, err),
            OpenErrorKind::NotRegular("FIFO (named pipe)")
        ));
        // With a reader the open itself succeeds; what was opened is refused all the same.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .unwrap();
        let file = open_flags(&path, OFlags::empty(), Mode::empty()).unwrap();
        assert!(matches!(adopt(file), Err(OpenErrorKind::NotRegular(_))));
        drop(reader);
        assert!(within_10s("an open on a FIFO", move || LogFile::open(
            &path
        )
        .is_err()));
    }

    #[test]
    fn a_file_of_another_user_is_not_adopted() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&path, "").unwrap();
        let nobody = rustix::fs::Uid::from_raw(65534);
        rustix::fs::chown(&path, Some(nobody), None).unwrap();
        let r = log.reopen();
        assert!(r
            .error
            .unwrap()
            .starts_with("is owned by uid 65534, neither this daemon's uid 0 nor root"));
        // Root's own file, as logrotate's `create` makes it, is used.
        rustix::fs::chown(&path, Some(rustix::fs::Uid::ROOT), None).unwrap();
        assert_eq!(log.reopen().error, None);
    }

    #[test]
    fn reopen_after_rename_moves_writes_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        log.write_line(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        log.write_line(b"two\n").unwrap(); // still the old file, as with any renamed fd
        let r = log.reopen();
        assert_eq!(r.error, None);
        assert_ne!(r.old, r.new);
        assert_eq!(r.bytes_to_old, 8);
        log.write_line(b"three\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("a.log.1")).unwrap();
        assert_eq!(old, "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::create_dir(&path).unwrap(); // the path cannot be opened as a file now
        let r = log.reopen();
        assert!(r.error.is_some());
        assert_eq!(r.new, None);
        log.write_line(b"kept\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("a.log.1")).unwrap();
        assert_eq!(old, "kept\n");
    }

    #[test]
    fn a_file_created_by_logrotate_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        // What `create 0604 ...` does before postrotate runs.
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o604)).unwrap();
        let r = log.reopen();
        assert_eq!(r.error, None);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o604);
    }

    #[test]
    fn a_missing_file_is_created_like_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        assert_eq!(log.reopen().error, None);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn write_impl_keeps_a_line_made_of_pieces_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = LogFile::open(&path).unwrap();
        write!(log, "a={} ", 1).unwrap();
        // Nothing is written until the line is complete...
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        log.reopen();
        // ...so the whole line lands in the new file.
        writeln!(log, "b={}", 2).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a=1 b=2\n");
        write!(log, "tail").unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a=1 b=2\ntail");
    }

    #[test]
    fn a_failed_write_takes_nothing() {
        // /dev/full fails every write with ENOSPC, as a full disk does. `open` refuses a
        // device, so the handle is made by hand.
        let mut log = on_file("/dev/full");
        write!(log, "start ").unwrap(); // buffered: no line yet
        assert!(log.write(b"end\n").is_err());
        assert_eq!(
            log.pending, b"start ",
            "the failed piece is given back, once"
        );
        assert!(log.flush().is_err());
        assert_eq!(log.pending, b"start ", "kept for the next flush");
    }

    #[test]
    fn switch_to_moves_writing_and_failure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path().join("a.log")).unwrap();
        assert!(log.switch_to(dir.path().join("missing/dir/b.log")).is_err());
        assert_eq!(log.path(), dir.path().join("a.log"));
        log.switch_to(dir.path().join("b.log")).unwrap();
        log.write_line(b"x\n").unwrap();
        assert_eq!(log.path(), dir.path().join("b.log"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.log")).unwrap(),
            "x\n"
        );
    }

    /// Several threads write lines in several pieces each while the main thread renames and
    /// reopens over and over: every line must appear exactly once, whole, and each thread's
    /// lines in order across the files.
    #[test]
    fn concurrent_writers_and_rotations_lose_split_or_duplicate_nothing() {
        const THREADS: usize = 4;
        const LINES: usize = 3000;
        const MAX_ROTATIONS: usize = 500;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = LogFile::open(&path).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Two gates split each writer's lines into three phases. At each gate every writer
        // waits while the main thread rotates once more: the lines of different phases then
        // land in different files, whatever the scheduling, so the rotations provably fall in
        // the middle of the writing.
        const GATES: [usize; 2] = [LINES / 3, 2 * LINES / 3];
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = Arc::new(std::sync::Barrier::new(THREADS + 1));

        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut log = log.clone();
                let done = done.clone();
                let arrived = arrived.clone();
                let gate = gate.clone();
                std::thread::spawn(move || {
                    for n in 0..LINES {
                        if GATES.contains(&n) {
                            arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            gate.wait();
                        }
                        // Three writes per line, as `writeln!` with arguments does.
                        write!(log, "t={t} ").unwrap();
                        write!(log, "n={n} ").unwrap();
                        writeln!(log, "pad={}", "x".repeat(n % 50)).unwrap();
                        if n % 7 == 0 {
                            // The tracing path too: one event, one whole line.
                            let mut w = log.writer();
                            writeln!(w, "t={t} n={n} via=make_writer").unwrap();
                        }
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();

        let mut rotated = Vec::new();
        let rotate = |rotated: &mut Vec<PathBuf>| {
            let to = dir.path().join(format!("c.log.{}", rotated.len()));
            std::fs::rename(&path, &to).unwrap();
            assert_eq!(log.reopen().error, None);
            rotated.push(to);
        };
        let started = std::time::Instant::now();
        let limit = std::time::Duration::from_secs(60);
        for (i, _) in GATES.iter().enumerate() {
            // Rotate while the writers write, until all of them wait at this gate.
            while arrived.load(std::sync::atomic::Ordering::SeqCst) < THREADS * (i + 1) {
                assert!(started.elapsed() < limit, "writers never reached gate {i}");
                if rotated.len() < MAX_ROTATIONS {
                    rotate(&mut rotated);
                } else {
                    std::thread::yield_now();
                }
            }
            rotate(&mut rotated);
            gate.wait();
        }
        while done.load(std::sync::atomic::Ordering::SeqCst) < THREADS
            && rotated.len() < MAX_ROTATIONS
        {
            rotate(&mut rotated);
        }
        for w in writers {
            w.join().unwrap();
        }
        rotated.push(path);

        let mut seen: HashMap<(usize, usize, bool), usize> = HashMap::new();
        let mut last: HashMap<usize, usize> = HashMap::new();
        for file in &rotated {
            for line in std::fs::read_to_string(file).unwrap().lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                let t: usize = fields[0]
                    .strip_prefix("t=")
                    .expect(line)
                    .parse()
                    .expect(line);
                let n: usize = fields[1]
                    .strip_prefix("n=")
                    .expect(line)
                    .parse()
                    .expect(line);
                let via = fields[2] == "via=make_writer";
                if !via {
                    assert_eq!(
                        fields[2],
                        format!("pad={}", "x".repeat(n % 50)),
                        "split: {line:?}"
                    );
                    let prev = last.insert(t, n);
                    assert!(
                        prev.is_none_or(|p| p + 1 == n),
                        "out of order: {prev:?} then {line:?}"
                    );
                }
                *seen.entry((t, n, via)).or_default() += 1;
            }
        }
        let expected = THREADS * LINES + THREADS * LINES.div_ceil(7);
        assert_eq!(seen.len(), expected, "lines lost");
        assert!(seen.values().all(|&c| c == 1), "lines duplicated");
        let files_with_lines = rotated
            .iter()
            .filter(|f| std::fs::metadata(f).unwrap().len() > 0)
            .count();
        assert!(
            files_with_lines > GATES.len(),
            "rotations did not fall between the phases ({files_with_lines} files got lines)"
        );
    }
}
