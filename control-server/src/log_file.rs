//! A log file that `rotate` reopens without losing, splitting or duplicating a line.
//!
//! Give each [`LogFile`] to [`Builder::log_file`](crate::Builder::log_file) and the server
//! answers `rotate` by reopening it: the daemon writes no rotate code at all.

use control_api::{FileId, ReopenedFile};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
/// Lines are written whole, each with one `write(2)` under a lock that [`LogFile::reopen`] also
/// takes: every line lands complete in exactly one file, from any number of threads, even
/// while `rotate` runs. If the new file cannot be opened, writing goes on to the old one.
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
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct LogFile {
    shared: Arc<Mutex<Inner>>,
    /// This handle's unfinished line.
    pending: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: File,
    id: FileId,
    /// Bytes written since this file was opened, reported by `rotate`.
    written: u64,
}

impl Inner {
    fn open(path: PathBuf) -> io::Result<Inner> {
        let file = match open_append(&path, None) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match open_append(&path, Some(DEFAULT_LOG_MODE)) {
                    // Created by someone else in between: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open_append(&path, None),
                    other => other,
                }
            }
            other => other,
        }?;
        Ok(Inner {
            id: file_id(&file)?,
            path,
            file,
            written: 0,
        })
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

fn file_id(file: &File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

fn open_append(path: &Path, create_mode: Option<u32>) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true);
    if let Some(mode) = create_mode {
        options.create_new(true).mode(mode);
    }
    options.open(path)
}

/// Opens the file now at `path` for a reopen: as it is if it exists, else created like `old`.
fn open_like(path: &Path, old: &File) -> io::Result<File> {
    // Two tries: logrotate may create the file between our two calls.
    for _ in 0..2 {
        match open_append(path, None) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let old_meta = old.metadata()?;
        let mode = old_meta.mode() & 0o7777;
        match open_append(path, Some(mode)) {
            Ok(file) => {
                // The umask narrowed the mode at creation; set it exactly. The owner can only
                // be carried over when running as root; otherwise the file is ours anyway.
                file.set_permissions(Permissions::from_mode(mode))?;
                let _ = rustix::fs::fchown(
                    &file,
                    Some(rustix::fs::Uid::from_raw(old_meta.uid())),
                    Some(rustix::fs::Gid::from_raw(old_meta.gid())),
                );
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    open_append(path, None)
}

impl LogFile {
    /// Opens `path` for appending, creating it with mode [`DEFAULT_LOG_MODE`] if needed.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<LogFile> {
        Ok(LogFile {
            shared: Arc::new(Mutex::new(Inner::open(path.into())?)),
            pending: Vec::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    /// The path written to.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Appends `bytes` (one or more whole lines) in one piece.
    pub fn write_line(&self, bytes: &[u8]) -> io::Result<()> {
        append(&self.shared, bytes)
    }

    /// Opens the file at the path anew and moves writing to it; used by `rotate`. On failure
    /// writing goes on to the old file and the reply carries the error.
    pub fn reopen(&self) -> ReopenedFile {
        let mut inner = self.lock();
        let old = inner.id;
        let reopened =
            open_like(&inner.path, &inner.file).and_then(|file| Ok((file_id(&file)?, file)));
        match reopened {
            Ok((id, file)) => {
                let bytes_to_old = std::mem::replace(&mut inner.written, 0);
                inner.file = file;
                inner.id = id;
                ReopenedFile {
                    path: inner.path.clone(),
                    old: Some(old),
                    new: Some(id),
                    bytes_to_old,
                    error: None,
                }
            }
            Err(err) => {
                tracing::warn!(path = %inner.path.display(), "cannot reopen log file, still writing to the old one: {err}");
                ReopenedFile {
                    path: inner.path.clone(),
                    old: Some(old),
                    new: None,
                    bytes_to_old: inner.written,
                    error: Some(err.to_string()),
                }
            }
        }
    }

    /// Moves writing to another path (after a reload changed it). The new file is opened
    /// first; on error nothing changes.
    pub fn switch_to(&self, path: impl Into<PathBuf>) -> io::Result<()> {
        let fresh = Inner::open(path.into())?;
        *self.lock() = fresh;
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

fn lock(shared: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A writer that panicked mid-write leaves a usable Inner: keep logging.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn append(shared: &Mutex<Inner>, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut inner = lock(shared);
    inner.file.write_all(bytes)?;
    inner.written += bytes.len() as u64;
    Ok(())
}

/// Buffers `buf` into `pending` and writes out every complete line.
fn buffer_lines(shared: &Mutex<Inner>, pending: &mut Vec<u8>, buf: &[u8]) -> io::Result<usize> {
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
    shared: &'a Mutex<Inner>,
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
    use std::collections::HashMap;

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
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let mut log = LogFile::open("/dev/full").unwrap();
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

        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut log = log.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    for n in 0..LINES {
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
        // Rotate for as long as the writers write (bounded).
        for i in 0..MAX_ROTATIONS {
            if done.load(std::sync::atomic::Ordering::SeqCst) == THREADS {
                break;
            }
            let to = dir.path().join(format!("c.log.{i}"));
            std::fs::rename(&path, &to).unwrap();
            assert_eq!(log.reopen().error, None);
            rotated.push(to);
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
            files_with_lines >= 3,
            "rotations did not overlap the writing ({files_with_lines} files got lines)"
        );
    }
}
