//! Buffered mode: lines wait in a bounded buffer; a thread of the file's own writes them out.
//!
//! A logging call only takes the buffer's lock to copy its line in, and wakes the writer only
//! when the buffer was empty (to start the flush interval), just filled a batch, or dropped its
//! first line (only a write ends the dropping): no system call per line. The writer takes the
//! whole buffer at once (an O(1) swap) while holding the file's lock, so a reopen, which takes
//! that lock too, finds every line either written or still in the buffer, never in between.
//!
//! A full buffer is not a stalled disk. On a busy machine the loggers can simply outrun the
//! writer for the CPU; a logging call that finds the buffer full then waits for room, for as
//! long as the writer keeps taking lines or finishing writes, each within [`STALL_BOUND`]. Only
//! when neither happened for that long (the disk stalls) or writes fail are lines dropped and
//! counted, at once and by every caller, without waiting, until a write completes again.

use super::{lock, Core, LogOptions};
use control_api::text::escape_path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime};

/// Largest batch: the writer is woken as soon as this much waits.
const MAX_BATCH: usize = 64 * 1024;

/// Buffered mode: the longest a logging call waits for room in a full buffer without the
/// writer thread taking lines or finishing a write. Past it the disk counts as stalled: the
/// line is dropped and counted, and so is every line until a write completes, with no wait.
pub const STALL_BOUND: Duration = Duration::from_millis(200);

/// How long dropping the last handle waits for the writer thread's final write; past it (a
/// stalled disk) the thread is left to finish, or not, on its own.
pub const FINAL_WRITE_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Buffer {
    state: Mutex<State>,
    /// The writer thread sleeps here.
    wake: Condvar,
    /// Logging calls that found the buffer full sleep here, until the writer takes it.
    room: Condvar,
    /// Bytes that may wait before a logging call waits for room.
    limit: usize,
    /// Bytes that make a batch worth writing at once.
    batch: usize,
    interval: Duration,
    /// The writer thread: its own lines (warnings about this file) never wait for room, since
    /// only it could make some.
    writer: OnceLock<ThreadId>,
}

#[derive(Debug, Default)]
struct State {
    bytes: Vec<u8>,
    /// When the oldest line in `bytes` came: the writer writes it at most an interval later.
    first: Option<Instant>,
    /// Lines dropped since the buffer was last taken. While not zero, every line is dropped, so
    /// that all of them fall between what was taken and what comes after the notice.
    dropped: u64,
    /// When the writer last took lines or finished a write.
    active_at: Option<Instant>,
    /// No sign of the writer within [`STALL_BOUND`] while the buffer was full, or writes fail:
    /// lines are dropped without waiting until a write completes.
    stalled: bool,
    /// The last handle is gone: write out and end.
    stop: bool,
    /// What the writer thread is doing, so that a logging call makes the system call that wakes
    /// it only when it sleeps and the line is what it waits for.
    writer_is: WriterIs,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum WriterIs {
    /// Writing, or about to look at the buffer again: it needs no wake-up.
    #[default]
    Busy,
    /// Waiting, with a timeout, for a batch to fill or for lines to come.
    Waiting,
    /// Asleep on an empty buffer until woken: an idle daemon's file never wakes it.
    Asleep,
}

impl Buffer {
    pub(super) fn new(options: &LogOptions) -> Buffer {
        let batch = (options.buffer_limit / 4).min(MAX_BATCH);
        Buffer {
            state: Mutex::new(State {
                bytes: Vec::with_capacity(batch),
                ..State::default()
            }),
            wake: Condvar::new(),
            room: Condvar::new(),
            limit: options.buffer_limit,
            batch,
            interval: options.flush_interval,
            writer: OnceLock::new(),
        }
    }

    /// Copies whole lines in. When the buffer is full, waits for room while the writer makes
    /// progress (see the module's doc); drops and counts them when the disk stalls or fails.
    /// Returns how many lines it dropped (for the file's tally).
    pub(super) fn push(&self, bytes: &[u8]) -> u64 {
        let mut state = lock(&self.state);
        if state.bytes.len() + bytes.len() > self.limit
            && bytes.len() <= self.limit
            && self.writer.get() != Some(&std::thread::current().id())
        {
            state = self.wait_for_room(state, bytes.len());
        }
        if state.dropped > 0 || state.bytes.len() + bytes.len() > self.limit {
            // The first drop wakes the writer: it may be asleep on an empty buffer (a single
            // line larger than the limit), and only a write ends the dropping, with the notice.
            let first = state.dropped == 0;
            let lines = bytes.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
            state.dropped += lines;
            drop(state);
            if first {
                self.wake.notify_one();
            }
            return lines;
        }
        let before = state.bytes.len();
        if before == 0 {
            state.first = Some(Instant::now());
        }
        state.bytes.extend_from_slice(bytes);
        let wake = match state.writer_is {
            WriterIs::Busy => false,
            WriterIs::Waiting => before < self.batch && state.bytes.len() >= self.batch,
            WriterIs::Asleep => true,
        };
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        0
    }

    /// Waits until `len` more bytes fit, the buffer drops anyway, or the writer showed no sign
    /// of progress for [`STALL_BOUND`] (then marks the disk stalled).
    fn wait_for_room<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        len: usize,
    ) -> MutexGuard<'a, State> {
        let start = Instant::now();
        if state.writer_is != WriterIs::Busy {
            self.wake.notify_one();
        }
        loop {
            if state.stalled
                || state.dropped > 0
                || state.stop
                || state.bytes.len() + len <= self.limit
            {
                return state;
            }
            let since = state.active_at.map_or(start, |at| at.max(start));
            let now = Instant::now();
            let Some(left) = (since + STALL_BOUND).checked_duration_since(now) else {
                state.stalled = true;
                return state;
            };
            state = self
                .room
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A write of what was taken finished (`Ok`) or failed: progress ends a stall, a failure
    /// starts one, so that nobody waits for room on a disk that refuses writes.
    pub(super) fn wrote(&self, ok: bool) {
        let mut state = lock(&self.state);
        state.active_at = Some(Instant::now());
        state.stalled = !ok;
        drop(state);
        self.room.notify_all();
    }

    /// Moves what waits into `carry` (behind what an earlier write left there), followed by the
    /// notice of lines dropped meanwhile. Leaves it waiting while `carry` already holds more
    /// than the limit: memory stays bounded while the disk fails. False if it left it so.
    pub(super) fn take_into(&self, carry: &mut Vec<u8>) -> bool {
        if carry.len() > self.limit {
            return false;
        }
        let mut state = lock(&self.state);
        if carry.is_empty() {
            // The empty `carry` keeps the last batch's allocation: it becomes the buffer.
            std::mem::swap(carry, &mut state.bytes);
        } else {
            carry.extend_from_slice(&state.bytes);
            state.bytes.clear();
        }
        state.first = None;
        state.active_at = Some(Instant::now());
        let dropped = std::mem::take(&mut state.dropped);
        drop(state);
        // Room for everyone who waited.
        self.room.notify_all();
        if dropped > 0 {
            carry.extend_from_slice(self.notice(dropped).as_bytes());
        }
        true
    }

    /// The line that stands for `dropped` lines, shaped like a `tracing` line.
    fn notice(&self, dropped: u64) -> String {
        format!(
            "{}  WARN control_server::log_file: {dropped} lines dropped: the disk took no write \
             for {} ms or refused them (buffer of {} bytes full)\n",
            humantime::format_rfc3339_micros(SystemTime::now()),
            STALL_BOUND.as_millis(),
            self.limit
        )
    }
}

/// The writer thread of a buffered file.
#[derive(Debug)]
pub(super) struct Writer {
    core: Arc<Core>,
    thread: std::thread::JoinHandle<()>,
    /// Receives once the thread has ended (its sender dropped). In a mutex only to be `Sync`.
    ended: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Writer {
    pub(super) fn spawn(core: &Arc<Core>) -> std::io::Result<Writer> {
        let (tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let core = core.clone();
                move || {
                    let _ended = tx;
                    write_batches(&core)
                }
            })?;
        Ok(Writer {
            core: core.clone(),
            thread,
            ended: Mutex::new(ended),
        })
    }

    /// Has the thread write out what is buffered, and waits for it to end, at most
    /// [`FINAL_WRITE_BOUND`]: on a stalled disk its last write may never return, and the last
    /// handle's owner (a daemon on its way out) must not wait with it.
    pub(super) fn stop(self) {
        if let Some(buffer) = &self.core.buffer {
            lock(&buffer.state).stop = true;
            buffer.wake.notify_one();
        }
        // The last handle can go on the writer thread itself (a handle made by a `tracing`
        // writer for the thread's own warning): it sees `stop` on its next round, unjoined.
        if self.thread.thread().id() == std::thread::current().id() {
            return;
        }
        let ended = lock(&self.ended).recv_timeout(FINAL_WRITE_BOUND);
        match ended {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Said on stderr, not through `tracing`: the daemon's log may be this file.
                eprintln!(
                    "log file {}: the last write did not finish within {:?} (a stalled disk?); \
                     lines still buffered may be lost",
                    escape_path(&self.core.current().path),
                    FINAL_WRITE_BOUND
                );
            }
            _ => {
                let _ = self.thread.join();
            }
        }
    }
}

fn wait<'a>(wake: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    wake.wait(state).unwrap_or_else(PoisonError::into_inner)
}

fn write_batches(core: &Core) {
    let Some(buffer) = &core.buffer else { return };
    let _ = buffer.writer.set(std::thread::current().id());
    let mut failing = false;
    loop {
        let mut state = lock(&buffer.state);
        let nothing =
            |state: &State| !state.stop && !failing && state.bytes.is_empty() && state.dropped == 0;
        // Nothing to write: a flush interval's wait first, so that the lines that come in it
        // need no wake-up (a system call for the logging thread), then asleep until woken.
        let idle_from = Instant::now();
        while nothing(&state) {
            let waited = idle_from.elapsed();
            if waited >= buffer.interval {
                state.writer_is = WriterIs::Asleep;
                state = wait(&buffer.wake, state);
            } else {
                state.writer_is = WriterIs::Waiting;
                state = buffer
                    .wake
                    .wait_timeout(state, buffer.interval - waited)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        state.writer_is = WriterIs::Waiting;
        // Let a batch gather, until the flush interval after its first line; while the disk
        // fails, try again once per interval.
        let deadline = match (failing, state.first) {
            (false, Some(first)) => first + buffer.interval,
            _ => Instant::now() + buffer.interval,
        };
        while !state.stop && (failing || state.bytes.len() < buffer.batch) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = buffer
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.writer_is = WriterIs::Busy;
        let stop = state.stop;
        drop(state);
        let mut inner = lock(&core.inner);
        let result = core.write_out(&mut inner);
        // The path, when the writes start or stop failing.
        drop(inner);
        let path = (result.is_err() != failing).then(|| core.current().path);
        // Said with no lock held: these lines may go into this very file.
        match (result, path) {
            (Err(err), Some(path)) => {
                failing = true;
                if core.noise.writes_failing.admit() {
                    tracing::warn!(
                        path = %escape_path(&path),
                    "cannot write to log file, keeping up to {} bytes of lines and then \
                     dropping and counting them until it takes writes again: {err}",
                    buffer.limit
                    );
                }
            }
            (Ok(()), Some(path)) => {
                failing = false;
                if core.noise.writes_working.admit() {
                    tracing::info!(path = %escape_path(&path), "log file takes writes again");
                }
            }
            _ => {}
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{id_of, lock, LogFile, LogOptions};
    use crate::test_util::{mkfifo, within_10s};
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Polls `check` until it holds, for at most 10 s.
    fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::yield_now();
        }
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    fn line(n: usize) -> Vec<u8> {
        format!("n={n} {}\n", "x".repeat(90)).into_bytes()
    }

    /// One line larger than the whole buffer, into an empty buffer: it is dropped and counted,
    /// the notice takes its place without a flush, and the lines after it reach the file.
    #[test]
    fn a_line_larger_than_the_buffer_does_not_silence_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let log = LogFile::options()
            .buffered()
            .buffer_limit(4096)
            .open(&path)
            .unwrap();
        let read = || std::fs::read_to_string(&path).unwrap();
        // A first line written: the writer thread is then asleep on the empty buffer.
        log.write_line(b"first\n").unwrap();
        wait_for("the first line", || read() == "first\n");
        let mut big = "x".repeat(5000).into_bytes();
        big.push(b'\n');
        log.write_line(&big).unwrap();
        assert_eq!(log.dropped_lines(), 1);
        // No flush: the writer thread alone must write the notice...
        wait_for("the notice for the oversized line, without a flush", || {
            read().contains("lines dropped")
        });
        // ...and the lines after it.
        log.write_line(b"after\n").unwrap();
        wait_for("the line after the oversized one", || {
            read().contains("after")
        });
        let text = read();
        let counted: u64 = text
            .lines()
            .filter_map(|l| l.split_once(" lines dropped"))
            .map(|(head, _)| head.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(counted, log.dropped_lines(), "{text}");
        assert!(text.ends_with("after\n"), "{text}");
        assert!(!text.contains("xxx"), "{text}");
    }

    /// A burst from four threads flat out, with the default options, on a disk that keeps up:
    /// the loggers outrun the writer for the CPU and fill the buffer, and then wait for room
    /// rather than drop. Every line handed over is in the file, and counted as written.
    #[test]
    fn a_burst_from_four_threads_on_a_disk_that_keeps_up_loses_nothing() {
        const THREADS: usize = 4;
        const LINES: usize = 50_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("burst.log");
        let log = LogFile::options().buffered().open(&path).unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let log = &log;
                s.spawn(move || {
                    for n in 0..LINES {
                        let line = format!("t={t} n={n} {}\n", "x".repeat(90));
                        log.write_line(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            log.dropped_lines(),
            0,
            "lines dropped on a disk that kept up"
        );
        assert!(!text.contains("lines dropped"));
        assert_eq!(text.lines().count(), THREADS * LINES);
        assert_eq!(log.written_lines(), (THREADS * LINES) as u64);
    }

    /// A writer that cannot write (here: the file's lock held, as a write stuck on a frozen
    /// disk holds it): a logging call into the full buffer waits at most the stall bound, then
    /// every line is dropped without waiting, and counted; once the writer goes on, the notice
    /// says how many, and the lines after it arrive.
    #[test]
    fn a_stalled_writer_makes_lines_drop_after_the_bound_and_never_blocks_a_logger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stalled.log");
        let log = LogFile::options()
            .buffered()
            .buffer_limit(4096)
            .open(&path)
            .unwrap();
        let stuck = lock(&log.core.inner);
        let logger = {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 0..1000 {
                    log.write_line(&line(n)).unwrap();
                }
                log.dropped_lines()
            })
        };
        // Bounded: a logger waiting for a writer that cannot write would never end.
        wait_for("the logger to return while the writer is stuck", || {
            logger.is_finished()
        });
        let dropped = logger.join().unwrap();
        assert!(
            dropped > 900,
            "only {dropped} of 1000 dropped: the rest fit in 4 KiB"
        );
        assert!(lock(&log.core.buffer.as_ref().unwrap().state).stalled);
        drop(stuck);
        // The first write after the stall carries the notice; the lines after it arrive.
        log.flush().unwrap();
        log.write_line(b"after\n").unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!(
                "{dropped} lines dropped: the disk took no write for"
            )),
            "{text}"
        );
        assert!(text.ends_with("after\n"), "{text}");
        assert!(!lock(&log.core.buffer.as_ref().unwrap().state).stalled);
    }

    /// The last handle dropped while the final write cannot finish (the file's lock held, as a
    /// write stuck on a frozen disk holds it): the drop gives up after [`FINAL_WRITE_BOUND`]
    /// rather than wait with the disk.
    #[test]
    fn dropping_the_last_handle_waits_for_a_stuck_final_write_only_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.log");
        let log = LogFile::options().buffered().open(&path).unwrap();
        log.write_line(b"last\n").unwrap();
        let core = log.core.clone();
        let stuck = lock(&core.inner);
        let dropping = std::thread::spawn(move || drop(log));
        let start = Instant::now();
        while !dropping.is_finished() {
            assert!(
                start.elapsed() < super::FINAL_WRITE_BOUND * 2,
                "the drop waits for the stuck write"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(stuck);
    }

    /// A tmpfs mounted for one test, unmounted when dropped (also when the test panics).
    struct Tmpfs(std::path::PathBuf);

    impl Tmpfs {
        /// None (the test is skipped) when not root.
        fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
            if !rustix::process::geteuid().is_root() {
                eprintln!("skipped: needs root to mount a tmpfs");
                return None;
            }
            std::fs::create_dir_all(dir).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size}"))
                .arg("tmpfs")
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "mount: {status}");
            Some(Tmpfs(dir.to_owned()))
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let umount = |lazy: bool| {
                let mut cmd = std::process::Command::new("umount");
                if lazy {
                    cmd.arg("-l");
                }
                cmd.arg(&self.0).status().is_ok_and(|s| s.success())
            };
            if !umount(false) {
                umount(true);
            }
        }
    }

    /// Writes to `path` until the filesystem is full (ENOSPC).
    fn fill(path: &Path) {
        use std::io::Write;
        let mut file = std::fs::File::create(path).unwrap();
        for _ in 0..10_000 {
            if let Err(e) = file.write_all(&[b'x'; 4096]) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
                return;
            }
        }
        panic!("{} never filled up", path.display());
    }

    /// After a full disk, the failed batch plus what came meanwhile can exceed the limit, and
    /// then a take leaves the buffer waiting. A flush that returns `Ok` must still have written
    /// everything handed over before it, the buffer too.
    #[test]
    fn a_flush_after_a_full_disk_writes_everything_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        let Some(_tmpfs) = Tmpfs::mount(&mnt, "64k") else {
            return;
        };
        let path = mnt.join("f.log");
        // The longest interval: the writer thread retries seldom, the test's flushes decide.
        let log = LogFile::options()
            .buffered()
            .buffer_limit(4096)
            .flush_interval(Duration::from_secs(1))
            .open(&path)
            .unwrap();
        let filler = mnt.join("filler");
        fill(&filler);
        // Three rounds of 40 lines (4 KiB, within the limit): the first two fail into the
        // carry, which then holds more than the limit; the third stays in the buffer.
        let mut n = 0;
        for round in 0..3 {
            for _ in 0..40 {
                log.write_line(&line(n)).unwrap();
                n += 1;
            }
            assert!(log.flush().is_err(), "round {round}: the disk is full");
        }
        assert_eq!(log.dropped_lines(), 0);
        std::fs::remove_file(&filler).unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let written: Vec<usize> = text
            .lines()
            .map(|l| l.strip_prefix("n=").expect(l).split(' ').next().unwrap())
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(
            written,
            (0..n).collect::<Vec<_>>(),
            "flush returned Ok with lines still buffered"
        );
    }

    #[test]
    fn lines_wait_for_a_full_batch_or_the_interval_not_a_write_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.log");
        // An hour: only a full batch, a flush or the last handle going write anything.
        let options = LogOptions {
            flush_interval: Duration::from_secs(3600),
            ..LogFile::options().buffered().buffer_limit(256 * 1024)
        };
        let log = options.open(&path).unwrap();
        for n in 0..10 {
            log.write_line(&line(n)).unwrap();
        }
        assert_eq!(len(&path), 0, "a line was written on its own");
        // 64 KiB make a batch: written by the writer thread, not this one.
        let mut n = 10;
        while n * line(0).len() < 64 * 1024 {
            log.write_line(&line(n)).unwrap();
            n += 1;
        }
        wait_for("the full batch to be written", || len(&path) > 0);
        log.write_line(b"last\n").unwrap();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), n + 1);
        assert!(text.ends_with("last\n"));

        // The flush interval: a line on its own is written by then.
        let path = dir.path().join("i.log");
        let log = LogFile::options()
            .buffered()
            .flush_interval(Duration::from_millis(20))
            .open(&path)
            .unwrap();
        log.write_line(b"alone\n").unwrap();
        wait_for("the line to be written within the interval", || {
            len(&path) == 6
        });
        // And the last handle going writes out the rest.
        log.write_line(b"at drop\n").unwrap();
        let clone = log.clone();
        drop(log);
        drop(clone);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "alone\nat drop\n");
    }

    /// A "disk" that stops taking writes: a FIFO nobody reads, opened read-write so that the
    /// open does not wait for a reader. Writes to it block once its 64 KiB are full, as they do
    /// on a hung disk, until `drain` reads it.
    struct StalledDisk {
        _dir: tempfile::TempDir,
        reader: std::fs::File,
        read: Vec<u8>,
    }

    impl StalledDisk {
        fn new(options: &LogOptions) -> (StalledDisk, LogFile) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fifo");
            mkfifo(&path);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&path)
                .unwrap();
            let id = id_of(&file.metadata().unwrap());
            let log = LogFile::with_options(path, (file, id), options).unwrap();
            let disk = StalledDisk {
                _dir: dir,
                reader,
                read: Vec::new(),
            };
            (disk, log)
        }

        /// Reads what waits in the FIFO, taking writes again.
        fn drain(&mut self) {
            let mut chunk = [0; 65536];
            while let Ok(n @ 1..) = self.reader.read(&mut chunk) {
                self.read.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// On a stalled disk the writer thread sits in `write(2)` holding the file's lock. What
    /// `status` reports (the path, read on an async worker) and what `rotate` checks first
    /// (whether the path still names the file) must not wait for it.
    #[test]
    fn the_path_is_read_without_waiting_for_a_stalled_write() {
        let options = LogFile::options().buffered();
        let (mut disk, log) = StalledDisk::new(&options);
        let capacity = rustix::pipe::fcntl_getpipe_size(&disk.reader).unwrap() as u64;
        // Twice what the FIFO holds: the writer blocks in `write(2)` once it is full.
        let mut n = 0;
        while (n * line(0).len()) as u64 <= 2 * capacity {
            log.write_line(&line(n)).unwrap();
            n += 1;
        }
        wait_for("the writer thread to fill the FIFO", || {
            rustix::io::ioctl_fionread(&disk.reader).unwrap() >= capacity
        });
        let probe = log.clone();
        let (path, names) = within_10s("path() on a stalled write", move || {
            (probe.path(), probe.core.path_names_current_file())
        });
        assert_eq!(path.file_name().unwrap(), "fifo");
        assert!(names);

        // The disk takes writes again: everything arrives.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(log.flush().map(|()| drop(log))));
        wait_for("never flushed", || {
            disk.drain();
            rx.try_recv().is_ok()
        });
        disk.drain();
        assert_eq!(String::from_utf8_lossy(&disk.read).lines().count(), n);
    }

    #[test]
    fn on_a_stalled_disk_buffered_mode_drops_and_counts_and_line_mode_waits() {
        let options = LogFile::options().buffered().buffer_limit(16 * 1024);
        let (mut disk, log) = StalledDisk::new(&options);
        // Far more than the FIFO and the buffer hold: the logging thread never waits.
        const LINES: usize = 5000;
        let logging = log.clone();
        within_10s("a logging call on a stalled disk", move || {
            for n in 0..LINES {
                logging.write_line(&line(n)).unwrap();
            }
        });
        let dropped = log.dropped_lines();
        assert!(dropped > 0, "nothing was dropped");

        // The disk takes writes again: what was kept comes out, then the notice.
        wait_for("no notice", || {
            disk.drain();
            String::from_utf8_lossy(&disk.read).contains("lines dropped")
        });
        log.flush().unwrap();
        disk.drain();
        let text = String::from_utf8(disk.read.clone()).unwrap();
        let mut kept = Vec::new();
        let mut counted = 0;
        for l in text.lines() {
            if let Some(n) = l.strip_prefix("n=") {
                kept.push(n.split(' ').next().unwrap().parse::<usize>().unwrap());
            } else {
                let (n, _) = l.split_once(" lines dropped").expect(l);
                counted += n.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
            }
        }
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "out of order");
        assert_eq!(counted, dropped, "every dropped line counted in a notice");
        assert_eq!(kept.len() as u64 + counted, LINES as u64);
        // Memory stayed bounded: at most the FIFO, the batch being written and the buffer.
        assert!(
            kept.len() * line(0).len() <= 65536 + 3 * 16 * 1024,
            "{}",
            kept.len()
        );

        // Line mode: the caller's write waits for the disk, and loses nothing.
        let (mut disk, log) = StalledDisk::new(&LogFile::options());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for n in 0..1000 {
                log.write_line(&line(n)).unwrap();
            }
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "1000 lines fit in a stalled 64 KiB FIFO"
        );
        wait_for("the writer never went on", || {
            disk.drain();
            rx.try_recv().is_ok()
        });
        disk.drain();
        let text = String::from_utf8(disk.read).unwrap();
        assert_eq!(text.lines().count(), 1000, "line mode drops nothing");
    }
}
