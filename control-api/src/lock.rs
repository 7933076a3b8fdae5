//! The lock file a daemon holds next to its socket: `SOCKET.lock`, created by the daemon's own
//! user (mode 0600), locked with `flock` for the daemon's whole life, and removed after the
//! socket on a clean stop. What it leaves tells a client what became of a daemon that no
//! socket answers for: nothing left (it stopped), a lock file or socket nobody holds (it died),
//! a lock some process holds (it runs, and that process is it).

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the lock file's name adds to the socket's.
pub const LOCK_SUFFIX: &str = ".lock";

/// The lock file of the socket at `socket`.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut path = OsString::from(socket.as_os_str());
    path.push(LOCK_SUFFIX);
    PathBuf::from(path)
}

/// The socket whose lock file is `lock`, if it is named as one.
pub fn socket_of(lock: &Path) -> Option<PathBuf> {
    let name = lock.to_str()?.strip_suffix(LOCK_SUFFIX)?;
    (!name.is_empty()).then(|| PathBuf::from(name))
}

/// The pid holding a `flock` on the file `meta` describes, from `/proc/locks` (readable by
/// every user, so this needs no rights on the file itself). `None` when nobody holds it or
/// `/proc/locks` cannot be read.
pub fn holder(meta: &std::fs::Metadata) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    holder_in(
        &locks,
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        meta.ino(),
    )
}

/// Finds the holder of a `flock` on the file (`major`, `minor`, `ino`) in the text of
/// `/proc/locks`, whose lines read `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (device
/// numbers in hex); a waiter's line has `->` after the number and is skipped.
fn holder_in(locks: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        if fields.next()? != "FLOCK" {
            return None;
        }
        let pid = fields.nth(2)?.parse().ok()?;
        let mut id = fields.next()?.split(':');
        let found = (
            u32::from_str_radix(id.next()?, 16).ok()?,
            u32::from_str_radix(id.next()?, 16).ok()?,
            id.next()?.parse::<u64>().ok()?,
        );
        (found == (major, minor, ino)).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_give_the_holder() {
        let locks = "1: POSIX  ADVISORY  WRITE 10 fd:01:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 fd:1a:5678 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 999 fd:1a:5678 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 77 00:1a:5678 0 EOF\n";
        assert_eq!(holder_in(locks, 0xfd, 0x1a, 5678), Some(1234));
        assert_eq!(holder_in(locks, 0, 0x1a, 5678), Some(77));
        assert_eq!(
            holder_in(locks, 0xfd, 1, 42),
            None,
            "POSIX locks are not ours"
        );
        assert_eq!(holder_in(locks, 0xfd, 0x1a, 1), None);
    }

    #[test]
    fn a_held_lock_file_names_its_holder_and_a_released_one_nobody() {
        let tmp = tempfile::tempdir().unwrap();
        let path = lock_path(&tmp.path().join("web.sock"));
        assert_eq!(socket_of(&path), Some(tmp.path().join("web.sock")));
        let file = std::fs::File::create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(holder(&meta), None);
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(holder(&meta), Some(std::process::id()));
        drop(file);
        assert_eq!(holder(&meta), None);
    }
}
