//! Reading another process from `/proc`, for `ctl signal`: its name, state and owner, its signal
//! dispositions (per process) and masks (per thread), and its open descriptors.
//!
//! Every read is by pid, so it is only about the process `ctl signal` holds a pidfd of while
//! that process is alive: a pid is not reused until its process has exited and been reaped.
//! [`crate::signal`] checks that after reading, never before only.
//!
//! What the kernel shows, and what it takes to see it: `/proc/PID/status` and `stat` are
//! readable by anyone (unless /proc is mounted with `hidepid`); `/proc/PID/fd` and `fdinfo`
//! need ptrace read access (the same uid and no `PR_SET_DUMPABLE` 0, or root): refused,
//! they are [`io::ErrorKind::PermissionDenied`].

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

/// A file's identity: what a descriptor and a path are compared by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of the file at `path` now (following a link), or `None` if there is none.
    pub fn of_path(path: &std::path::Path) -> Option<FileId> {
        fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// A bit set of signals as `/proc/PID/status` shows them: bit N-1 is signal N.
pub type SigSet = u64;

/// The bit of signal number `n` (1..=64) in a [`SigSet`].
pub fn bit(n: i32) -> SigSet {
    1u64 << (n - 1)
}

/// What `/proc/PID/status` says about a process's signals and owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispositions {
    /// Signals with a handler installed (`SigCgt`): shared by all threads.
    pub caught: SigSet,
    /// Signals set to be ignored (`SigIgn`): shared by all threads.
    pub ignored: SigSet,
    /// Signals blocked by the main thread (`SigBlk`).
    pub blocked_main: SigSet,
    /// The real uid (`Uid:`'s first field).
    pub uid: u32,
    /// The saved set-user-ID (`Uid:`'s third field).
    pub saved_uid: u32,
    /// The state letter (`State:`): `Z` zombie and `X` dead are processes that exited.
    pub state: char,
}

impl Dispositions {
    /// Whether the process has exited (and waits to be reaped, or is being torn down).
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of `/proc/PID/status` (or `/proc/PID/task/TID/status`).
pub fn parse_status(text: &str) -> io::Result<Dispositions> {
    let mut d = Dispositions::default();
    let mut seen = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let hex = || u64::from_str_radix(value, 16).map_err(|_| bad(line));
        match key {
            "SigCgt" => d.caught = hex()?,
            "SigIgn" => d.ignored = hex()?,
            "SigBlk" => d.blocked_main = hex()?,
            "Uid" => {
                let mut uids = value.split_whitespace();
                let real = uids.next().unwrap_or_default();
                d.uid = real.parse().map_err(|_| bad(line))?;
                let saved = uids.nth(1).unwrap_or(real);
                d.saved_uid = saved.parse().map_err(|_| bad(line))?;
            }
            "State" => d.state = value.chars().next().ok_or_else(|| bad(line))?,
            _ => continue,
        }
        seen += 1;
    }
    if seen < 5 {
        return Err(bad(
            "a status without SigCgt, SigIgn, SigBlk, Uid and State",
        ));
    }
    Ok(d)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc text: {what:?}"),
    )
}

/// The process's signal dispositions and its main thread's mask.
pub fn dispositions(pid: i32) -> io::Result<Dispositions> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status"))?)
}

/// The signals blocked in every thread of the process, and how many threads it has. A
/// signal sent to a process is delivered to any one thread that does not block it, so only
/// these are held back.
pub fn blocked_in_every_thread(pid: i32) -> io::Result<(SigSet, usize)> {
    let mut all = !0u64;
    let mut threads = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("status");
        match fs::read_to_string(&path) {
            Ok(text) => {
                all &= parse_status(&text)?.blocked_main;
                threads += 1;
            }
            // A thread that exited since the listing blocks nothing any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if threads == 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok((all, threads))
}

/// The process's name as `/proc/PID/comm` has it (at most 15 bytes, the trailing newline
/// removed); what `pkill -x` matches.
pub fn comm(pid: i32) -> io::Result<Vec<u8>> {
    let mut name = fs::read(format!("/proc/{pid}/comm"))?;
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    Ok(name)
}

/// The longest name `/proc/PID/comm` holds (`TASK_COMM_LEN` - 1).
pub const COMM_MAX: usize = 15;

/// What a process name can hold of `name`: its first [`COMM_MAX`] bytes, cut back to a
/// character's boundary.
pub fn comm_prefix(name: &str) -> &str {
    let mut end = name.len().min(COMM_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Every process (not thread) whose [`comm`] is `name`, but this one; a process that exits
/// while the list is read is left out.
pub fn pids_named(name: &[u8]) -> io::Result<Vec<i32>> {
    pids_matching(|comm| comm == name)
}

/// Every process (not thread) but this one whose [`comm`] `matches`; a process that exits
/// while the list is read is left out.
pub fn pids_matching(matches: impl Fn(&[u8]) -> bool) -> io::Result<Vec<i32>> {
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = numbered("/proc")?;
    pids.retain(|&pid| pid != me && comm(pid).is_ok_and(|c| matches(&c)));
    pids.sort_unstable();
    Ok(pids)
}

/// The names in the directory `dir` that are numbers (pids, descriptors), in the order read.
fn numbered<N: std::str::FromStr>(dir: &str) -> io::Result<Vec<N>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(n) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            numbers.push(n);
        }
    }
    Ok(numbers)
}

/// One open descriptor of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    pub fd: u32,
    /// Where `/proc/PID/fd/N` points: a path (with ` (deleted)` appended once the file was
    /// unlinked), or `anon_inode:[signalfd]`, `socket:[123]`, ...
    pub link: PathBuf,
    /// The open file's identity, from `stat` through the link (which works for a deleted file).
    pub id: FileId,
    /// A regular file.
    pub regular: bool,
    /// Opened for writing (`O_WRONLY` or `O_RDWR`, from `fdinfo`'s `flags`).
    pub writable: bool,
}

/// The process's open descriptors. A descriptor closed while they are read is left out.
/// Refused ([`io::ErrorKind::PermissionDenied`]) without ptrace read access to the process.
pub fn open_files(pid: i32) -> io::Result<Vec<OpenFile>> {
    let mut files = Vec::new();
    for fd in numbered(&format!("/proc/{pid}/fd"))? {
        match open_file(pid, fd) {
            Ok(file) => files.push(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    files.sort_by_key(|f| f.fd);
    Ok(files)
}

fn open_file(pid: i32, fd: u32) -> io::Result<OpenFile> {
    let path = format!("/proc/{pid}/fd/{fd}");
    let link = match fs::read_link(&path) {
        // A path longer than the kernel will say (a page): the file is still known by its
        // identity, which is what the checks compare.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error()) => {
            PathBuf::from("(a path too long to read)")
        }
        link => link?,
    };
    let meta = fs::metadata(&path)?;
    let flags = fdinfo_field(pid, fd, "flags")?;
    let flags = u32::from_str_radix(&flags, 8).map_err(|_| bad(&flags))?;
    Ok(OpenFile {
        fd,
        link,
        id: FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        regular: meta.file_type().is_file() && !meta.file_type().is_fifo(),
        // O_ACCMODE: 0 read only, 1 write only, 2 read and write.
        writable: flags & 3 != 0,
    })
}

/// The value of `key` in `/proc/PID/fdinfo/FD`.
fn fdinfo_field(pid: i32, fd: u32, key: &str) -> io::Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| bad(&format!("fdinfo without {key}")))
}

/// The signals some signalfd of the process reads (`fdinfo`'s `sigmask`, OR-ed): a process
/// that blocks a signal in every thread and reads it from a signalfd handles it.
pub fn signalfd_signals(pid: i32, files: &[OpenFile]) -> SigSet {
    let signalfd = OsString::from_vec(b"anon_inode:[signalfd]".to_vec());
    files
        .iter()
        .filter(|f| f.link.as_os_str() == signalfd)
        .filter_map(|f| fdinfo_field(pid, f.fd, "sigmask").ok())
        .filter_map(|mask| u64::from_str_radix(&mask, 16).ok())
        .fold(0, |all, mask| all | mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_whose_path_is_too_long_to_read_is_known_by_its_identity() {
        use rustix::fs::{mkdirat, openat, Mode, OFlags};
        let dir = tempfile::tempdir().unwrap();
        // 20 levels of 250 bytes: past the page the kernel writes a descriptor's path into.
        let mut at = openat(
            rustix::fs::CWD,
            dir.path(),
            OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let name = "d".repeat(250);
        for _ in 0..20 {
            mkdirat(&at, name.as_str(), Mode::from_raw_mode(0o700)).unwrap();
            at = openat(&at, name.as_str(), OFlags::DIRECTORY, Mode::empty()).unwrap();
        }
        let file = openat(
            &at,
            "f",
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let st = rustix::fs::fstat(&file).unwrap();
        let want = FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let fd = rustix::fd::AsRawFd::as_raw_fd(&file) as u32;
        let files = open_files(std::process::id() as i32).unwrap();
        let found = files
            .iter()
            .find(|f| f.fd == fd)
            .expect("the descriptor is listed");
        assert_eq!(found.link, PathBuf::from("(a path too long to read)"));
        assert_eq!(found.id, want);
        assert!(found.regular && found.writable);
    }

    #[test]
    fn status_is_parsed_for_what_signal_needs() {
        let text = "Name:\tnginx\nState:\tS (sleeping)\nUid:\t33\t33\t33\t33\n\
                    SigQ:\t0/63459\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
                    SigBlk:\t0000000000000002\nSigIgn:\t0000000000001000\nSigCgt:\t0000000180000001\n";
        let d = parse_status(text).unwrap();
        assert_eq!(d.caught, 0x1_8000_0001);
        assert_eq!(d.caught & bit(1), bit(1), "SIGHUP is bit 0");
        assert_eq!(d.ignored, bit(13), "SIGPIPE");
        assert_eq!(d.blocked_main, bit(2));
        assert_eq!((d.uid, d.state), (33, 'S'));
        let setuid =
            parse_status(&text.replace("Uid:\t33\t33\t33\t33", "Uid:\t5\t0\t0\t0")).unwrap();
        assert_eq!((setuid.uid, setuid.saved_uid), (5, 0));
        assert!(!d.exited());
        assert!(parse_status("Name:\tx\n").is_err());
        assert!(parse_status(&text.replace("0000000000000002", "zz")).is_err());
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = std::process::id() as i32;
        let d = dispositions(me).unwrap();
        assert_eq!(d.uid, rustix::process::getuid().as_raw());
        let (_, threads) = blocked_in_every_thread(me).unwrap();
        assert!(threads >= 1);
        let name = comm(me).unwrap();
        assert!(!name.is_empty() && name.len() <= 15, "{name:?}");
        let file = tempfile::tempfile().unwrap();
        let files = open_files(me).unwrap();
        use std::os::fd::AsRawFd;
        let ours = files
            .iter()
            .find(|f| f.fd == file.as_raw_fd() as u32)
            .unwrap();
        assert!(ours.regular && ours.writable, "{ours:?}");
    }
}
