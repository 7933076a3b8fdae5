//! A log file that `rotate` reopens without losing, splitting or duplicating a line.
//!
//! Give each [`LogFile`] to [`Builder::log_file`](crate::Builder::log_file) and the server
//! answers `rotate` by reopening it: the daemon writes no rotate code at all.
//!
//! Two ways of writing ([`WriteMode`]): one `write(2)` per line on the caller's thread (the
//! default), or lines buffered and written in batches by a thread of the file's own, for a
//! daemon that logs a lot or must never wait for its disk. Either way a rotation moves every
//! line whole into exactly one file. [`LogOptions::watch_rotation`] lets the file notice by
//! itself (inotify) that logrotate renamed it.
//!
//! The path is not trusted: whoever can write to the log directory can put anything there
//! between two rotations. A log file is only ever opened without following a symbolic link,
//! without blocking (a FIFO would otherwise stall the caller in `open`), and only adopted if it
//! is a regular file owned by the daemon's effective uid or root; see [`OpenErrorKind`].

mod buffer;
mod open;
mod options;
mod tally;
mod watch;
mod write;

use crate::noise::Throttle;
use buffer::Buffer;
pub use buffer::{FINAL_WRITE_BOUND, STALL_BOUND};
use control_api::text::escape_path;
use control_api::{FileId, ReopenedFile};
pub(crate) use open::describe;
use open::{absolute, id_of, open_log};
pub use open::{OpenError, OpenErrorKind};
pub use options::{LogOptions, WriteMode, DEFAULT_BUFFER_LIMIT, DEFAULT_FLUSH_INTERVAL};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
pub use watch::CREATE_GRACE;
pub use write::LineWriter;
use write::{flush_pending, write_out};

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
/// Lines are written whole: every line lands complete in exactly one file, from any number of
/// threads, even while `rotate` runs. How they are written depends on the [`WriteMode`]:
///
/// - [`WriteMode::Line`] (what [`LogFile::open`] gives): one `write(2)` per line, under a lock
///   that [`LogFile::reopen`] takes only to swap the file. When [`write_line`](Self::write_line)
///   returns `Ok` the line is in the file. A line lands whole or not at all: when a write fails
///   midway (a full disk), the part written is cut off again before the error is returned, so
///   the caller can retry the whole line; a stalled disk makes the caller wait.
/// - [`WriteMode::Buffered`] ([`LogFile::options`]): a line is copied into a bounded buffer and
///   a thread of the file's own writes the buffer out in batches (when it fills, at most the
///   flush interval after a line came, at [`flush`](Self::flush), at a reopen and when the
///   last handle is dropped). When the buffer is full, a logging call waits for room while
///   the writer keeps making progress, so a burst loses nothing; it never waits longer than
///   [`STALL_BOUND`] for a stalled disk: then, and while writes fail (a full disk), lines are
///   dropped and counted, and a `N lines dropped` line is written in their place once the disk
///   takes writes again. [`WriteMode::Buffered`] says exactly when a line can be lost.
///
/// A reopen first writes everything handed over so far to the old file, then moves writing to
/// the new one, so `bytes_to_old` is exact. If the new file cannot be opened, writing goes on to
/// the old one.
///
/// No lock is held while a `LogFile` logs through `tracing`, so the daemon's own `tracing`
/// output may go to the same file.
///
/// A `LogFile` is a cheap handle: clones share the file. Its [`Write`](io::Write)
/// implementation buffers until a newline (so `writeln!` with many pieces still writes one
/// whole line) and writes the rest on `flush` or drop; give each thread its own clone. It is also a `tracing_subscriber`
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
/// let reopened = log.reopen()?;
/// assert_ne!(reopened.old, reopened.new);
///
/// // Buffered, and following logrotate's renames by itself:
/// # let path = dir.path().join("busy.log");
/// let busy = LogFile::options().buffered().watch_rotation(true).open(&path)?;
/// busy.write_line(b"written by the file's own thread\n")?;
/// busy.flush()?; // on disk now, rather than within the flush interval
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogFile {
    core: Arc<Core>,
    /// The file's threads, stopped (after a last write) when the last handle is dropped.
    threads: Arc<Threads>,
    /// This handle's unfinished line (from [`Write`]): behind a lock only so that
    /// [`LogFile::flush`] on a shared handle writes it too; `write` takes `&mut self`, and
    /// reaches it without locking.
    pending: Mutex<Vec<u8>>,
}

#[derive(Debug)]
struct Core {
    /// Held through a whole reopen or switch so that two never interleave. Writers never take
    /// it: a reopen waiting on a slow `open` holds up no line.
    reopening: Mutex<Reopens>,
    /// Taken by every write to the file, and by a reopen to swap the file.
    inner: Mutex<Inner>,
    /// The path and the file being written, for whoever must not wait on `inner`: the writer
    /// thread holds that through a whole `write(2)`, which a stalled disk makes last forever,
    /// while `status` (on an async worker), `rotate` and the watch only need these names. Only
    /// a reopen or switch changes them, holding `reopening`; never held while taking a lock.
    current: Mutex<Current>,
    /// Where lines wait for the writer thread, in buffered mode.
    buffer: Option<Buffer>,
    /// Lines written and dropped.
    tally: tally::Tally,
    /// The rate limits of the lines this file says: whoever can write to its directory can
    /// make it say them as often as they like (a symbolic link swapped in, over and over).
    noise: LogNoise,
}

/// The throttles of a log file's own lines, one per kind.
#[derive(Debug)]
struct LogNoise {
    /// A reopen the watch tried, refused (a link, a FIFO, another user's file at the path).
    not_reopened: Arc<Throttle>,
    /// A reopen asked for (`rotate`, SIGHUP), refused: a throttle of its own, so that a
    /// directory writer's swaps, which the watch answers, cannot hide the answer to a rotate.
    not_reopened_on_request: Arc<Throttle>,
    /// A rename noticed and followed.
    reopened: Arc<Throttle>,
    /// The watch lost its directory, or found it again.
    watch: Arc<Throttle>,
    /// Writes started failing (buffered mode).
    writes_failing: Arc<Throttle>,
    /// Writes work again (buffered mode).
    writes_working: Arc<Throttle>,
}

impl LogNoise {
    fn new() -> LogNoise {
        LogNoise {
            not_reopened: Throttle::new("refused reopens of the log file"),
            not_reopened_on_request: Throttle::new("refused requested reopens of the log file"),
            reopened: Throttle::new("reopens of the log file after a rename"),
            watch: Throttle::new("changes of the log file's directory"),
            writes_failing: Throttle::new("failures of writes to the log file"),
            writes_working: Throttle::new("recoveries of writes to the log file"),
        }
    }
}

/// What a reopen must know of the reopens before it.
#[derive(Debug, Default)]
struct Reopens {
    /// A reopen the file made by itself on noticing a rename, which no `rotate` has reported:
    /// the `rotate` that logrotate's `postrotate` runs then reports it instead of reopening the
    /// same file twice.
    unreported: Option<Reopened>,
}

/// What [`Core::current`] holds.
#[derive(Debug, Clone)]
struct Current {
    path: PathBuf,
    id: FileId,
}

#[derive(Debug)]
struct Inner {
    /// Shared so that a reopen can read the old file's metadata without holding the lock.
    file: Arc<File>,
    /// Bytes written since this file was opened, reported by `rotate`.
    written: u64,
    /// The file ends in part of a line: a write failed midway and cutting it off failed too.
    /// The next write starts with a newline, so the fragment never merges with a whole line.
    torn: bool,
    /// Buffered mode: lines taken from the buffer and not yet written (a write failed), written
    /// before anything newer.
    carry: Vec<u8>,
}

impl Inner {
    fn new(file: File) -> Inner {
        Inner {
            file: Arc::new(file),
            written: 0,
            torn: false,
            carry: Vec::new(),
        }
    }
}

/// The threads of a buffered or watched file; none in line mode without a watch.
#[derive(Debug, Default)]
struct Threads {
    writer: Option<buffer::Writer>,
    watch: Option<watch::Watch>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.stop();
        }
        if let Some(writer) = self.writer.take() {
            writer.stop();
        }
    }
}

impl Clone for LogFile {
    /// Another handle on the same file, with a line buffer of its own, empty: an unfinished line
    /// stays with the handle that was given it, which writes it when flushed or dropped.
    fn clone(&self) -> Self {
        LogFile {
            core: self.core.clone(),
            threads: self.threads.clone(),
            pending: Mutex::default(),
        }
    }
}

impl LogFile {
    /// Opens `path` for appending in [`WriteMode::Line`], creating it with mode
    /// [`DEFAULT_LOG_MODE`] if needed. Refuses a symbolic link, anything but a regular file,
    /// and a file owned by another user than the daemon's effective uid or root
    /// ([`OpenErrorKind`]). For the buffered mode or a watch on renames, see
    /// [`LogFile::options`].
    pub fn open(path: impl Into<PathBuf>) -> Result<LogFile, OpenError> {
        LogOptions::default().open(path)
    }

    /// How to open a log file: [`WriteMode`], buffer size, flush interval, watch on renames.
    pub fn options() -> LogOptions {
        LogOptions::default()
    }

    fn with_options(
        path: PathBuf,
        opened: (File, FileId),
        options: &LogOptions,
    ) -> Result<LogFile, OpenError> {
        let current = Current {
            path: path.clone(),
            id: opened.1,
        };
        let core = Arc::new(Core {
            reopening: Mutex::new(Reopens::default()),
            inner: Mutex::new(Inner::new(opened.0)),
            current: Mutex::new(current),
            buffer: (options.mode == WriteMode::Buffered).then(|| Buffer::new(options)),
            tally: tally::Tally::new(options.counters.clone()),
            noise: LogNoise::new(),
        });
        let mut threads = Threads::default();
        let failed = |err: io::Error| OpenError {
            path: path.clone(),
            kind: OpenErrorKind::Io(err),
        };
        if core.buffer.is_some() {
            threads.writer = Some(buffer::Writer::spawn(&core).map_err(failed)?);
        }
        if options.watch {
            let watch = watch::Watch::spawn(&core, &path).map_err(|err| {
                let why = format!("cannot watch it for renames (inotify: {err})");
                failed(io::Error::new(err.kind(), why))
            })?;
            threads.watch = Some(watch);
        }
        Ok(LogFile {
            core,
            threads: Arc::new(threads),
            pending: Mutex::default(),
        })
    }

    /// The path written to. Never waits for the disk, not even on a stalled one.
    pub fn path(&self) -> PathBuf {
        self.core.current().path
    }

    /// The file being written (device and inode, as when it was opened), for `status` to
    /// compare with what the path names now. Never waits for the disk.
    pub(crate) fn file_id(&self) -> FileId {
        self.core.current().id
    }

    /// Appends `bytes` (one or more whole lines). In line mode: all of them, or, on error,
    /// none. In buffered mode: handed to the writer thread, waiting at most [`STALL_BOUND`] for
    /// room in a full buffer; never an error, but dropped (and counted) when the disk stalls or
    /// refuses writes.
    pub fn write_line(&self, bytes: &[u8]) -> io::Result<()> {
        self.core.append(bytes)
    }

    /// Writes out everything handed to this file so far, on this thread, and returns once it is
    /// in the file (or the error that kept it out; the lines stay buffered for the next try):
    /// this handle's unfinished line (from [`Write`](io::Write)) first, then whatever the file
    /// buffers (buffered mode). [`Write::flush`](io::Write::flush) is the same call.
    pub fn flush(&self) -> io::Result<()> {
        flush_pending(&self.core, &mut lock(&self.pending))
    }

    /// Lines dropped since the file was opened because the disk stalled or refused writes while
    /// the buffer was full (buffered mode).
    /// They are not in [`written_lines`](Self::written_lines).
    pub fn dropped_lines(&self) -> u64 {
        self.core.tally.dropped_lines()
    }

    /// Lines written to the file (to any file at its path, across reopens) since it was
    /// opened: in buffered mode only once the writer thread wrote them, never a line still
    /// waiting or dropped. Includes the `N lines dropped` notices, and whatever else was
    /// written through any handle (the daemon's own `tracing` lines too).
    pub fn written_lines(&self) -> u64 {
        self.core.tally.lines()
    }

    /// Bytes of [`written_lines`](Self::written_lines).
    pub fn written_bytes(&self) -> u64 {
        self.core.tally.bytes()
    }

    /// Opens the file at the path anew and moves writing to it; used by `rotate`. Everything
    /// handed over before is written to the old file first. On failure writing goes on to the
    /// old file, and the error says why and what the old file took. The open may block (a
    /// slow filesystem), so call it off an async runtime, as the server does.
    ///
    /// With [`LogOptions::watch_rotation`], the file may have reopened itself already on
    /// noticing the rename: then the path still names the file being written, and this reports
    /// that reopen (old and new file, bytes to the old one) instead of reopening again.
    pub fn reopen(&self) -> Result<Reopened, ReopenError> {
        let mut reopens = lock(&self.core.reopening);
        if let Some(done) = reopens.unreported.take() {
            if self.core.path_names_current_file() {
                return Ok(done);
            }
        }
        let reopened = self.core.reopen_locked();
        drop(reopens);
        reopened.inspect_err(|not| warn_not_reopened(&self.core.noise.not_reopened_on_request, not))
    }

    /// Moves writing to another path (after a reload changed it), under the same rules as
    /// [`LogFile::open`]. The new file is opened first; on error nothing changes. What was
    /// handed over before is written to the old file.
    pub fn switch_to(&self, path: impl Into<PathBuf>) -> Result<(), OpenError> {
        let path = absolute(path.into());
        let mut reopens = lock(&self.core.reopening);
        let opened = open_log(&path, None).map_err(|kind| OpenError {
            path: path.clone(),
            kind,
        })?;
        let (file, id) = opened;
        self.core.move_to(file, Current { path, id });
        reopens.unreported = None;
        drop(reopens);
        if let Some(watch) = &self.threads.watch {
            watch.retarget();
        }
        Ok(())
    }

    /// A writer that buffers and writes whole lines; what [`MakeWriter`] hands out.
    ///
    /// [`MakeWriter`]: tracing_subscriber::fmt::MakeWriter
    pub fn writer(&self) -> LineWriter<'_> {
        LineWriter {
            core: &self.core,
            pending: Vec::new(),
        }
    }
}

/// The reply for a reopen that failed, after saying so (rate-limited): only now, with no lock
/// held, since the daemon's own `tracing` output may go to this very file and would wait
/// forever on a lock held here.
fn warn_not_reopened(throttle: &Arc<Throttle>, not: &ReopenError) {
    if throttle.admit() {
        tracing::warn!(
            path = %escape_path(&not.path),
            "cannot reopen log file, still writing to the old one: {}",
            not.kind
        );
    }
}

/// A reopen that was made: the file at the path before and now (the same file when nothing
/// had moved it), and the bytes the old one took since it was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reopened {
    /// The path reopened.
    pub path: PathBuf,
    /// The file written before.
    pub old: FileId,
    /// The file written now.
    pub new: FileId,
    /// Bytes written to the old file, all of them before the switch.
    pub bytes_to_old: u64,
}

/// A reopen that failed: writing goes on to the old file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ReopenError {
    /// The path that was to be reopened.
    pub path: PathBuf,
    /// The file still written.
    pub old: FileId,
    /// Bytes written to it so far.
    pub bytes_to_old: u64,
    /// Why the file at the path was refused.
    pub kind: OpenErrorKind,
}

impl From<Reopened> for ReopenedFile {
    fn from(r: Reopened) -> ReopenedFile {
        ReopenedFile {
            path: r.path,
            old: Some(r.old),
            new: Some(r.new),
            bytes_to_old: r.bytes_to_old,
            error: None,
        }
    }
}

impl From<ReopenError> for ReopenedFile {
    fn from(e: ReopenError) -> ReopenedFile {
        ReopenedFile {
            error: Some(e.kind.to_string()),
            path: e.path,
            old: Some(e.old),
            new: None,
            bytes_to_old: e.bytes_to_old,
        }
    }
}

impl Core {
    /// Appends whole lines: written now in line mode, handed to the writer thread in buffered
    /// mode.
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &self.buffer {
            Some(buffer) => {
                // Only when there is something to count: an atomic add per line, on a cache
                // line the writer thread updates too, would cost more than the copy.
                let dropped = buffer.push(bytes);
                if dropped > 0 {
                    self.tally.dropped(dropped);
                }
                Ok(())
            }
            None => {
                write_out(&mut lock(&self.inner), bytes, false).map_err(|(_, err)| err)?;
                self.tally.wrote(bytes);
                Ok(())
            }
        }
    }

    /// Buffered mode: writes what an earlier attempt left, then what the buffer holds now, to
    /// the current file. Takes the file's lock from the caller, so that a reopen can write out
    /// the old file's lines and swap the file with no line slipping in between.
    fn write_out(&self, inner: &mut Inner) -> io::Result<()> {
        let Some(buffer) = &self.buffer else {
            return Ok(());
        };
        loop {
            // After a failure `carry` may hold more than the limit, and then the buffer is left
            // waiting: once `carry` is written, take the rest too, so that on `Ok` everything
            // handed over before the call is in the file (a reopen relies on it). At most twice:
            // the second take always takes.
            let took_all = buffer.take_into(&mut inner.carry);
            let mut carry = std::mem::take(&mut inner.carry);
            let result = write_out(inner, &carry, true);
            buffer.wrote(result.is_ok());
            match result {
                Ok(()) => {
                    self.tally.wrote(&carry);
                    // Empty, with the batch's allocation: the next take swaps it in as the
                    // buffer.
                    carry.clear();
                    inner.carry = carry;
                    if took_all {
                        return Ok(());
                    }
                }
                Err((kept, err)) => {
                    self.tally.wrote(&carry[..kept]);
                    carry.drain(..kept);
                    inner.carry = carry;
                    return Err(err);
                }
            }
        }
    }

    /// The path and the file being written, without waiting for a write.
    fn current(&self) -> Current {
        lock(&self.current).clone()
    }

    /// Whether the path names the file being written (so there is nothing to reopen).
    fn path_names_current_file(&self) -> bool {
        let Current { path, id } = self.current();
        std::fs::symlink_metadata(&path).is_ok_and(|meta| id_of(&meta) == id)
    }

    /// Reopens if the path no longer names the file being written, as the watch does on
    /// noticing a rename; the reopen is kept for the next `rotate` to report. True if it
    /// reopened; a failure is returned unsaid, for the caller to retry or report with
    /// [`warn_not_reopened`] (with no lock held).
    fn reopen_if_moved(&self) -> Result<bool, ReopenError> {
        let mut reopens = lock(&self.reopening);
        if self.path_names_current_file() {
            return Ok(false);
        }
        let done = self.reopen_locked()?;
        reopens.unreported = Some(done.clone());
        drop(reopens);
        if self.noise.reopened.admit() {
            tracing::info!(
                path = %escape_path(&done.path),
                "log file renamed: reopened it at its path"
            );
        }
        Ok(true)
    }

    /// Moves writing to `file`, at `current`, with `reopening` held by the caller; returns the
    /// bytes the old file took. Everything handed over before goes to the old file; what it
    /// does not take (a full disk) stays buffered and goes to the new one: nothing is lost.
    fn move_to(&self, file: File, current: Current) -> u64 {
        let mut inner = lock(&self.inner);
        let _ = self.write_out(&mut inner);
        let old = std::mem::replace(&mut *inner, Inner::new(file));
        inner.carry = old.carry;
        drop(inner);
        *lock(&self.current) = current;
        // Closed here, outside the lock: a close can wait on a network filesystem.
        drop(old.file);
        old.written
    }

    /// The reopen itself, with `reopening` held by the caller.
    fn reopen_locked(&self) -> Result<Reopened, ReopenError> {
        let Current { path, id: old } = self.current();
        let old_file = lock(&self.inner).file.clone();
        // The open runs with no lock that writers take, so lines keep flowing meanwhile.
        let opened = old_file
            .metadata()
            .map_err(OpenErrorKind::Io)
            .and_then(|meta| open_log(&path, Some(&meta)));
        drop(old_file);
        match opened {
            Ok((file, id)) => {
                let current = Current {
                    path: path.clone(),
                    id,
                };
                let bytes_to_old = self.move_to(file, current);
                Ok(Reopened {
                    path,
                    old,
                    new: id,
                    bytes_to_old,
                })
            }
            Err(kind) => {
                // The reply counts what the old file holds of the lines handed over so far.
                let mut inner = lock(&self.inner);
                let _ = self.write_out(&mut inner);
                Err(ReopenError {
                    path,
                    old,
                    bytes_to_old: inner.written,
                    kind,
                })
            }
        }
    }
}

// A writer that panicked mid-write leaves a usable Inner: keep logging.
use crate::panic::lock;

#[cfg(test)]
mod tests {
    use super::open::{adopt, open_flags, refusal};
    use super::*;
    use crate::test_util::{mkfifo, within_10s};
    use rustix::fs::{Mode, OFlags};
    use std::fs::Permissions;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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

    fn on_file(path: &str) -> LogFile {
        let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let id = id_of(&file.metadata().unwrap());
        LogFile::with_options(path.into(), (file, id), &LogOptions::default()).unwrap()
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
        let r = log.reopen().unwrap_err();
        assert!(r.kind.to_string().starts_with("is a symbolic link"));
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
        assert_eq!(r.unwrap_err().kind.to_string(), "is a FIFO (named pipe), not a regular file; remove it, so that the file is created anew");
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
        let refused = within_10s("an open on a FIFO", move || LogFile::open(&path).is_err());
        assert!(refused);
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
        let r = log.reopen().unwrap_err();
        assert!(r
            .kind
            .to_string()
            .starts_with("is owned by uid 65534, neither this daemon's uid 0 nor root"));
        // Root's own file, as logrotate's `create` makes it, is used.
        rustix::fs::chown(&path, Some(rustix::fs::Uid::ROOT), None).unwrap();
        log.reopen().unwrap();
    }

    /// The ways of writing every no-loss test runs in: line, buffered, each also watched
    /// (the watch may reopen before the test's own `reopen`, which must then report it).
    pub(super) fn every_mode() -> [(&'static str, LogOptions); 4] {
        let buffered = LogFile::options().buffered();
        [
            ("line", LogFile::options()),
            ("buffered", buffered.clone()),
            ("line, watched", LogFile::options().watch_rotation(true)),
            ("buffered, watched", buffered.watch_rotation(true)),
        ]
    }

    #[test]
    fn reopen_after_rename_moves_writes_to_a_new_file() {
        for (mode, options) in every_mode() {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            let path = dir.join("a.log");
            let log = options.open(&path).unwrap();
            log.write_line(b"one\n").unwrap();
            std::fs::rename(&path, dir.join("a.log.1")).unwrap();
            // Unless the watch already reopened, still the old file, as with any renamed fd.
            log.write_line(b"two\n").unwrap();
            let r = log.reopen().unwrap();
            assert_ne!(r.old, r.new);
            let old = std::fs::read_to_string(dir.join("a.log.1")).unwrap();
            assert_eq!(r.bytes_to_old, old.len() as u64, "exact");
            // A second rotate without a rename reopens the same file: old and new are one.
            let again = log.reopen().unwrap();
            assert_eq!(again.old, again.new);
            log.write_line(b"three\n").unwrap();
            log.flush().unwrap();
            let old = std::fs::read_to_string(dir.join("a.log.1")).unwrap();
            let new = std::fs::read_to_string(&path).unwrap();
            assert_eq!(old + &new, "one\ntwo\nthree\n");
            assert!(new.ends_with("three\n"));
            if log.threads.watch.is_none() {
                assert_eq!(
                    new, "three\n",
                    "without a watch, every line before `reopen` goes to the old file, every line after to the new"
                );
            }
            eprintln!("ok in mode {mode}");
        }
    }

    #[test]
    fn failed_reopen_keeps_the_old_file() {
        for (mode, options) in every_mode() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.log");
            let log = options.open(&path).unwrap();
            log.write_line(b"before\n").unwrap();
            // The path cannot be opened as a file now: a directory in the way.
            let tmp = dir.path().join("tmp");
            std::fs::create_dir(&tmp).unwrap();
            std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            let r = log.reopen().unwrap_err();
            assert_eq!(r.bytes_to_old, 7, "{mode}: counted before the warning");
            log.write_line(b"kept\n").unwrap();
            log.flush().unwrap();
            let old = std::fs::read_to_string(dir.path().join("a.log.1")).unwrap();
            assert_eq!(old, "before\nkept\n", "{mode}");
        }
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
        log.reopen().unwrap();
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
        log.reopen().unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn write_impl_keeps_a_line_made_of_pieces_together() {
        for (mode, options) in every_mode() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.log");
            let mut log = options.open(&path).unwrap();
            write!(log, "a={} ", 1).unwrap();
            // Nothing is written until the line is complete...
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "{mode}");
            std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
            log.reopen().unwrap();
            // ...so the whole line lands in the new file.
            writeln!(log, "b={}", 2).unwrap();
            Write::flush(&mut log).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "a=1 b=2\n",
                "{mode}"
            );
            write!(log, "tail").unwrap();
            // The last handle: its unfinished line and the file's buffer are written out.
            drop(log);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "a=1 b=2\ntail",
                "{mode}"
            );
        }
    }

    #[test]
    fn flush_means_one_thing_on_a_shared_handle_and_on_a_mutable_one() {
        for options in [LogFile::options(), LogFile::options().buffered()] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.log");
            let mut log = options.open(&path).unwrap();
            write!(log, "unfinished").unwrap();
            // A clone starts with nothing of it, and flushing the clone writes nothing of it.
            let clone = log.clone();
            clone.flush().unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
            // `flush` through `&`, as `log.flush()` resolves, writes the unfinished line...
            LogFile::flush(&log).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "unfinished");
            // ... and so does `Write::flush`, once.
            writeln!(log, " line").unwrap();
            Write::flush(&mut log).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "unfinished line\n");
        }
    }

    #[test]
    fn a_failed_write_takes_nothing() {
        // /dev/full fails every write with ENOSPC, as a full disk does. `open` refuses a
        // device, so the handle is made by hand.
        let mut log = on_file("/dev/full");
        write!(log, "start ").unwrap(); // buffered: no line yet
        assert!(log.write(b"end\n").is_err());
        assert_eq!(
            *log.pending.get_mut().unwrap(),
            b"start ",
            "the failed piece is given back, once"
        );
        assert!(Write::flush(&mut log).is_err());
        assert_eq!(
            *log.pending.get_mut().unwrap(),
            b"start ",
            "kept for the next flush"
        );
    }

    #[test]
    fn switch_to_moves_writing_and_failure_changes_nothing() {
        for (mode, options) in every_mode() {
            let dir = tempfile::tempdir().unwrap();
            let log = options.open(dir.path().join("a.log")).unwrap();
            log.write_line(b"a\n").unwrap();
            assert!(log.switch_to(dir.path().join("missing/dir/b.log")).is_err());
            assert_eq!(log.path(), dir.path().join("a.log"));
            log.switch_to(dir.path().join("b.log")).unwrap();
            log.write_line(b"x\n").unwrap();
            log.flush().unwrap();
            assert_eq!(log.path(), dir.path().join("b.log"));
            let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert_eq!(read("a.log"), "a\n", "{mode}: written before the switch");
            assert_eq!(read("b.log"), "x\n", "{mode}");
        }
    }

    /// Several threads write lines in several pieces each while the main thread renames and
    /// reopens over and over: every line must appear exactly once, whole, and each thread's
    /// lines in order across the files.
    #[test]
    fn concurrent_writers_and_rotations_lose_split_or_duplicate_nothing() {
        for (mode, options) in every_mode() {
            concurrent_writers_and_rotations_in(options);
            eprintln!("ok in mode {mode}");
        }
    }

    fn concurrent_writers_and_rotations_in(options: LogOptions) {
        const THREADS: usize = 4;
        const LINES: usize = 3000;
        const MAX_ROTATIONS: usize = 500;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let log = options.open(&path).unwrap();
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
            log.reopen().unwrap();
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
        log.flush().unwrap();
        rotated.push(path);

        let mut seen: HashMap<(usize, usize, bool), usize> = HashMap::new();
        let mut last: HashMap<usize, usize> = HashMap::new();
        for file in &rotated {
            for line in std::fs::read_to_string(file).unwrap().lines() {
                let fields: Vec<&str> = line.split(' ').collect();
                let number = |i: usize, key| -> usize {
                    fields[i]
                        .strip_prefix(key)
                        .expect(line)
                        .parse()
                        .expect(line)
                };
                let (t, n) = (number(0, "t="), number(1, "n="));
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
