//! Whether a daemon is running although no socket answers: what keeps `--missing-ok` from
//! hiding a daemon that listens somewhere `ctl` did not look (another user's socket directory,
//! a `CTL_SOCKET_DIR` set only on the daemon's side).
//!
//! A process is the daemon NAME when its `comm` (the kernel's 15-byte name) or the base name of
//! its executable is NAME, as `pgrep` matches. Where it listens is read from the lock file
//! `control-server` holds open next to its socket (`PATH.lock` for the socket `PATH`): the
//! kernel names it by its current path in `/proc/PID/fd`, readable for our own processes or as
//! root.

use std::path::{Path, PathBuf};

/// The kernel keeps this many bytes of a process name (`TASK_COMM_LEN` less the NUL).
const COMM_LEN: usize = 15;

/// At most this many processes are reported, and this many descriptors of each read: the
/// hint stays short and the scan bounded whatever runs on the host.
const MAX_PROCESSES: usize = 8;
const MAX_FDS: usize = 4096;

/// A running process that looks like the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Sockets it holds a control-server lock file for: where it listens.
    pub sockets: Vec<PathBuf>,
}

/// The processes named `name`, other than this one, lowest pid first.
pub fn find(name: &str) -> Vec<Process> {
    find_in(Path::new("/proc"), name, std::process::id())
}

fn find_in(proc: &Path, name: &str, me: u32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| is_named(&proc.join(pid.to_string()), name))
        .collect();
    pids.sort_unstable();
    pids.truncate(MAX_PROCESSES);
    pids.into_iter()
        .map(|pid| Process {
            pid,
            sockets: sockets_of(&proc.join(pid.to_string())),
        })
        .collect()
}

/// Whether the process at `dir` (`/proc/PID`) is alive and named `name`.
fn is_named(dir: &Path, name: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // `PID (COMM) STATE ...`; COMM may hold spaces and parentheses, so split at the last ')'.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    // A zombie has exited: it listens nowhere.
    if rest.trim_start().starts_with(['Z', 'X']) {
        return false;
    }
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    let short = match name.char_indices().nth(COMM_LEN) {
        Some((i, _)) => &name[..i],
        None => name,
    };
    if comm == short && (name.len() <= COMM_LEN || exe_name(dir).is_none()) {
        return true;
    }
    exe_name(dir).is_some_and(|exe| exe == name)
}

/// The base name of the process's executable, when we may read it.
fn exe_name(dir: &Path) -> Option<String> {
    let exe = std::fs::read_link(dir.join("exe")).ok()?;
    let base = exe.file_name()?.to_str()?;
    // A binary replaced since the process started (an upgrade) reads "NAME (deleted)".
    Some(base.strip_suffix(" (deleted)").unwrap_or(base).to_owned())
}

/// The sockets whose control-server lock file the process holds open.
fn sockets_of(dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
        return Vec::new();
    };
    let mut sockets: Vec<PathBuf> = fds
        .take(MAX_FDS)
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let socket = target.to_str()?.strip_suffix(".lock")?;
            use std::os::unix::fs::FileTypeExt;
            let meta = std::fs::symlink_metadata(socket).ok()?;
            meta.file_type().is_socket().then(|| PathBuf::from(socket))
        })
        .collect();
    sockets.sort();
    sockets.dedup();
    sockets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/proc/PID` with `stat` and, optionally, an `exe` link.
    fn process(proc: &Path, pid: u32, comm: &str, state: char, exe: Option<&str>) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), format!("{pid} ({comm}) {state} 1 2 3\n")).unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
    }

    #[test]
    fn processes_are_matched_by_comm_or_executable_never_ourselves_or_zombies() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        process(proc, 10, "web", 'S', None);
        process(proc, 11, "web", 'Z', None);
        process(proc, 12, "web", 'S', None); // ourselves
        process(
            proc,
            13,
            "tokio-runtime-w",
            'S',
            Some("/usr/sbin/web (deleted)"),
        );
        process(proc, 14, "webby", 'S', Some("/usr/sbin/webby"));
        process(proc, 15, "a) web (x", 'S', None);
        let pids: Vec<u32> = find_in(proc, "web", 12).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 13]);
    }

    #[test]
    fn long_names_match_the_executable_or_the_truncated_comm() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        let name = "a-long-daemon-name";
        process(proc, 20, &name[..15], 'S', None);
        process(proc, 21, &name[..15], 'S', Some("/bin/a-long-daemon-nameX"));
        process(proc, 22, "other", 'S', Some("/bin/a-long-daemon-name"));
        let pids: Vec<u32> = find_in(proc, name, 1).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [20, 22]);
    }

    #[test]
    fn the_lock_file_held_open_tells_where_it_listens() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path().join("proc");
        process(&proc, 30, "web", 'S', None);
        let socket = tmp.path().join("elsewhere.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let fd = proc.join("30/fd");
        std::fs::create_dir(&fd).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere.sock.lock"), fd.join("3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        // A lock file whose socket is gone says nothing.
        std::os::unix::fs::symlink(tmp.path().join("gone.sock.lock"), fd.join("4")).unwrap();
        assert_eq!(
            find_in(&proc, "web", 1),
            [Process {
                pid: 30,
                sockets: vec![socket]
            }]
        );
    }
}
