//! How a [`LogFile`] is opened: its [`WriteMode`], its buffer, and whether it watches for
//! renames.

use super::{absolute, open_log, LogFile, OpenError};
use std::path::PathBuf;
use std::time::Duration;

/// How lines reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// One `write(2)` per line, on the caller's thread: a line is in the file when the call
    /// returns, an error (a full disk) goes to the caller with nothing written, and a stalled
    /// disk makes the caller wait. Nothing is lost when the process dies. The default.
    #[default]
    Line,
    /// Lines are copied into a bounded buffer that a thread of the file's own writes out in
    /// batches: no system call per line, and a logging call never waits for a stalled disk.
    ///
    /// When a line can be lost, and nowhere else:
    /// - **The disk stalls or refuses writes.** A logging call that finds the buffer full
    ///   waits for room while the writer thread keeps taking lines and finishing writes (a
    ///   burst on a busy machine loses nothing); when neither happened for
    ///   [`STALL_BOUND`](crate::log_file::STALL_BOUND) (200 ms), or writes fail (a full disk),
    ///   it drops its line instead, and so does every call after it, at once, until a write
    ///   completes. Dropped lines are counted ([`LogFile::dropped_lines`], never in
    ///   [`LogFile::written_lines`]), and a `N lines dropped` line is written in their place.
    ///   A single line longer than the buffer is dropped the same way.
    /// - **The process dies without writing them out** (a crash, SIGKILL, an abort): at most
    ///   the flush interval's worth. A server's shutdown writes out the log files registered
    ///   with it ([`Builder::log_file`](crate::Builder::log_file)), and dropping the last
    ///   handle writes out the rest, each waiting at most a bound for a stalled disk (the
    ///   shutdown grace; [`FINAL_WRITE_BOUND`](crate::log_file::FINAL_WRITE_BOUND), 5 s).
    Buffered,
}

/// Options for [`LogFile::options`]; [`open`](LogOptions::open) opens the file.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub(super) mode: WriteMode,
    pub(super) buffer_limit: usize,
    pub(super) flush_interval: Duration,
    pub(super) watch: bool,
    pub(super) counters: Option<super::tally::LineCounters>,
}

/// Buffered mode: how many bytes may wait for the writer thread before a logging call waits
/// for room (or, on a stalled disk, drops its line).
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;
/// Buffered mode: the longest a line waits before the writer thread writes it.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            mode: WriteMode::Line,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            watch: false,
            counters: None,
        }
    }
}

impl LogOptions {
    /// How lines reach the file; [`WriteMode::Line`] unless set.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Shorthand for `.mode(WriteMode::Buffered)`.
    pub fn buffered(self) -> Self {
        self.mode(WriteMode::Buffered)
    }

    /// Buffered mode: bytes that may wait for the writer thread before a logging call waits for
    /// room, or drops its line on a stalled disk ([`DEFAULT_BUFFER_LIMIT`], 1 MiB, unless set;
    /// at least 4 KiB). While a write is failing,
    /// up to three times this much is held: the batch being retried, and what came meanwhile.
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes.max(4096);
        self
    }

    /// Buffered mode: the longest a line waits before it is written
    /// ([`DEFAULT_FLUSH_INTERVAL`], 100 ms, unless set; between 1 ms and 1 s). A full batch is
    /// written at once.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.clamp(Duration::from_millis(1), Duration::from_secs(1));
        self
    }

    /// Notice by itself that the file was renamed or removed (by logrotate) and reopen at the
    /// path, with no `ctl rotate`: an inotify watch on the file and its directory, which wakes
    /// only when a name in that directory changes, never per line and never while nothing
    /// happens. When the file is gone from the path, the reopen waits up to [`CREATE_GRACE`]
    /// for logrotate's `create` to make the new one, then creates it itself. `rotate` still
    /// works, and reports the reopen the file already made rather than reopening twice.
    /// Cannot follow `copytruncate`, which keeps the same file. Opening fails if the watch cannot
    /// be set up (no inotify, or `fs.inotify.max_user_instances` reached: each watched file
    /// uses one instance): open without it, and rely on `rotate`, if that is acceptable.
    ///
    /// [`CREATE_GRACE`]: crate::log_file::CREATE_GRACE
    pub fn watch_rotation(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Counts the file's lines in `counters` too, for `ctl counters`: `PREFIX.lines_written`
    /// and `PREFIX.bytes_written` (what reached the file, as [`LogFile::written_lines`] counts
    /// it) and `PREFIX.lines_dropped` (buffered mode: dropped for a full buffer, never written).
    ///
    /// # Panics
    ///
    /// As [`Counters::counter`](crate::Counters::counter), if `PREFIX.lines_written` is not a
    /// valid counter name or is already a gauge.
    pub fn counters(mut self, counters: &crate::Counters, prefix: &str) -> Self {
        self.counters = Some(super::tally::LineCounters {
            lines: counters.counter(
                &format!("{prefix}.lines_written"),
                "Lines written to the log file (the daemon's own log lines included)",
            ),
            bytes: counters.counter(
                &format!("{prefix}.bytes_written"),
                "Bytes of lines written to the log file",
            ),
            dropped: counters.counter(
                &format!("{prefix}.lines_dropped"),
                "Lines dropped, never written: the disk stalled or refused writes while the buffer was full",
            ),
        });
        self
    }

    /// Opens `path` as [`LogFile::open`] does, with these options.
    pub fn open(self, path: impl Into<PathBuf>) -> Result<LogFile, OpenError> {
        let path = absolute(path.into());
        let opened = open_log(&path, None).map_err(|kind| OpenError {
            path: path.clone(),
            kind,
        })?;
        LogFile::with_options(path, opened, &self)
    }
}
