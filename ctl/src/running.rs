//! What became of a daemon that no socket answers for: it stopped, it died, or it runs and
//! listens somewhere ctl did not look. Decided from what `control-server` leaves (see
//! [`control_api::lock`]): a daemon holds `SOCKET.lock` for its whole life and removes the
//! socket, then the lock file, when it stops. So
//!
//! - a lock that some process holds: that process is the daemon, running;
//! - a socket nobody accepts on, or a lock file nobody holds: it died (crashed, killed,
//!   OOM-killed) without cleaning up;
//! - nothing left where ctl looks and no process holding a lock for the name: it stopped.
//!
//! With `CTL_SOCKET_DIR` set, a name is looked up there only, and so are its remains.
//!
//! Only what root or the daemon's owner could have made counts: a lock file owned by another
//! user, or a process of another user holding a lock for the name, says nothing (any user may
//! start a program called NAME, or make a file called `NAME.sock.lock` in a directory of
//! theirs). Process names are never looked at.

use control_api::lock;
use control_api::socket::{implied_name, SocketEnv};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// At most this many processes are reported, and this many descriptors of each read: the
/// message stays short and the scan bounded whatever runs on the host.
const MAX_PROCESSES: usize = 8;
const MAX_FDS: usize = 4096;

/// A running process that holds a lock for the daemon's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// The socket whose lock it holds: where it listens, or will again once it has bound
    /// a removed socket anew.
    pub socket: PathBuf,
}

/// What a daemon left that says it died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remains {
    /// The socket, or the lock file, that is left.
    pub path: PathBuf,
    /// What that is, in words.
    pub what: &'static str,
    /// When it was last changed: about when the daemon started.
    pub since: Option<SystemTime>,
}

/// What became of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It stopped: it left nothing.
    Stopped,
    /// It died: it left a socket or lock file behind.
    Died(Remains),
    /// It runs: these processes hold its lock.
    Running(Vec<Process>),
}

/// Judges the daemon `name` (`None` for a target given by path) that nobody answered for at
/// `looked`, of which `found` are the places where a socket (trusted) was found.
pub fn judge(name: Option<&str>, looked: &[PathBuf], found: &[PathBuf]) -> Verdict {
    let me = std::process::id();
    let uid = rustix::process::geteuid().as_raw();
    let mut running = Vec::new();
    let mut died = None;
    for socket in looked {
        let lock_file = lock::lock_path(socket);
        if let Some(meta) = trusted_lock_file(&lock_file, &[0, uid, dir_owner(socket)]) {
            match lock::holder(&meta) {
                Some(pid) if pid != me => running.push(Process {
                    pid,
                    socket: socket.clone(),
                }),
                Some(_) => {}
                None => {
                    died.get_or_insert(Remains {
                        path: lock_file,
                        what: "a lock file that no process holds",
                        since: meta.modified().ok(),
                    });
                }
            }
        }
        // A socket found (and trusted) where nobody accepted.
        if !found.contains(socket) {
            continue;
        }
        if let Ok(meta) = std::fs::symlink_metadata(socket) {
            if meta.file_type().is_socket() {
                died = Some(Remains {
                    path: socket.clone(),
                    what: "a socket that nobody accepts on",
                    since: meta.modified().ok(),
                });
            }
        }
    }
    // With CTL_SOCKET_DIR the caller named the one place to look: a daemon of that name
    // elsewhere is not the one asked for.
    let only_there = SocketEnv::from_process().override_dir().is_some();
    if let Some(name) = name.filter(|_| !only_there) {
        for process in scan(Path::new("/proc"), name, me, looked) {
            if !running.iter().any(|p| p.pid == process.pid) {
                running.push(process);
            }
        }
    }
    running.truncate(MAX_PROCESSES);
    match (running.is_empty(), died) {
        (false, _) => Verdict::Running(running),
        (true, Some(remains)) => Verdict::Died(remains),
        (true, None) => Verdict::Stopped,
    }
}

/// The lock file at `path` if it is a regular file (not followed) owned by one of `owners`.
fn trusted_lock_file(path: &Path, owners: &[u32]) -> Option<std::fs::Metadata> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    (meta.file_type().is_file() && owners.contains(&meta.uid())).then_some(meta)
}

/// The owner of the directory `socket` is in (root when it cannot be told).
fn dir_owner(socket: &Path) -> u32 {
    socket
        .parent()
        .and_then(|dir| std::fs::symlink_metadata(dir).ok())
        .filter(|meta| meta.is_dir())
        .map_or(0, |meta| meta.uid())
}

/// The processes in `proc` (other than `me`) that hold the lock of a socket named for `name`
/// somewhere other than `looked`, and that root or `name`'s owner runs.
fn scan(proc: &Path, name: &str, me: u32, looked: &[PathBuf]) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let owners = name_owners(name);
    let mut pids: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let uid = e.metadata().ok()?.uid();
            (pid != me && owners.contains(&uid)).then_some((pid, uid))
        })
        .collect();
    pids.sort_unstable();
    let mut found = Vec::new();
    for (pid, uid) in pids {
        for socket in held_locks(&proc.join(pid.to_string()), uid) {
            if implied_name(&socket) == Some(name) && !looked.contains(&socket) {
                found.push(Process { pid, socket });
                break;
            }
        }
        if found.len() == MAX_PROCESSES {
            break;
        }
    }
    found
}

/// Who, besides root, may run the daemon `name`: the owner of its runtime directory
/// `RUN/NAME` (what `RuntimeDirectory=NAME` makes for `User=`), and the user called `name`.
fn name_owners(name: &str) -> Vec<u32> {
    // Root, and the caller: a user's own daemons are theirs to ask about.
    let mut uids = vec![0, rustix::process::geteuid().as_raw()];
    let run_dir = SocketEnv::from_process().run_dir().join(name);
    if let Ok(meta) = std::fs::symlink_metadata(run_dir) {
        if meta.is_dir() {
            uids.push(meta.uid());
        }
    }
    uids.extend(user_uid(Path::new("/etc/passwd"), name));
    uids
}

/// The uid of the user `name` in the passwd file at `passwd`. Users only a directory
/// service knows are not found: their daemons are still found by their runtime directory.
fn user_uid(passwd: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// The sockets of the lock files that the process at `dir` (`/proc/PID`) holds open, owned by
/// its user `uid` (the daemon made them), held by someone, and next to a socket. `ctl doctor`
/// tells a daemon that serves a control socket by them.
pub(crate) fn held_locks(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return Vec::new();
    };
    let mut sockets: Vec<PathBuf> = fds
        .take(MAX_FDS)
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let socket = lock::socket_of(&target)?;
            let meta = trusted_lock_file(&target, &[uid])?;
            lock::holder(&meta)?;
            let socket_meta = std::fs::symlink_metadata(&socket).ok()?;
            socket_meta.file_type().is_socket().then_some(socket)
        })
        .collect();
    sockets.sort();
    sockets.dedup();
    sockets
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{flock, FlockOperation};

    /// The verdict for a socket path that was the one place looked, and found.
    fn at(socket: &Path) -> Verdict {
        let places = [socket.to_path_buf()];
        judge(None, &places, &places)
    }

    /// What the daemon at `socket` left, which says it died.
    fn left(socket: &Path) -> PathBuf {
        match at(socket) {
            Verdict::Died(r) => r.path,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_left_is_stopped_a_lock_file_nobody_holds_or_a_dead_socket_is_died() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("web.sock");
        assert_eq!(at(&socket), Verdict::Stopped);

        std::fs::write(lock::lock_path(&socket), "").unwrap();
        assert_eq!(left(&socket), lock::lock_path(&socket));

        // A socket left behind says more than its lock file.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert_eq!(left(&socket), socket);
    }

    #[test]
    fn a_held_lock_is_running_whatever_is_left_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("web.sock");
        let file = std::fs::File::create(lock::lock_path(&socket)).unwrap();
        // Held by a child: a lock this process holds is not another daemon.
        let mut child = std::process::Command::new("flock")
            .arg(lock::lock_path(&socket))
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                break;
            }
            flock(&file, FlockOperation::Unlock).unwrap();
            assert!(std::time::Instant::now() < deadline, "flock never took it");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let verdict = at(&socket);
        let _ = child.kill();
        let _ = child.wait();
        match verdict {
            Verdict::Running(p) => assert_eq!(p[0].socket, socket),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lock_file_of_another_user_says_nothing() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("web.sock");
        let lock_file = lock::lock_path(&socket);
        std::fs::write(&lock_file, "").unwrap();
        std::os::unix::fs::chown(&lock_file, Some(65534), None).unwrap();
        assert_eq!(at(&socket), Verdict::Stopped);
    }

    #[test]
    fn users_are_found_by_name_in_the_passwd_file() {
        let tmp = tempfile::tempdir().unwrap();
        let passwd = tmp.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\nweb:x:998:998::/var/lib/web:/usr/sbin/nologin\n",
        )
        .unwrap();
        assert_eq!(user_uid(&passwd, "web"), Some(998));
        assert_eq!(user_uid(&passwd, "we"), None);
        assert_eq!(user_uid(&passwd, "x"), None);
    }
}
