//! Reading configuration files as seen from a root directory (`/`, or `--root DIR`), bounded.
//!
//! Every path is opened with `openat2(RESOLVE_IN_ROOT)` below the root's descriptor: a symbolic
//! link is followed, but its absolute target and any `..` are resolved inside the root, as in
//! a chroot, so nothing under `--root DIR` reaches out of DIR (a `/etc/logrotate.d -> /etc/x`
//! link in a container's tree reads the container's `/etc/x`). Magic links (`/proc/self/...`)
//! are refused. A file is opened as a path only (`O_PATH`: a FIFO in an include directory
//! never hangs `ctl` nor releases its writer, a device's driver is never run) and opened for
//! reading only if it is a regular file of at most [`MAX_FILE`] bytes.

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The largest configuration file read: logrotate, cron and unit files are a few KiB.
pub const MAX_FILE: u64 = 1024 * 1024;

/// The most entries read of one directory.
pub const MAX_ENTRIES: usize = 10_000;

/// A file read.
pub struct File {
    pub text: String,
    pub stat: Stat,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum Unread {
    /// Nothing there.
    #[error("it does not exist")]
    Missing,
    /// A directory, FIFO, device, ...
    #[error("it is not a regular file")]
    NotRegular,
    /// Larger than [`MAX_FILE`].
    #[error("it is {0} bytes, more than the {MAX_FILE} read")]
    TooLarge(u64),
    /// The system refused.
    #[error("{0}")]
    Io(io::Error),
}

/// The root every configuration path is read under.
pub struct Root {
    fd: OwnedFd,
    /// Where it is (`/` without `--root`).
    pub path: PathBuf,
}

impl Root {
    /// Opens `dir` (`/` if `None`).
    pub fn open(dir: Option<&Path>) -> io::Result<Root> {
        let path = dir.unwrap_or(Path::new("/")).to_owned();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::empty())?;
        Ok(Root { fd, path })
    }

    /// Whether this is `/`.
    pub fn is_host(&self) -> bool {
        self.path == Path::new("/")
    }

    /// `path` (as a configuration names it) as it is read: under the root.
    pub fn shown(&self, path: &Path) -> PathBuf {
        self.path.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn open_at(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let inside = path.strip_prefix("/").unwrap_or(path);
        let inside = if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        rustix::fs::openat2(
            &self.fd,
            inside,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(io::Error::from)
    }

    /// What is at `path` (links followed inside the root), or `None`.
    pub fn stat(&self, path: &Path) -> Option<Stat> {
        let fd = self.open_at(path, OFlags::PATH).ok()?;
        rustix::fs::fstat(&fd).ok()
    }

    /// Reads the regular file at `path`, at most [`MAX_FILE`] bytes. It is opened as a path
    /// only (`O_PATH`) and judged by `fstat` first: nothing but a regular file is ever opened
    /// for reading (a device's driver is never run, a FIFO's writer never released).
    pub fn read(&self, path: &Path) -> Result<File, Unread> {
        let at = self
            .open_at(path, OFlags::PATH)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Unread::Missing,
                _ => Unread::Io(e),
            })?;
        let stat = rustix::fs::fstat(&at).map_err(|e| Unread::Io(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Unread::NotRegular);
        }
        if stat.st_size as u64 > MAX_FILE {
            return Err(Unread::TooLarge(stat.st_size as u64));
        }
        let fd = crate::pidfile::reopen_regular(&at, &stat).map_err(Unread::Io)?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(Unread::Io)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(Unread::TooLarge(bytes.len() as u64));
        }
        Ok(File {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            stat,
        })
    }

    /// The names in the directory at `path`, in byte order (logrotate's and run-parts' order in
    /// the C locale), at most [`MAX_ENTRIES`]; `None` when it is no directory.
    pub fn list(&self, path: &Path) -> Option<Vec<OsString>> {
        let fd = self
            .open_at(path, OFlags::RDONLY | OFlags::DIRECTORY)
            .ok()?;
        let mut dir = rustix::fs::Dir::read_from(&fd).ok()?;
        let mut names = Vec::new();
        while let Some(Ok(entry)) = dir.read() {
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
            if names.len() == MAX_ENTRIES {
                break;
            }
        }
        names.sort();
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_inside_the_root_and_fifos_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(Some(dir.path())).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/a"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc/a", dir.path().join("etc/link")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/a", dir.path().join("etc/up")).unwrap();
        assert_eq!(root.read(Path::new("/etc/link")).unwrap().text, "inside");
        assert_eq!(root.read(Path::new("/etc/up")).unwrap().text, "inside");
        // The host's /etc/passwd is not reachable from inside.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/out")).unwrap();
        assert!(matches!(
            root.read(Path::new("/etc/out")),
            Err(Unread::Missing)
        ));
        let fifo = dir.path().join("etc/fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            root.read(Path::new("/etc/fifo")),
            Err(Unread::NotRegular)
        ));
        assert_eq!(
            root.list(Path::new("/etc")).unwrap(),
            ["a", "fifo", "link", "out", "up"]
        );
        assert_eq!(root.shown(Path::new("/etc/a")), dir.path().join("etc/a"));
    }
}
