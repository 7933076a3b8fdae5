//! Rotation noticed by the file itself: an inotify watch on the file and its directory, read
//! by a thread of its own that sleeps in `read` until a name in the directory changes.
//!
//! No `stat` per line (what Python's `WatchedFileHandler` does) and no timer: writes raise no
//! event (no `IN_MODIFY` in the masks), so a busy or an idle file costs the thread nothing.

use super::{id_of, Core};
use rustix::fs::inotify;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
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
    fd: OwnedFd,
    stop: AtomicBool,
    /// The directory's watch: removing it wakes the thread (the kernel queues `IN_IGNORED`).
    dir_wd: AtomicI32,
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

/// What concerns the file: it moved (to another directory too) or is gone.
fn file_mask() -> inotify::WatchFlags {
    use inotify::WatchFlags as W;
    W::MOVE_SELF | W::DELETE_SELF | W::DONT_FOLLOW
}

impl Watch {
    pub(super) fn spawn(core: &Arc<Core>, path: &Path) -> std::io::Result<Watch> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let dir_wd = inotify::add_watch(&fd, dir, dir_mask())?;
        let file_wd = inotify::add_watch(&fd, path, file_mask()).ok();
        let shared = Arc::new(Shared {
            fd,
            stop: AtomicBool::new(false),
            dir_wd: AtomicI32::new(dir_wd),
        });
        let watching = Watching {
            core: Arc::downgrade(core),
            shared: shared.clone(),
            path: path.to_owned(),
            file_wd,
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
        self.wake();
    }

    fn wake(&self) {
        let wd = self.shared.dir_wd.load(Ordering::SeqCst);
        let _ = inotify::remove_watch(&self.shared.fd, wd);
    }
}

struct Watching {
    /// Weak: the thread must not keep the file open once every handle is gone.
    core: Weak<Core>,
    shared: Arc<Shared>,
    path: PathBuf,
    file_wd: Option<i32>,
}

/// What a batch of events asks for.
#[derive(Default)]
struct Wanted {
    /// Check whether the path still names the file.
    follow: bool,
    /// Watch the directory anew: it moved, went, or the watch was removed to wake us.
    rewatch: bool,
}

impl Watching {
    fn run(mut self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let wanted = match self.read(&mut buf) {
                Ok(wanted) => wanted,
                Err(err) => {
                    tracing::warn!(path = %self.path.display(), "stopped watching the log file for renames (inotify: {err}); `ctl rotate` still reopens it");
                    return;
                }
            };
            if self.shared.stop.load(Ordering::SeqCst) {
                return;
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

    /// Waits for events and reads all that are queued.
    fn read(&self, buf: &mut [MaybeUninit<u8>]) -> rustix::io::Result<Wanted> {
        let mut wanted = Wanted::default();
        let name = self.path.file_name().map(OsStr::as_bytes);
        let dir_wd = self.shared.dir_wd.load(Ordering::SeqCst);
        let mut reader = inotify::Reader::new(&self.shared.fd, buf);
        loop {
            match reader.next() {
                Ok(event) => {
                    use inotify::ReadFlags as R;
                    let events = event.events();
                    if events.contains(R::QUEUE_OVERFLOW) {
                        wanted.follow = true;
                        wanted.rewatch = true;
                    } else if event.wd() == dir_wd {
                        if events.intersects(R::IGNORED | R::DELETE_SELF | R::MOVE_SELF) {
                            wanted.rewatch = true;
                            wanted.follow = true;
                        }
                        wanted.follow |= event.file_name().map(|n| n.to_bytes()) == name;
                    } else if Some(event.wd()) == self.file_wd {
                        wanted.follow |= events.intersects(R::MOVE_SELF | R::DELETE_SELF);
                    }
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err),
            }
            if reader.is_buffer_empty() {
                return Ok(wanted);
            }
        }
    }

    /// Watches the directory of the file's current path.
    fn rewatch(&mut self, core: &Core) {
        self.path = core.current().path;
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        match inotify::add_watch(&self.shared.fd, dir, dir_mask()) {
            Ok(wd) => {
                let old = self.shared.dir_wd.swap(wd, Ordering::SeqCst);
                if old != wd {
                    let _ = inotify::remove_watch(&self.shared.fd, old);
                }
            }
            Err(err) => {
                return tracing::warn!(
                    dir = %dir.display(),
                    "cannot watch the log file's directory any more, renames go unnoticed until \
                     `ctl rotate` (inotify: {err})"
                )
            }
        }
        self.watch_file();
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
        let current = core.current().id;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if id_of(&meta) == current => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.wait_for_create(buf),
            _ => {}
        }
        if core.reopen_if_moved() {
            self.watch_file();
        }
    }

    /// Waits, at most [`CREATE_GRACE`], for a file to appear at the path.
    fn wait_for_create(&self, buf: &mut [MaybeUninit<u8>]) {
        use rustix::event::{poll, PollFd, PollFlags};
        let name = self.path.file_name().map(OsStr::as_bytes);
        let until = Instant::now() + CREATE_GRACE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let timeout = rustix::event::Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.shared.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            let mut reader = inotify::Reader::new(&self.shared.fd, buf);
            loop {
                let Ok(event) = reader.next() else { return };
                use inotify::ReadFlags as R;
                if event.events().intersects(R::CREATE | R::MOVED_TO)
                    && event.file_name().map(|n| n.to_bytes()) == name
                {
                    return;
                }
                if reader.is_buffer_empty() {
                    break;
                }
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
            let all: Vec<usize> = numbers(&read(&old))
                .into_iter()
                .chain(numbers(&read(&path)))
                .collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "lost or duplicated");

            // `rotate` now reports that reopen instead of making another.
            let r = log.reopen();
            assert_eq!(r.error, None);
            assert_ne!(r.old, r.new);
            assert_eq!(r.bytes_to_old, read(&old).len() as u64, "exact");
            let id = r.new;
            let again = log.reopen();
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
        let all: Vec<usize> = numbers(&read(&old))
            .into_iter()
            .chain(numbers(&read(&path)))
            .collect();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "lost or duplicated");
    }
}
