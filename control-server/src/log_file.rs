//! A log file that `rotate` can reopen without losing, splitting or duplicating a line.

use control_api::{FileId, ReopenedFile};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Mode of a log file this writer creates. logrotate's `create` directive, when used, has
/// already created the new file with the mode and owner it was told to, and we keep them.
pub const DEFAULT_LOG_MODE: u32 = 0o640;

/// An append-only log file that can be reopened at the same path after logrotate renamed it.
///
/// Every [`LogFile::write_line`] is one `write(2)` under a lock, and [`LogFile::reopen`] swaps
/// the file under the same lock: each line lands whole in exactly one file. If the new file
/// cannot be opened, the writer keeps the old one and nothing is lost.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    id: FileId,
    /// Bytes written since this file was opened, reported by `rotate`.
    written: u64,
}

fn open(path: &Path) -> io::Result<(File, FileId)> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(DEFAULT_LOG_MODE)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((
        file,
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

impl LogFile {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<LogFile> {
        let path = path.into();
        let (file, id) = open(&path)?;
        Ok(LogFile {
            path,
            inner: Mutex::new(Inner {
                file,
                id,
                written: 0,
            }),
        })
    }

    /// The path written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A writer that panicked mid-write leaves a consistent Inner: keep logging.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `line` (which should end with a newline) in one piece.
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        inner.file.write_all(line)?;
        inner.written += line.len() as u64;
        Ok(())
    }

    /// Opens the file at the path anew and switches writers to it. On failure the old file
    /// stays in use and the reply carries the error.
    pub fn reopen(&self) -> ReopenedFile {
        let mut inner = self.lock();
        let old = inner.id;
        match open(&self.path) {
            Ok((file, id)) => {
                let bytes_to_old = std::mem::replace(&mut inner.written, 0);
                inner.file = file;
                inner.id = id;
                ReopenedFile {
                    path: self.path.clone(),
                    old: Some(old),
                    new: Some(id),
                    bytes_to_old,
                    error: None,
                }
            }
            Err(err) => ReopenedFile {
                path: self.path.clone(),
                old: Some(old),
                new: None,
                bytes_to_old: inner.written,
                error: Some(err.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_after_rename_moves_writes_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        log.write_line(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        log.write_line(b"two\n").unwrap(); // still the old file, as with any renamed fd
        let r = log.reopen();
        assert_eq!(r.error, None);
        assert_ne!(r.old, r.new);
        assert_eq!(r.bytes_to_old, 8);
        log.write_line(b"three\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log.1")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::create_dir(&path).unwrap(); // the path cannot be opened as a file now
        let r = log.reopen();
        assert!(r.error.is_some());
        assert_eq!(r.new, None);
        log.write_line(b"kept\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.log.1")).unwrap(),
            "kept\n"
        );
    }
}
