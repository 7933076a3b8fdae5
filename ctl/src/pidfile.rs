//! Reading a pid file that root may act on: only one that nobody but root and ctl's own user
//! could have written, read without following a link, of bounded size, strictly parsed.
//!
//! The path is walked one component at a time from `/`, each directory opened without
//! following a link (`O_PATH | O_DIRECTORY | O_NOFOLLOW`) and judged by `fstat` on what was
//! opened, so what is judged is what is used:
//!
//! - every directory on the way is owned by root or by ctl's euid, and is not writable by its
//!   group or others, unless it has the sticky bit (like `/tmp`): then the entry taken from it
//!   must be owned by root or ctl's euid, which is what the sticky bit protects from being
//!   renamed or removed by anyone else;
//! - a symbolic link on the way (`/var/run -> /run`) is followed only from such a directory
//!   (so only a trusted user can have made it), and its target is walked by the same rules;
//! - the pid file itself is no symbolic link (`O_NOFOLLOW`), is a regular file owned by root
//!   or ctl's euid and not writable by its group or others; it is opened as a path only
//!   (`O_PATH`) to be judged, and opened for reading only once it is known to be a regular
//!   file (a device is never opened: no driver's open runs, no FIFO's writer is released).
//!
//! Its content is one positive decimal integer without sign or leading zeros, optionally
//! followed by one newline, at most [`MAX_LEN`] bytes.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The longest pid file read: a pid is at most 7 digits (`PID_MAX_LIMIT`, 4194304).
pub const MAX_LEN: usize = 64;

/// Symbolic links followed on one path, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Why a pid file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Nothing at the path: the daemon was stopped (a daemon removes its pid file on exit).
    #[error("no pid file at {}: the daemon is not running (it removes its pid file when it stops)", .path.display())]
    Missing { path: PathBuf },
    /// Another user could have written it, or it is a link.
    #[error("not trusting the pid file {}: {why}; nothing was sent: another user could point \
             it at any process; make it and the directories above it root's (or ctl's user's) \
             and writable by their owner only", .path.display())]
    Untrusted { path: PathBuf, why: Distrust },
    /// It holds something else than a pid.
    #[error("the pid file {} does not hold one pid: {why}; nothing was sent", .path.display())]
    Malformed { path: PathBuf, why: String },
    /// It could not be read.
    #[error("cannot read the pid file {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What makes a pid file, or a directory on its path, untrusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// The pid file is a symbolic link.
    #[error("{} is a symbolic link", .at.display())]
    Symlink { at: PathBuf },
    /// A file or directory owned by another user than root and the reader (ctl's user, or the
    /// user a line runs as: [`read_as`]).
    #[error("{} is owned by uid {uid}, neither root nor {}", .at.display(), reader_text(*.reader))]
    Owner { at: PathBuf, uid: u32, reader: u32 },
    /// A file, or a directory without the sticky bit, that its group or others may write.
    #[error("{} is writable by its group or others (mode {:04o})", .at.display(), .mode & 0o7777)]
    Writable { at: PathBuf, mode: u32 },
    /// The pid file is no regular file.
    #[error("{} is not a regular file", .at.display())]
    NotRegular { at: PathBuf },
}

/// Reads the pid in the pid file at `path`, by the rules above.
pub fn read(path: &Path) -> Result<i32, PidFileError> {
    read_in(Path::new("/"), path)
}

/// A user a pid file is read as: the user a line runs as (a user's crontab), with their groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    pub uid: u32,
    pub gid: u32,
    /// Every group of the user, the primary one included.
    pub groups: Vec<u32>,
}

/// [`read_in`] as `reader` would read it: the trust rule's second owner is `reader` (their own
/// pid file is theirs to trust), and the walk and the read are made by a thread of their own
/// whose credentials are `reader`'s, so that every check is the kernel's for that user (modes,
/// ACLs, groups). The thread ends with them; ctl's other threads keep their own. A directory or
/// file `reader` may not read is [`PidFileError::Unreadable`] with
/// [`io::ErrorKind::PermissionDenied`].
pub fn read_as(root: &Path, path: &Path, reader: &Reader) -> Result<i32, PidFileError> {
    if reader.uid == rustix::process::geteuid().as_raw() {
        return read_in(root, path);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                become_reader(reader).map_err(|e| PidFileError::Unreadable {
                    path: shown(root, path),
                    source: io::Error::other(format!(
                        "cannot take the rights of uid {} to read it: {e}",
                        reader.uid
                    )),
                })?;
                read_in(root, path)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Gives the calling thread, and only it, `reader`'s groups, gid and uid (real, effective and
/// saved: it cannot take root's back).
fn become_reader(reader: &Reader) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    let groups: Vec<Gid> = reader.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let gid = Gid::from_raw(reader.gid);
    let uid = Uid::from_raw(reader.uid);
    set_thread_groups(&groups)?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)?;
    Ok(())
}

/// `path` as read under `root`: what errors name.
fn shown(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// "ctl's user (uid 0)", or "the user it is read as (uid 1000)".
fn reader_text(reader: u32) -> String {
    if reader == rustix::process::geteuid().as_raw() {
        format!("ctl's user (uid {reader})")
    } else {
        format!("the user it is read as (uid {reader})")
    }
}

/// Reads the pid in the pid file at `path` as seen from the directory `root` (`ctl doctor
/// --root`): `root` is walked from `/` by the rules above, then `path` from `root`, where a
/// link's absolute target and `..` stay inside `root`, as they would in a chroot. Errors name
/// the path as read (`root` joined with `path`).
pub fn read_in(root: &Path, path: &Path) -> Result<i32, PidFileError> {
    let shown = shown(root, path);
    let file = open_trusted(root, path, &shown)?;
    let mut text = Vec::with_capacity(MAX_LEN + 1);
    std::fs::File::from(file)
        .take(MAX_LEN as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|source| PidFileError::Unreadable {
            path: shown.clone(),
            source,
        })?;
    parse(&text).map_err(|why| PidFileError::Malformed { path: shown, why })
}

/// One positive decimal integer, optionally followed by one newline. What is wrong is said by
/// the text's length and shape, never by its bytes: a pid file root is pointed at may be a
/// secret (`$(cat /etc/wireguard/privatekey)` in a user's crontab).
pub fn parse(text: &[u8]) -> Result<i32, String> {
    if text.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    let digits = text.strip_suffix(b"\n").unwrap_or(text);
    let len = text.len();
    let bytes = if len == 1 { "byte" } else { "bytes" };
    if digits.is_empty() {
        return Err("it is empty".into());
    }
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return Err(format!(
            "it is {len} {bytes}, not a positive decimal pid (digits only, no sign, no leading \
             zero, at most one newline after it)"
        ));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .ok_or_else(|| format!("it is {len} {bytes} of digits, out of the range of pids"))
}

/// Opens the pid file for reading, walking `root` then `path` as the module says; `shown` is
/// the path errors name.
fn open_trusted(root: &Path, path: &Path, shown: &Path) -> Result<OwnedFd, PidFileError> {
    let fail = |e: io::Error| io_error(shown, e);
    let absolute = if path.is_absolute() || root != Path::new("/") {
        path.to_owned()
    } else {
        std::env::current_dir().map_err(fail)?.join(path)
    };
    let top = open_dir(rustix::fs::CWD, OsStr::new("/"), Path::new("/")).map_err(fail)?;
    let mut walk = Walk {
        walked: vec![top],
        base: 1,
        links: 0,
        shown,
    };
    judge_dir(&walk.walked[0].1, &walk.walked[0].2).map_err(|why| untrusted(shown, why))?;
    if root != Path::new("/") {
        let mut pending = Vec::new();
        push_components(&mut pending, root);
        walk.run(pending, false)?;
        walk.base = walk.walked.len();
    }
    let mut pending = Vec::new();
    push_components(&mut pending, &absolute);
    walk.run(pending, true)?
        .ok_or_else(|| fail(io::Error::other("the path names no file")))
}

/// A walk down a path: the directories opened so far (the first `base` of them are the root,
/// which `..` and a link's absolute target do not leave), the links followed.
struct Walk<'a> {
    walked: Vec<(OwnedFd, Stat, PathBuf)>,
    base: usize,
    links: usize,
    shown: &'a Path,
}

impl Walk<'_> {
    /// Walks the `pending` components (the next one last); opens the last as the pid file
    /// when `to_file`, else as one more directory.
    fn run(
        &mut self,
        mut pending: Vec<OsString>,
        to_file: bool,
    ) -> Result<Option<OwnedFd>, PidFileError> {
        let shown = self.shown;
        let fail = |e: io::Error| io_error(shown, e);
        while let Some(name) = pending.pop() {
            if name == ".." {
                if self.walked.len() > self.base {
                    self.walked.pop();
                }
                continue;
            }
            let (dir, dir_stat, dir_path) = self.walked.last().expect("the root stays");
            let here = dir_path.join(&name);
            let entry = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fail(e.into()))?;
            judge_entry(dir_stat, &entry, &here).map_err(|why| untrusted(shown, why))?;
            let last = pending.is_empty() && to_file;
            if FileType::from_raw_mode(entry.st_mode) == FileType::Symlink {
                if last {
                    return Err(untrusted(shown, Distrust::Symlink { at: here }));
                }
                self.links += 1;
                if self.links > MAX_LINKS {
                    return Err(fail(io::Error::other("too many symbolic links")));
                }
                let target = rustix::fs::readlinkat(dir, name.as_os_str(), Vec::new())
                    .map_err(|e| fail(e.into()))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    self.walked.truncate(self.base);
                }
                push_components(&mut pending, &target);
                continue;
            }
            if last {
                return open_file(dir, &name, &here, shown).map(Some);
            }
            let next = open_dir(dir, &name, &here).map_err(fail)?;
            judge_dir(&next.1, &next.2).map_err(|why| untrusted(shown, why))?;
            self.walked.push(next);
        }
        Ok(None)
    }
}

/// Pushes `path`'s components so that the first is popped first; `.` and `/` drop out.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

fn open_dir(dir: impl AsFd, name: &OsStr, here: &Path) -> io::Result<(OwnedFd, Stat, PathBuf)> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, stat, here.to_owned()))
}

/// Opens the pid file itself, never through a link, and judges what was opened. It is
/// opened first as a path only (`O_PATH`: no device's open is run, no FIFO's writer is woken,
/// `/dev/watchdog` is not started), judged by `fstat`, and only a regular file is opened
/// again for reading, through `/proc/self/fd`: that very inode, whatever the name holds now.
fn open_file(
    dir: impl AsFd,
    name: &OsStr,
    here: &Path,
    shown: &Path,
) -> Result<OwnedFd, PidFileError> {
    let fail = |e: io::Error| io_error(shown, e);
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let path = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| fail(e.into()))?;
    let stat = rustix::fs::fstat(&path).map_err(|e| fail(e.into()))?;
    let at = here.to_owned();
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        // A link put there since it was looked at (`O_PATH | O_NOFOLLOW` opens the link).
        FileType::Symlink => return Err(untrusted(shown, Distrust::Symlink { at })),
        _ => return Err(untrusted(shown, Distrust::NotRegular { at })),
    }
    judge_owner(&stat, here, false).map_err(|why| untrusted(shown, why))?;
    reopen_regular(&path, &stat).map_err(fail)
}

/// Opens for reading the regular file that the `O_PATH` descriptor `path` (whose `fstat` is
/// `stat`) refers to, through `/proc/self/fd`, and checks it is still that file.
pub(crate) fn reopen_regular(path: &OwnedFd, stat: &Stat) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", path.as_raw_fd());
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = rustix::fs::open(proc.as_str(), flags, Mode::empty())?;
    let now = rustix::fs::fstat(&fd)?;
    if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino)
        || FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
    {
        return Err(io::Error::other(
            "what /proc/self/fd reopened is not the file that was judged",
        ));
    }
    Ok(fd)
}

/// A directory on the path: root's or ctl's user's, writable by nobody else unless sticky.
fn judge_dir(stat: &Stat, at: &Path) -> Result<(), Distrust> {
    judge_owner(stat, at, stat.st_mode & 0o1000 != 0)
}

/// Root's or ctl's user's, and writable by nobody else unless `sticky` (a directory with the
/// sticky bit).
fn judge_owner(stat: &Stat, at: &Path, sticky: bool) -> Result<(), Distrust> {
    if !trusted_uid(stat.st_uid) {
        return Err(owner(at, stat));
    }
    if stat.st_mode & 0o022 != 0 && !sticky {
        return Err(Distrust::Writable {
            at: at.to_owned(),
            mode: stat.st_mode,
        });
    }
    Ok(())
}

/// An entry of a sticky directory others may write to must be a trusted user's: only its
/// owner (and the directory's) can rename or remove it there.
fn judge_entry(dir: &Stat, entry: &Stat, at: &Path) -> Result<(), Distrust> {
    if dir.st_mode & 0o022 != 0 && !trusted_uid(entry.st_uid) {
        return Err(owner(at, entry));
    }
    Ok(())
}

/// Root or the reader: ctl's euid, which is the reader's in [`read_as`]'s thread.
fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

fn owner(at: &Path, stat: &Stat) -> Distrust {
    Distrust::Owner {
        at: at.to_owned(),
        uid: stat.st_uid,
        reader: rustix::process::geteuid().as_raw(),
    }
}

fn untrusted(path: &Path, why: Distrust) -> PidFileError {
    PidFileError::Untrusted {
        path: path.to_owned(),
        why,
    }
}

fn io_error(path: &Path, source: io::Error) -> PidFileError {
    match source.kind() {
        io::ErrorKind::NotFound => PidFileError::Missing {
            path: path.to_owned(),
        },
        _ => PidFileError::Unreadable {
            path: path.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_positive_decimal_is_a_pid() {
        assert_eq!(parse(b"812\n"), Ok(812));
        assert_eq!(parse(b"1"), Ok(1));
        for bad in [
            &b""[..],
            b"\n",
            b"0",
            b"0812",
            b"-1",
            b"+5",
            b" 5",
            b"5 ",
            b"5\n\n",
            b"5\r\n",
            b"5\n6\n",
            b"99999999999",
            b"12abc",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(parse(&[b'1'; MAX_LEN + 1]).unwrap_err().contains("longer"));
    }

    #[test]
    fn a_pid_file_of_our_own_in_a_private_directory_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.pid");
        std::fs::write(&file, "4242\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&file).unwrap(), 4242);
        // Through a link to the directory, from a directory only we write, and through `..`.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert_eq!(read(&link.join("d.pid")).unwrap(), 4242);
        let back = dir.path().join("..").join(dir.path().file_name().unwrap());
        assert_eq!(read(&back.join("d.pid")).unwrap(), 4242);

        let missing = read(&dir.path().join("none.pid")).unwrap_err();
        assert!(matches!(missing, PidFileError::Missing { .. }), "{missing}");
        let distrust = |err: &PidFileError| match err {
            PidFileError::Untrusted { why, .. } => Some(why.clone()),
            _ => None,
        };

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = read(&file).unwrap_err();
        assert!(
            matches!(distrust(&err), Some(Distrust::Writable { .. })),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

        let file_link = dir.path().join("l.pid");
        std::os::unix::fs::symlink(&file, &file_link).unwrap();
        let err = read(&file_link).unwrap_err();
        assert!(
            matches!(distrust(&err), Some(Distrust::Symlink { .. })),
            "{err}"
        );

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = read(&file).unwrap_err();
        assert!(err.to_string().contains("mode 0777"), "{err}");
    }

    #[test]
    fn under_a_root_links_and_dotdot_stay_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::write(root.join("run/d.pid"), "77\n").unwrap();
        assert_eq!(read_in(root, Path::new("/run/d.pid")).unwrap(), 77);
        assert_eq!(read_in(root, Path::new("/../../run/d.pid")).unwrap(), 77);
        // `/var/run -> /run` inside the root is the root's /run, not the host's.
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var/run")).unwrap();
        assert_eq!(read_in(root, Path::new("/var/run/d.pid")).unwrap(), 77);
        let missing = read_in(root, Path::new("/run/none.pid")).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains(&root.join("run/none.pid").display().to_string()),
            "{missing}"
        );
    }
}
