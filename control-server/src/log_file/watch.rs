//! Rotation noticed by the file itself: an inotify watch on the file and its directory, read
//! by a thread of its own that sleeps in `poll` until a name in the directory changes, or until
//! the file's handles wake it through an eventfd (to stop, or to watch another path).
//!
//! No `stat` per line (what Python's `WatchedFileHandler` does) and no timer: writes raise no
//! event (no `IN_MODIFY` in the masks), so a busy or an idle file costs the thread nothing.
//!
//! When the directory itself goes (removed, to be made again by a deployment or a tmpfiles
//! rule), the watch moves to the nearest directory above it that still exists, waiting for
//! the next name on the way down to appear: so it follows the directory when it comes back,
//! however long that takes, without polling.
//!
//! Whoever can write to the directory can make the watch wake as often as they like; what it
//! then says goes through the file's throttles (`LogNoise`).

use super::{id_of, warn_not_reopened, Core, OpenErrorKind};
use control_api::text::escape_path;
use rustix::fs::inotify;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a watched file, gone from its path, waits for logrotate's `create` to make the new
/// one before creating it itself. logrotate creates it right after the rename (microseconds);
/// creating it sooner would make logrotate's `create` find a file in its way.
pub const CREATE_GRACE: Duration = Duration::from_millis(500);

/// The watch of one [`LogFile`](super::LogFile); the thread ends when it is stopped or the file
/// is gone.
#[derive(Debug)]
pub(super) struct Watch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The inotify instance, non-blocking: the thread sleeps in `poll` on it and `wake`.
    fd: OwnedFd,
    /// An eventfd that `stop` and `retarget` write to: it wakes the thread whatever state its
    /// watches are in (a watch the kernel removed already cannot be removed to wake it).
    wake: OwnedFd,
    stop: AtomicBool,
    /// `switch_to` changed the path: watch its directory and file instead.
    retarget: AtomicBool,
}

/// What concerns the directory: names coming and going, the directory itself, and a change of
/// owner or mode (`IN_ATTRIB`): logrotate's `create MODE OWNER GROUP` creates the file as root's
/// and 0600, then chowns and chmods it, so a daemon of its own user that woke on the create may
/// have been refused; the chown wakes it to try again. Writes raise no `IN_ATTRIB`.
fn dir_mask() -> inotify::WatchFlags {
    use inotify::WatchFlags as W;
    W::MOVED_FROM
        | W::MOVED_TO
        | W::CREATE
        | W::DELETE
        | W::ATTRIB
        | W::DELETE_SELF
        | W::MOVE_SELF
        | W::ONLYDIR
}

/// What concerns a directory above a directory that went: the next name on the way down
/// appearing, or this directory going too.
fn ancestor_mask() -> inotify::WatchFlags {
    use inotify::WatchFlags as W;
    W::CREATE | W::MOVED_TO | W::DELETE_SELF | W::MOVE_SELF | W::ONLYDIR
}

/// What concerns the file: it moved (to another directory too) or is gone.
fn file_mask() -> inotify::WatchFlags {
    use inotify::WatchFlags as W;
    W::MOVE_SELF | W::DELETE_SELF | W::DONT_FOLLOW
}

impl Watch {
    pub(super) fn spawn(core: &Arc<Core>, path: &Path) -> std::io::Result<Watch> {
        use rustix::event::{eventfd, EventfdFlags};
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let dir_wd = inotify::add_watch(&fd, dir, dir_mask())?;
        let file_wd = inotify::add_watch(&fd, path, file_mask()).ok();
        let shared = Arc::new(Shared {
            fd,
            wake,
            stop: AtomicBool::new(false),
            retarget: AtomicBool::new(false),
        });
        let watching = Watching {
            core: Arc::downgrade(core),
            shared: shared.clone(),
            path: path.to_owned(),
            dir_wd,
            file_wd,
            ancestor: None,
            pending: Wanted::default(),
        };
        std::thread::Builder::new()
            .name("log-watch".into())
            .spawn(move || watching.run())?;
        Ok(Watch { shared })
    }

    /// Ends the thread.
    pub(super) fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Has the thread watch the file's path as it is now (after `switch_to`).
    pub(super) fn retarget(&self) {
        self.shared.retarget.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        // Only EAGAIN can fail it (the counter at its maximum): the thread is woken anyway.
        let _ = rustix::io::write(&self.shared.wake, &1u64.to_ne_bytes());
    }
}

struct Watching {
    /// Weak: the thread must not keep the file open once every handle is gone.
    core: Weak<Core>,
    shared: Arc<Shared>,
    path: PathBuf,
    /// The directory's watch (dead once the directory is gone, until a rewatch succeeds).
    dir_wd: i32,
    file_wd: Option<i32>,
    /// While the directory is gone: the watch on the nearest directory above it that exists.
    ancestor: Option<Ancestor>,
    /// What events read while waiting for a create asked for, done on the next round.
    pending: Wanted,
}

/// The watch on a directory above the file's, which went.
struct Ancestor {
    wd: i32,
    /// The name in it on the way down to the file's directory.
    name: Vec<u8>,
}

/// Whether a directory above the file's (the ancestor's watch `wd`, waiting for `name`) asks
/// for a rewatch with this event: the name appeared, or the ancestor went too.
fn ancestor_event(ancestor: &Option<Ancestor>, event: &inotify::Event<'_>) -> bool {
    use inotify::ReadFlags as R;
    let Some(a) = ancestor.as_ref().filter(|a| a.wd == event.wd()) else {
        return false;
    };
    event
        .events()
        .intersects(R::IGNORED | R::DELETE_SELF | R::MOVE_SELF)
        || event.file_name().map(|n| n.to_bytes()) == Some(&a.name[..])
}

/// What a batch of events asks for.
#[derive(Default)]
struct Wanted {
    /// Check whether the path still names the file.
    follow: bool,
    /// Watch the directory anew: it moved or went, or the path changed.
    rewatch: bool,
}

impl Wanted {
    fn any(&self) -> bool {
        self.follow || self.rewatch
    }

    /// A rewatch, and the check that follows it.
    fn both(&mut self) {
        self.rewatch = true;
        self.follow = true;
    }
}

impl Watching {
    fn run(mut self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let mut wanted = std::mem::take(&mut self.pending);
            let read = match wanted.any() {
                true => Ok(()),
                false => self.wait(None).map(drop),
            }
            .and_then(|()| self.read(&mut buf, &mut wanted));
            if let Err(err) = read {
                if let Some(core) = self.core.upgrade() {
                    if core.noise.watch.admit() {
                        tracing::warn!(
                            path = %escape_path(&self.path),
                            "stopped watching the log file for renames (inotify: {err}); \
                             `ctl rotate` still reopens it"
                        );
                    }
                }
                return;
            }
            self.drain_wake();
            if self.shared.stop.load(Ordering::SeqCst) {
                return;
            }
            if self.shared.retarget.swap(false, Ordering::SeqCst) {
                wanted.both();
            }
            let Some(core) = self.core.upgrade() else {
                return;
            };
            if wanted.rewatch {
                self.rewatch(&core);
            }
            if wanted.follow {
                self.follow(&core, &mut buf);
            }
        }
    }

    /// Sleeps until events are queued, `stop` or `retarget` is called, or `timeout` passed; true
    /// for events only (with no call to answer first).
    fn wait(&self, timeout: Option<Duration>) -> rustix::io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = timeout.map(|left| Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        });
        let mut fds = [
            PollFd::new(&self.shared.fd, PollFlags::IN),
            PollFd::new(&self.shared.wake, PollFlags::IN),
        ];
        loop {
            match poll(&mut fds, timeout.as_ref()) {
                Ok(n) => return Ok(n > 0 && fds[1].revents().is_empty()),
                // A signal: poll again (for the whole timeout, which only bounds a grace).
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Resets the eventfd, so that the next `wait` sleeps until the next call.
    fn drain_wake(&self) {
        let _ = rustix::io::read(&self.shared.wake, &mut [0u8; 8]);
    }

    /// Reads every event queued (none: nothing to do), adding what they ask for to `wanted`.
    fn read(&self, buf: &mut [MaybeUninit<u8>], wanted: &mut Wanted) -> rustix::io::Result<()> {
        let name = self.path.file_name().map(OsStr::as_bytes);
        let dir_wd = self.dir_wd;
        let mut reader = inotify::Reader::new(&self.shared.fd, buf);
        loop {
            match reader.next() {
                Ok(event) => {
                    use inotify::ReadFlags as R;
                    let events = event.events();
                    if events.contains(R::QUEUE_OVERFLOW) {
                        wanted.both();
                    } else if event.wd() == dir_wd {
                        if events.intersects(R::IGNORED | R::DELETE_SELF | R::MOVE_SELF) {
                            wanted.both();
                        }
                        wanted.follow |= event.file_name().map(|n| n.to_bytes()) == name;
                    } else if Some(event.wd()) == self.file_wd {
                        wanted.follow |= events.intersects(R::MOVE_SELF | R::DELETE_SELF);
                    } else if ancestor_event(&self.ancestor, &event) {
                        wanted.both();
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Err(err) => return Err(err),
            }
            if reader.is_buffer_empty() {
                return Ok(());
            }
        }
    }

    /// Watches the directory of the file's current path; while it is gone, the nearest
    /// directory above it that exists, to watch it again once it is back.
    fn rewatch(&mut self, core: &Core) {
        self.path = core.current().path;
        let dir = self.path.parent().unwrap_or(Path::new("/")).to_owned();
        // A few rounds: the directory may come back (or a directory above it go) while the
        // watch above it is being set up. Each round is two `inotify_add_watch` per level.
        for _ in 0..4 {
            let err = match inotify::add_watch(&self.shared.fd, &dir, dir_mask()) {
                Ok(wd) => {
                    let old = std::mem::replace(&mut self.dir_wd, wd);
                    if old != wd && old >= 0 {
                        let _ = inotify::remove_watch(&self.shared.fd, old);
                    }
                    if let Some(ancestor) = self.ancestor.take() {
                        if ancestor.wd != wd {
                            let _ = inotify::remove_watch(&self.shared.fd, ancestor.wd);
                        }
                        if core.noise.watch.admit() {
                            tracing::info!(
                                dir = %escape_path(&dir),
                                "the log file's directory is back: following renames in it again"
                            );
                        }
                    }
                    return self.watch_file();
                }
                Err(err) => err,
            };
            // Its old watch is dead (the kernel dropped it with the directory).
            self.dir_wd = -1;
            let gone = matches!(err, rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR);
            let above = match gone {
                true => self.watch_ancestor(&dir),
                false => Err(err),
            };
            match above {
                // Armed: try the directory once more, in case it came back meanwhile.
                Ok(Some(first)) => {
                    if first && core.noise.watch.admit() {
                        let ancestor = dir.ancestors().nth(1).unwrap_or(Path::new("/"));
                        tracing::warn!(
                            dir = %escape_path(&dir),
                            "the log file's directory is gone: waiting for it to be made again \
                             (watching above it, from {}), writing to the old file until then",
                            escape_path(ancestor)
                        );
                    }
                    continue;
                }
                Ok(None) => return,
                Err(err) => {
                    if core.noise.watch.admit() {
                        tracing::warn!(
                            dir = %escape_path(&dir),
                            "cannot watch the log file's directory any more, renames go \
                             unnoticed until `ctl rotate` (inotify: {err})"
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Watches the nearest directory above `dir` that exists, for the next name down to
    /// appear. `Some(true)` if the directory was not missing before (a loss to report),
    /// `Some(false)` if it was, `None` if nothing above it exists (not even `/`).
    fn watch_ancestor(&mut self, dir: &Path) -> rustix::io::Result<Option<bool>> {
        let first = self.ancestor.is_none();
        let mut child = dir;
        while let Some(parent) = child.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new("/")
            } else {
                parent
            };
            match inotify::add_watch(&self.shared.fd, parent, ancestor_mask()) {
                Ok(wd) => {
                    let name = child
                        .file_name()
                        .map_or(Vec::new(), |n| n.as_bytes().to_vec());
                    if let Some(old) = self.ancestor.replace(Ancestor { wd, name }) {
                        if old.wd != wd {
                            let _ = inotify::remove_watch(&self.shared.fd, old.wd);
                        }
                    }
                    return Ok(Some(first));
                }
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => child = parent,
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// Watches the file at the path (the one being written, after a reopen or switch).
    fn watch_file(&mut self) {
        if let Ok(wd) = inotify::add_watch(&self.shared.fd, &self.path, file_mask()) {
            if let Some(old) = self.file_wd.replace(wd).filter(|&old| old != wd) {
                let _ = inotify::remove_watch(&self.shared.fd, old);
            }
        }
    }

    /// Reopens at the path if it no longer names the file being written.
    fn follow(&mut self, core: &Core, buf: &mut [MaybeUninit<u8>]) {
        use inotify::ReadFlags as R;
        let current = core.current().id;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if id_of(&meta) == current => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.wait_for_name(buf, Instant::now() + CREATE_GRACE, R::CREATE | R::MOVED_TO);
            }
            _ => {}
        }
        // logrotate's `create MODE OWNER GROUP` makes the file root's and 0600, then chowns
        // it: a daemon of another user refused in between tries again on the chown (or any
        // change to the name) for up to CREATE_GRACE, and only then says it was refused.
        let until = Instant::now() + CREATE_GRACE;
        loop {
            match core.reopen_if_moved() {
                Ok(true) => return self.watch_file(),
                Ok(false) => return,
                Err(not) => {
                    let denied = matches!(&not.kind, OpenErrorKind::Io(e)
                        if e.kind() == std::io::ErrorKind::PermissionDenied);
                    let changed = R::ATTRIB | R::CREATE | R::MOVED_TO | R::DELETE;
                    if denied && self.wait_for_name(buf, until, changed) {
                        continue;
                    }
                    warn_not_reopened(&core.noise.not_reopened, &not);
                    // The directory went with the file? Its own removal raises no event while
                    // the old file is open (the open file keeps the directory's entry alive),
                    // so watch above it now, to follow it when it is made again.
                    let dir = self.path.parent().unwrap_or(Path::new("/"));
                    if self.ancestor.is_none() && std::fs::symlink_metadata(dir).is_err() {
                        self.pending.both();
                    }
                    return;
                }
            }
        }
    }

    /// Waits until `until` for one of the events `on` on the path's name; true if one came.
    /// Returns at once (false) on `stop` or `retarget` (the next round sees them). What the
    /// other events ask for (the directory moved or went) is kept for the next round.
    fn wait_for_name(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        until: Instant,
        on: inotify::ReadFlags,
    ) -> bool {
        let name = self.path.file_name().map(OsStr::as_bytes);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if !matches!(self.wait(Some(left)), Ok(true)) {
                return false;
            }
            let dir_wd = self.dir_wd;
            let mut seen = false;
            let mut reader = inotify::Reader::new(&self.shared.fd, buf);
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return false,
                };
                use inotify::ReadFlags as R;
                let events = event.events();
                if events.contains(R::QUEUE_OVERFLOW)
                    || (event.wd() == dir_wd
                        && events.intersects(R::IGNORED | R::DELETE_SELF | R::MOVE_SELF))
                    || ancestor_event(&self.ancestor, &event)
                {
                    self.pending.both();
                }
                seen |= events.intersects(on) && event.file_name().map(|n| n.to_bytes()) == name;
                if reader.is_buffer_empty() {
                    break;
                }
            }
            if seen {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::LogFile;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Writes numbered lines until one shows in `path`; returns how many. The 30 s bound only
    /// catches "never": how fast it follows is measured (BENCHMARKS.md), not asserted, since a
    /// loaded machine may take any time.
    fn write_until_in(log: &LogFile, path: &Path, from: usize) -> usize {
        let start = Instant::now();
        let mut n = from;
        while read(path).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no line reached {} within 30 s",
                path.display()
            );
            log.write_line(format!("n={n}\n").as_bytes()).unwrap();
            log.flush().unwrap();
            n += 1;
            std::thread::yield_now();
        }
        n
    }

    fn numbers(text: &str) -> Vec<usize> {
        text.lines()
            .map(|l| l.strip_prefix("n=").expect(l).parse().unwrap())
            .collect()
    }

    /// Lines `n=0` to `n=N-1`, each once and in order, across the old file and the new.
    fn lines_once_each(old: &Path, new: &Path, n: usize) {
        let all = [numbers(&read(old)), numbers(&read(new))].concat();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "lost or duplicated");
    }

    #[test]
    fn a_rename_is_followed_without_rotate_and_rotate_reports_it() {
        for options in [LogFile::options(), LogFile::options().buffered()] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.log");
            let old = dir.path().join("w.log.1");
            let log = options.watch_rotation(true).open(&path).unwrap();
            log.write_line(b"n=0\n").unwrap();
            log.flush().unwrap();
            std::fs::rename(&path, &old).unwrap();
            // No `create`: after the grace the file makes the new one itself.
            let started = Instant::now();
            let n = write_until_in(&log, &path, 1);
            assert!(
                started.elapsed() >= super::CREATE_GRACE / 2,
                "no grace for `create`"
            );
            lines_once_each(&old, &path, n);

            // `rotate` now reports that reopen instead of making another.
            let r = log.reopen().unwrap();
            assert_ne!(r.old, r.new);
            assert_eq!(r.bytes_to_old, read(&old).len() as u64, "exact");
            let id = r.new;
            let again = log.reopen().unwrap();
            assert_eq!((again.old, again.new), (id, id), "the same file");
        }
    }

    #[test]
    fn a_file_logrotate_creates_after_the_rename_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let old = dir.path().join("c.log.1");
        let log = LogFile::options()
            .buffered()
            .watch_rotation(true)
            .open(&path)
            .unwrap();
        // What logrotate's `create 0604` does: rename, then create the new file.
        std::fs::rename(&path, &old).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        file.set_permissions(std::fs::Permissions::from_mode(0o604))
            .unwrap();
        let created = std::fs::metadata(&path).unwrap();
        let started = Instant::now();
        let n = write_until_in(&log, &path, 0);
        eprintln!("followed to logrotate's file in {:?}", started.elapsed());
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (now.ino(), now.mode() & 0o777),
            (created.ino(), 0o604),
            "not logrotate's file"
        );
        lines_once_each(&old, &path, n);
    }

    /// The directory went (so the thread's watch on it is dead and cannot be rewatched), then
    /// the last handle: the thread must end, with its inotify instance, not sleep on forever.
    #[test]
    fn a_dropped_file_whose_directory_went_ends_its_watch_thread() {
        for round in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let logs = dir.path().join("logs");
            std::fs::create_dir(&logs).unwrap();
            let path = logs.join("g.log");
            let log = LogFile::options()
                .buffered()
                .flush_interval(Duration::from_secs(1))
                .watch_rotation(true)
                .open(&path)
                .unwrap();
            let watch = std::sync::Arc::downgrade(&log.threads.watch.as_ref().unwrap().shared);
            // The file moved out (as to logrotate's `olddir`), then its directory removed: the
            // kernel drops the directory's watch at once (a file open in it would delay that).
            let old = dir.path().join("g.log.1");
            std::fs::rename(&path, &old).unwrap();
            let view = std::fs::File::open(&old).unwrap();
            std::fs::remove_dir(&logs).unwrap();
            // Written out by the watch's failed reopen (its rewatch failed before it), or by
            // the writer thread within the interval: either way the removal was seen.
            log.write_line(b"after\n").unwrap();
            let start = Instant::now();
            while std::io::read_to_string(&view).unwrap().is_empty() {
                assert!(start.elapsed() < Duration::from_secs(30), "never written");
                std::thread::yield_now();
            }
            drop(log);
            let start = Instant::now();
            while watch.upgrade().is_some() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "round {round}: the watch thread of a dropped file never ended"
                );
                std::thread::yield_now();
            }
        }
    }

    /// The ids of this process's watch threads.
    fn watch_threads() -> std::collections::HashSet<u32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let task = task.ok()?;
                let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
                (comm.trim() == "log-watch").then(|| task.file_name().to_str()?.parse().ok())?
            })
            .collect()
    }

    #[derive(PartialEq)]
    enum Syscall {
        Poll,
        Read,
    }

    /// What thread `tid` sleeps in, if it is `poll` (`ppoll`) or `read` (x86_64, aarch64;
    /// elsewhere: unknown).
    fn syscall(tid: u32) -> Option<Syscall> {
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
        let nr = text.split(' ').next()?;
        match (std::env::consts::ARCH, nr) {
            ("x86_64", "7" | "271") | ("aarch64", "73") => Some(Syscall::Poll),
            ("x86_64", "0") | ("aarch64", "63") => Some(Syscall::Read),
            _ => None,
        }
    }

    /// `switch_to` while the thread waits for logrotate's `create` at the old path: the new
    /// path's directory must be watched all the same, and its rotation followed.
    #[test]
    fn a_switch_while_waiting_for_create_watches_the_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let (a, b) = (dir.path().join("a.log"), other.join("b.log"));
        let before = watch_threads();
        let log = LogFile::options().watch_rotation(true).open(&a).unwrap();
        // No `create`: the thread waits CREATE_GRACE for a new a.log, in `poll`...
        std::fs::rename(&a, dir.path().join("a.log.1")).unwrap();
        let tid = match watch_threads().difference(&before).collect::<Vec<_>>()[..] {
            [&tid] => Some(tid),
            _ => None, // another test's watch thread came too: the timing is left to chance
        };
        let start = Instant::now();
        while tid.is_some_and(|tid| syscall(tid) != Some(Syscall::Poll))
            && start.elapsed() < super::CREATE_GRACE
        {
            std::thread::yield_now();
        }
        // ...and meanwhile writing moves elsewhere...
        log.switch_to(&b).unwrap();
        // ...whose file is rotated in its turn, once the thread has gone back to sleep. (The
        // bound is no assertion: a thread that sleeps in `poll` whatever it waits for never
        // shows a `read`.)
        let start = Instant::now();
        while tid.is_some_and(|tid| syscall(tid) != Some(Syscall::Read))
            && start.elapsed() < 2 * super::CREATE_GRACE
        {
            std::thread::yield_now();
        }
        std::fs::rename(&b, other.join("b.log.1")).unwrap();
        let started = Instant::now();
        let n = write_until_in(&log, &b, 0);
        eprintln!("followed in {:?}", started.elapsed());
        lines_once_each(&other.join("b.log.1"), &b, n);
    }
}
