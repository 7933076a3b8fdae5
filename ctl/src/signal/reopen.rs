//! `--verify-reopen LOG...`: proving from `/proc/PID/fd` that the signalled processes reopened
//! their log files.
//!
//! By postrotate time logrotate has renamed LOG (to `LOG.1`, `LOG-20260101`, or into an
//! `olddir`) or removed it, and may have created a new file at LOG. A descriptor of the old
//! file then reads, in `/proc/PID/fd`, as the new name or as `LOG (deleted)`. For each LOG, a
//! descriptor is **stale** when it is open for writing on a regular file that is not the file
//! now at LOG, and either
//!
//! - it was stale before the signal (recorded then, by file identity: dev and inode), or
//! - its path is `LOG (deleted)`, LOG itself, or a rotated name: a file in any directory
//!   whose name starts with LOG's file name followed by `.`, `-` or `_`.
//!
//! The reopen is proven when, for every LOG, some signalled process has the file now at LOG
//! open and none holds a stale descriptor. Descriptors opened read-only are never stale (a
//! tailer, a log shipper reading the old file, ...). LOG's directory is resolved (links
//! followed) once, since `/proc` shows resolved paths.

use super::error::Who;
use crate::procfs::{FileId, OpenFile};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One `--verify-reopen` path.
#[derive(Clone, Debug)]
pub struct Log {
    /// As given.
    pub path: PathBuf,
    /// Its directory resolved, as `/proc/PID/fd` shows paths.
    resolved: PathBuf,
    /// Stale before the signal.
    before: BTreeSet<FileId>,
}

impl Log {
    pub fn new(path: &Path) -> Log {
        let resolved = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                dir.canonicalize()
                    .map_or_else(|_| path.to_owned(), |d| d.join(name))
            }
            _ => path.to_owned(),
        };
        Log {
            path: path.to_owned(),
            resolved,
            before: BTreeSet::new(),
        }
    }

    /// Records what is stale before the signal.
    pub fn record(&mut self, files: &[&OpenFile]) {
        let now = FileId::of_path(&self.path);
        self.before = files
            .iter()
            .filter(|f| self.is_stale(f, now))
            .map(|f| f.id)
            .collect();
    }

    fn is_stale(&self, f: &OpenFile, now: Option<FileId>) -> bool {
        if !f.regular || !f.writable || Some(f.id) == now {
            return false;
        }
        self.before.contains(&f.id) || self.names_old_file(&f.link)
    }

    /// `LOG`, `LOG (deleted)`, or a rotated name of LOG's.
    fn names_old_file(&self, link: &Path) -> bool {
        let mut deleted = OsString::from(self.resolved.as_os_str());
        deleted.push(" (deleted)");
        if link == self.resolved || link.as_os_str() == deleted {
            return true;
        }
        let (Some(name), Some(base)) = (link.file_name(), self.resolved.file_name()) else {
            return false;
        };
        let rest = name.as_bytes().strip_prefix(base.as_bytes());
        rest.is_some_and(|r| r.len() > 1 && matches!(r[0], b'.' | b'-' | b'_'))
    }
}

/// What the processes hold of one LOG.
#[derive(Clone, Debug, Serialize)]
pub struct Holding {
    pub path: PathBuf,
    /// The file at the path now, if any.
    pub file: Option<FileId>,
    /// Who has it open.
    pub holders: Vec<i32>,
    /// Stale descriptors: `(pid, fd, where it points)`.
    pub stale: Vec<Stale>,
    /// Stale before the signal.
    pub before: Vec<FileId>,
}

/// A stale descriptor.
#[derive(Clone, Debug, Serialize)]
pub struct Stale {
    pub pid: i32,
    pub fd: u32,
    pub now_at: PathBuf,
    pub file: FileId,
}

/// The reopen not proven: what is still held, for each LOG.
#[derive(Clone, Debug, Serialize)]
pub struct Unreopened {
    pub logs: Vec<Holding>,
}

impl Holding {
    pub fn done(&self) -> bool {
        self.file.is_some() && !self.holders.is_empty() && self.stale.is_empty()
    }
}

/// What `processes` hold of each of `logs` now.
pub fn check(logs: &[Log], processes: &[(&Who, Vec<OpenFile>)]) -> Vec<Holding> {
    logs.iter()
        .map(|log| {
            let now = FileId::of_path(&log.path);
            let mut holding = Holding {
                path: log.path.clone(),
                file: now,
                holders: Vec::new(),
                stale: Vec::new(),
                before: log.before.iter().copied().collect(),
            };
            for (who, files) in processes {
                if files.iter().any(|f| Some(f.id) == now && f.regular) {
                    holding.holders.push(who.pid);
                }
                let stale = files.iter().filter(|f| log.is_stale(f, now));
                holding.stale.extend(stale.map(|f| Stale {
                    pid: who.pid,
                    fd: f.fd,
                    now_at: f.link.clone(),
                    file: f.id,
                }));
            }
            holding
        })
        .collect()
}

impl fmt::Display for Unreopened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for log in self.logs.iter().filter(|l| !l.done()) {
            let path = log.path.display();
            for s in &log.stale {
                parts.push(format!(
                    "pid {} still holds open {} (fd {}, inode {}), the file that was at {path}",
                    s.pid,
                    s.now_at.display(),
                    s.fd,
                    s.file.ino
                ));
            }
            if log.file.is_none() {
                parts.push(format!("there is no file at {path}"));
            } else if log.holders.is_empty() {
                parts.push(format!(
                    "no signalled process has the file now at {path} open"
                ));
            }
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(fd: u32, link: &str, ino: u64) -> OpenFile {
        OpenFile {
            fd,
            link: link.into(),
            id: FileId { dev: 1, ino },
            regular: true,
            writable: true,
        }
    }

    #[test]
    fn old_files_are_told_by_name_and_by_what_was_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let path = dir.join("app.log");
        std::fs::write(&path, "").unwrap();
        let mut log = Log::new(&path);
        let at = |suffix: &str| format!("{}{suffix}", path.display());
        for (link, stale) in [
            (at(".1"), true),
            (at("-20260101"), true),
            (at(" (deleted)"), true),
            (at(".1.gz"), true),
            (format!("{}/old/app.log.3", dir.display()), true),
            (at("."), false),
            (at("x"), false),
            (format!("{}/other.log", dir.display()), false),
        ] {
            assert_eq!(log.names_old_file(Path::new(&link)), stale, "{link}");
        }
        let now = FileId::of_path(&path);
        let current = OpenFile {
            id: now.unwrap(),
            ..file(5, &at(""), 0)
        };
        let reader = OpenFile {
            writable: false,
            ..file(6, &at(".1"), 7)
        };
        assert!(!log.is_stale(&current, now), "the file at the path");
        assert!(!log.is_stale(&reader, now), "read only");
        // Held before the signal under a name no rule knows: still stale after it.
        let renamed = file(7, "/elsewhere/x", 8);
        assert!(!log.is_stale(&renamed, now));
        log.before.insert(renamed.id);
        assert!(log.is_stale(&renamed, now));
    }
}
