//! Who a caller is, beyond its uid: its user name and its command line, read at the call.
//!
//! Both reads can stall. `/proc/PID/cmdline` takes the caller's memory-map lock, which the
//! caller can hold (a page fault on a FUSE mapping it serves), and a user name lookup goes
//! through NSS (LDAP, sssd). So they run on the blocking pool, never on the runtime, at most a
//! few at once per kind of caller (root and the daemon's own uid have their own), and a call's
//! record waits for them at most [`LOOKUP_WAIT`]: a caller who stalls its own lookup gets a
//! record without its command line, and cannot take the threads the daemon's reloads run on.

use crate::policy::Peer;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The most bytes of a command line kept; a longer one is cut and ends in `...`.
pub const MAX_COMMAND_LINE: usize = 512;

/// How long a record waits for its caller's lookup, counted from the call.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// How many of a caller's ancestors are named.
pub const MAX_ANCESTORS: usize = 4;

/// Lookups running at once, per kind of caller.
const LOOKUPS_AT_ONCE: usize = 4;

/// What was learnt of a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The uid's name in the user database.
    pub user: Option<String>,
    /// The command line, or why it is not known (`gone`, `no pid`, `busy`).
    pub command_line: Result<String, &'static str>,
    /// The names (`comm`) of its parent, grandparent, ... up to [`MAX_ANCESTORS`].
    pub ancestors: Vec<String>,
}

impl Identity {
    pub fn unread(why: &'static str) -> Identity {
        Identity {
            user: None,
            command_line: Err(why),
            ancestors: Vec::new(),
        }
    }
}

/// The permits of lookups: one set for root and the daemon's own uid, one for everyone else,
/// so that nobody else's stalled lookups can keep root's calls from being recorded whole.
#[derive(Debug)]
pub(crate) struct Lookups {
    trusted: Arc<Semaphore>,
    others: Arc<Semaphore>,
}

/// A lookup under way; [`Pending::identity`] waits for it within the bound.
pub(crate) struct Pending {
    task: Option<JoinHandle<Identity>>,
    until: tokio::time::Instant,
}

impl Lookups {
    pub fn new() -> Lookups {
        Lookups {
            trusted: Arc::new(Semaphore::new(LOOKUPS_AT_ONCE)),
            others: Arc::new(Semaphore::new(LOOKUPS_AT_ONCE)),
        }
    }

    /// Starts learning who `peer` is, on the blocking pool; `trusted` for root and the
    /// daemon's own uid. Without a free permit, nothing is read (`busy`).
    pub fn start(&self, peer: Peer, trusted: bool) -> Pending {
        let until = tokio::time::Instant::now() + LOOKUP_WAIT;
        let permits = if trusted { &self.trusted } else { &self.others };
        let task = permits.clone().try_acquire_owned().ok().map(|permit| {
            tokio::task::spawn_blocking(move || {
                let identity = read(peer);
                drop(permit);
                identity
            })
        });
        Pending { task, until }
    }
}

impl Pending {
    /// What the lookup found, or `busy` if it had no permit or did not end in time.
    pub async fn identity(self) -> Identity {
        let Some(task) = self.task else {
            return Identity::unread("busy");
        };
        match tokio::time::timeout_at(self.until, task).await {
            Ok(Ok(identity)) => identity,
            _ => Identity::unread("busy"),
        }
    }
}

/// Reads `peer`'s user name and command line (blocking).
pub(crate) fn read(peer: Peer) -> Identity {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(peer.uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let (command_line, ancestors) = match peer.pid {
        None => (Err("no pid"), Vec::new()),
        Some(pid) => match command_line(pid, peer.uid) {
            Some((line, parent)) => (Ok(line), ancestors(parent)),
            None => (Err("gone"), Vec::new()),
        },
    };
    Identity {
        user,
        command_line,
        ancestors,
    }
}

/// `(comm, ppid)` from a `/proc/PID/stat`: `PID (COMM) STATE PPID ...`, where COMM may hold
/// spaces and parentheses of its own (the last `)` ends it).
fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((comm, ppid))
}

/// The names of `pid` and its ancestors, up to [`MAX_ANCESTORS`], ending at pid 1 or at one
/// that is gone. Names a process chose for itself: a hint (logrotate, cron, sshd), not proof.
fn ancestors(mut pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    while pid > 0 && names.len() < MAX_ANCESTORS {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        let Some((comm, ppid)) = parse_stat(&stat) else {
            break;
        };
        names.push(comm);
        if pid == 1 {
            break;
        }
        pid = ppid;
    }
    names
}

/// `/proc/PID/cmdline`, arguments joined by spaces, at most [`MAX_COMMAND_LINE`] bytes, and the
/// parent's pid; `None`
/// if the process is gone, or its pid now belongs to a process of another uid (it exited and
/// the pid was reused), or it has no command line (a zombie). Both files are read through one
/// descriptor of `/proc/PID`, so they are of the same process.
fn command_line(pid: u32, uid: u32) -> Option<(String, u32)> {
    use rustix::fs::{openat, Mode, OFlags};
    let dir = rustix::fs::open(
        format!("/proc/{pid}"),
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let read_at = |name: &str, limit: usize| -> Option<Vec<u8>> {
        let fd = openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(limit as u64)
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    };
    let status = String::from_utf8(read_at("status", 4096)?).ok()?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|e| e.parse::<u32>().ok())?;
    if effective != uid {
        return None;
    }
    let parent = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let bytes = read_at("cmdline", MAX_COMMAND_LINE + 1)?;
    let cut = bytes.len() > MAX_COMMAND_LINE;
    let bytes = &bytes[..bytes.len().min(MAX_COMMAND_LINE)];
    // Up to the last argument's end; nothing but NULs is no command line.
    let end = bytes.iter().rposition(|&b| b != 0)? + 1;
    // A NUL is never part of a UTF-8 sequence: replaced after the decoding as well as before.
    let mut line = String::from_utf8_lossy(&bytes[..end]).replace('\0', " ");
    if cut {
        line.push_str("...");
    }
    Some((line, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Peer {
        Peer {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            pid: Some(std::process::id()),
        }
    }

    #[test]
    fn this_process_is_read_and_a_gone_or_foreign_pid_is_not() {
        let identity = read(me());
        let line = identity.command_line.unwrap();
        let exe = std::env::args().next().unwrap();
        assert!(line.starts_with(&exe), "{line:?}");
        assert!(line.len() <= MAX_COMMAND_LINE + 3);
        if me().uid == 0 {
            assert_eq!(identity.user.as_deref(), Some("root"));
        }
        // A pid beyond pid_max is never a process.
        let gone = Peer {
            pid: Some(u32::MAX - 1),
            ..me()
        };
        assert_eq!(read(gone).command_line, Err("gone"));
        // Our own pid, claimed by another uid: not taken for that uid's.
        let foreign = Peer {
            uid: me().uid.wrapping_add(1),
            ..me()
        };
        assert_eq!(read(foreign).command_line, Err("gone"));
        assert!(
            !identity.ancestors.is_empty(),
            "the test harness has a parent"
        );
        let no_pid = Peer { pid: None, ..me() };
        assert_eq!(read(no_pid).command_line, Err("no pid"));
    }

    #[test]
    fn stat_names_with_spaces_and_parentheses_parse() {
        assert_eq!(
            parse_stat("42 (a (b) c) S 7 42 42 0"),
            Some(("a (b) c".to_owned(), 7))
        );
        assert_eq!(parse_stat("42 sh S 7"), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn past_the_permits_a_lookup_is_busy_not_waited_for() {
        let lookups = Lookups::new();
        let held: Vec<_> = (0..LOOKUPS_AT_ONCE)
            .map(|_| lookups.others.clone().try_acquire_owned().unwrap())
            .collect();
        let identity = lookups.start(me(), false).identity().await;
        assert_eq!(identity.command_line, Err("busy"));
        // Root's own permits are untouched by everyone else's.
        let identity = lookups.start(me(), true).identity().await;
        assert!(identity.command_line.is_ok(), "{identity:?}");
        drop(held);
    }
}
