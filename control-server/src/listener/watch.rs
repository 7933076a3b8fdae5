//! An inotify watch on the socket's directory: it notices the socket file or its lock file
//! going away without any idle wake-up.

use super::Lock;
use rustix::fs::inotify;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tokio::io::unix::AsyncFd;

/// An inotify watch on the socket's directory.
#[derive(Debug)]
pub(super) struct Watch {
    /// Not yet registered with tokio: `bind` runs before any runtime exists.
    unregistered: Option<OwnedFd>,
    registered: Option<AsyncFd<OwnedFd>>,
    wd: i32,
    socket_name: Vec<u8>,
    lock_name: Vec<u8>,
}

impl Watch {
    /// Names leaving (or arriving over ours) and the directory itself going away. No event
    /// for writes or opens: a watch that never fires while nothing happens.
    fn mask() -> inotify::WatchFlags {
        use inotify::WatchFlags as W;
        W::DELETE
            | W::MOVED_FROM
            | W::CREATE
            | W::MOVED_TO
            | W::DELETE_SELF
            | W::MOVE_SELF
            | W::ONLYDIR
    }

    /// A watch on `dir` for the socket `path`, or `None` (with a warning) if inotify cannot
    /// be set up: serving matters more than noticing a removed file.
    pub(super) fn new(dir: &Path, path: &Path) -> Option<Watch> {
        let setup = || -> io::Result<(OwnedFd, i32)> {
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
            let wd = inotify::add_watch(&fd, dir, Watch::mask())?;
            Ok((fd, wd))
        };
        match setup() {
            Ok((fd, wd)) => Some(Watch {
                unregistered: Some(fd),
                registered: None,
                wd,
                socket_name: path.file_name()?.as_bytes().to_owned(),
                lock_name: Lock::path_for(path).file_name()?.as_bytes().to_owned(),
            }),
            Err(err) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "cannot watch the control socket's directory, serving without noticing a \
                     removed socket file (inotify: {err})"
                );
                None
            }
        }
    }

    /// Watches `dir` as it is now at its path (it may be a new directory), instead of the old.
    pub(super) fn rewatch(&mut self, dir: &Path) -> io::Result<()> {
        let fd = match (&self.unregistered, &self.registered) {
            (Some(fd), _) => fd.as_fd(),
            (None, Some(afd)) => afd.get_ref().as_fd(),
            (None, None) => return Err(io::Error::other("the inotify descriptor is gone")),
        };
        let wd = inotify::add_watch(fd, dir, Watch::mask())?;
        if wd != self.wd {
            // Already gone if the old directory was removed; then this fails, harmlessly.
            let _ = inotify::remove_watch(fd, self.wd);
            self.wd = wd;
        }
        Ok(())
    }

    /// Waits for events and reads all that are queued; true if any may concern the socket.
    pub(super) async fn next_batch(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<bool> {
        if let Some(fd) = self.unregistered.take() {
            // Sound for an `OwnedFd`, whose descriptor never changes (tokio deprecated this for
            // types whose `as_raw_fd` could); the safe call keeps the tokio 1.28 floor.
            #[allow(deprecated)]
            let registered = AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
            self.registered = Some(registered);
        }
        let Watch {
            registered: Some(afd),
            socket_name,
            lock_name,
            ..
        } = self
        else {
            return Err(io::Error::other("the inotify descriptor is gone"));
        };
        let mut guard = afd.readable_mut().await?;
        let mut relevant = false;
        let read = guard.try_io(|afd| -> io::Result<()> {
            let mut reader = inotify::Reader::new(afd.get_ref(), buf);
            loop {
                match reader.next() {
                    Ok(event) => {
                        use inotify::ReadFlags as R;
                        let whole = R::DELETE_SELF
                            | R::MOVE_SELF
                            | R::IGNORED
                            | R::QUEUE_OVERFLOW
                            | R::UNMOUNT;
                        relevant |= event.events().intersects(whole)
                            || event.file_name().is_some_and(|name| {
                                let name = name.to_bytes();
                                name == socket_name.as_slice() || name == lock_name.as_slice()
                            });
                    }
                    // All read: returning WouldBlock tells tokio to wait for the next event.
                    Err(rustix::io::Errno::AGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        });
        match read {
            Ok(Err(err)) => Err(err),
            Ok(Ok(())) | Err(_) => Ok(relevant),
        }
    }
}
