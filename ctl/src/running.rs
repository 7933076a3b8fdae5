//! What a daemon leaves on the host, read when no socket answers: whether it still runs
//! somewhere `ctl` did not look, whether it died, or whether it stopped cleanly. This is what
//! keeps `--missing-ok` from hiding a daemon that runs elsewhere or that died.
//!
//! A `control-server` daemon holds a lock file next to its socket (`PATH.lock` for the socket
//! `PATH`, `flock`ed, mode 0600) for as long as it serves, and a clean stop removes both. So:
//!
//! - **running**: a process holds open, and holds the `flock` of (as `/proc/locks` says), a
//!   lock file whose name is that of daemon NAME by the socket convention
//!   (`DIR/NAME.sock.lock`, or `DIR/NAME/ctl.sock.lock`), owned by root or by the process's
//!   own user. Every process's descriptors are read from `/proc/PID/fd` (as root: all of
//!   them), bounded in processes and descriptors. A process name is never looked at: any user
//!   can name a process anything, but only the daemon's user (or root) can hold a lock file it
//!   owns, and a lock file nobody holds says nothing about who runs.
//! - **died**: at a place looked, a socket file (nobody accepts on it) or a lock file that
//!   nobody holds. Killed, crashed and OOM-killed daemons leave these; a stopped one does not.
//!   Only a trace owned by root or by the owner of its directory counts: another user cannot
//!   make a stopped daemon look dead by leaving a file in a shared sticky directory.
//! - **stopped**: neither.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// At most this many processes are reported, this many are read, and this many descriptors
/// of each: the answer stays short and the scan bounded whatever runs on the host.
const MAX_PROCESSES: usize = 8;
const MAX_SCANNED: usize = 1 << 16;
const MAX_FDS: usize = 4096;

/// A running process that holds the lock of daemon NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// The process's effective uid: a daemon another user runs is named as theirs.
    pub uid: u32,
    /// The sockets whose lock file it holds: where it listens (or will again, if its socket
    /// file was removed).
    pub sockets: Vec<PathBuf>,
}

/// What a daemon that did not stop cleanly left at a place looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trace {
    /// A socket file nobody accepts on.
    StaleSocket(PathBuf),
    /// A lock file nobody holds (its socket file is gone too).
    Orphaned(PathBuf),
}

impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trace::StaleSocket(p) => write!(
                f,
                "its socket {} is stale (nobody accepts on it, and no process holds its lock)",
                control_api::text::escape_path(p)
            ),
            Trace::Orphaned(p) => write!(
                f,
                "its lock file {} is left behind and no process holds it",
                control_api::text::escape_path(p)
            ),
        }
    }
}

/// The processes holding a lock of daemon `name`, other than this one, lowest pid first.
pub fn find(name: &str) -> Vec<Process> {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    find_in(Path::new("/proc"), &locks, name, std::process::id())
}

fn find_in(proc: &Path, locks: &str, name: &str, me: u32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .take(MAX_SCANNED)
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| {
            let dir = proc.join(pid.to_string());
            let uid = std::fs::metadata(&dir).ok()?.uid();
            let sockets = held_locks(&dir, pid, uid, locks, name);
            (!sockets.is_empty()).then_some(Process { pid, uid, sockets })
        })
        .take(MAX_PROCESSES)
        .collect()
}

/// The sockets of daemon `name` whose lock file the process at `dir` holds open and locked.
fn held_locks(dir: &Path, pid: u32, uid: u32, locks: &str, name: &str) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return Vec::new();
    };
    let mut sockets: Vec<PathBuf> = fds
        .take(MAX_FDS)
        .filter_map(Result::ok)
        .filter_map(|fd| {
            // The kernel names the open file by its path now; an unlinked one reads
            // "PATH (deleted)" and ends in neither name, so it is passed over.
            let target = std::fs::read_link(fd.path()).ok()?;
            let socket = PathBuf::from(target.to_str()?.strip_suffix(".lock")?);
            if daemon_name(&socket)? != name {
                return None;
            }
            // The open file itself, not whatever is at its path now.
            let meta = std::fs::metadata(fd.path()).ok()?;
            let trusted = meta.file_type().is_file() && (meta.uid() == 0 || meta.uid() == uid);
            (trusted && holder_in(locks, meta.dev(), meta.ino()) == Some(pid)).then_some(socket)
        })
        .collect();
    sockets.sort();
    sockets.dedup();
    sockets
}

/// The daemon name the socket convention gives a socket path: `DIR/NAME.sock`, or
/// `DIR/NAME/ctl.sock` (a daemon's own runtime directory).
fn daemon_name(socket: &Path) -> Option<&str> {
    control_api::socket::implied_name(socket).filter(|n| !n.is_empty())
}

/// The effective uid of process `pid` (the owner of `/proc/PID`), or root's if it is gone.
pub fn uid_of(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}")).map_or(0, |m| m.uid())
}

/// The pid holding a `flock` on the file `dev`/`ino`, from the text of `/proc/locks`, whose
/// lines read `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (device numbers in hex); a
/// waiter's line has `->` after the number and is skipped.
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let want = (rustix::fs::major(dev), rustix::fs::minor(dev), ino);
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
        (found == want).then_some(pid)
    })
}

/// Whether some process holds the lock file of `socket` (a daemon given by path, whose name
/// ctl does not know): its pid.
pub fn lock_holder(socket: &Path) -> Option<u32> {
    let meta = std::fs::symlink_metadata(lock_path(socket)).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, meta.dev(), meta.ino())
}

/// The first trace of a daemon that did not stop cleanly at the places `looked`, if any. Only
/// called once nothing accepted at any of them, so a socket file there is a stale one.
pub fn left_behind(looked: &[PathBuf]) -> Option<Trace> {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    looked.iter().find_map(|socket| trace_at(socket, &locks))
}

fn trace_at(socket: &Path, locks: &str) -> Option<Trace> {
    let lock = lock_path(socket);
    let lock_meta = std::fs::symlink_metadata(&lock).ok();
    if let Some(meta) = &lock_meta {
        if holder_in(locks, meta.dev(), meta.ino()).is_some() {
            // Held: alive (binding, or putting its socket back); not this module's "died".
            return None;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if meta.file_type().is_socket() && left_by_owner(socket, &meta) {
            return Some(Trace::StaleSocket(socket.to_owned()));
        }
    }
    match lock_meta {
        Some(meta) if meta.file_type().is_file() && left_by_owner(&lock, &meta) => {
            Some(Trace::Orphaned(lock))
        }
        _ => None,
    }
}

/// Whether a file could only have been left by root or by the owner of its directory (the
/// daemon's user), not by a third user in a shared directory.
fn left_by_owner(path: &Path, meta: &std::fs::Metadata) -> bool {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    meta.uid() == 0 || std::fs::metadata(dir).is_ok_and(|d| d.uid() == meta.uid())
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut path = socket.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_socket_convention() {
        assert_eq!(daemon_name(Path::new("/run/ctl/web.sock")), Some("web"));
        assert_eq!(daemon_name(Path::new("/run/web/ctl.sock")), Some("web"));
        assert_eq!(daemon_name(Path::new("/srv/x/.sock")), None);
        assert_eq!(daemon_name(Path::new("/srv/x/web.socket")), None);
    }

    #[test]
    fn the_holder_of_a_flock_is_read_from_proc_locks() {
        let dev = rustix::fs::makedev(0xfd, 1);
        let locks = "1: FLOCK  ADVISORY  WRITE 77 fd:01:5678 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 78 fd:01:5678 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 79 fd:01:9999 0 EOF\n";
        assert_eq!(holder_in(locks, dev, 5678), Some(77));
        assert_eq!(holder_in(locks, dev, 9999), None, "not a flock");
        assert_eq!(holder_in(locks, dev, 1), None);
    }

    #[test]
    fn a_stale_socket_or_an_unheld_lock_is_a_trace_and_nothing_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone.sock");
        assert_eq!(left_behind(std::slice::from_ref(&gone)), None);

        std::fs::write(lock_path(&gone), "").unwrap();
        assert_eq!(
            left_behind(std::slice::from_ref(&gone)),
            Some(Trace::Orphaned(lock_path(&gone)))
        );

        let stale = tmp.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert_eq!(
            left_behind(&[gone.clone(), stale.clone()]),
            Some(Trace::Orphaned(lock_path(&gone))),
            "the first place looked first"
        );
        assert_eq!(
            left_behind(std::slice::from_ref(&stale)),
            Some(Trace::StaleSocket(stale.clone()))
        );

        // A held lock is a daemon that lives.
        let lock = std::fs::File::create(lock_path(&stale)).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(left_behind(std::slice::from_ref(&stale)), None);
        assert_eq!(lock_holder(&stale), Some(std::process::id()));
    }

    #[test]
    fn a_held_lock_of_that_name_is_a_running_daemon_whatever_the_process_is_called() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("lockname.sock");
        let other = tmp.path().join("othername.sock");
        let held = std::fs::File::create(lock_path(&socket)).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        // Open but not locked: says nothing.
        let _open = std::fs::File::create(lock_path(&other)).unwrap();
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        let me = std::process::id();
        let found = find_in(Path::new("/proc"), &locks, "lockname", 0);
        let ours: Vec<_> = found.iter().filter(|p| p.pid == me).collect();
        assert_eq!(ours.len(), 1, "{found:?}");
        assert_eq!(ours[0].sockets, [socket]);
        assert!(find_in(Path::new("/proc"), &locks, "othername", 0)
            .iter()
            .all(|p| p.pid != me));
        // Never ourselves.
        assert!(find_in(Path::new("/proc"), &locks, "lockname", me).is_empty());
    }
}
