//! Reading a configuration file for `reload` without letting the file hurt the daemon.
//!
//! `std::fs::read_to_string` on the runtime is what a reload handler reaches for, and it
//! freezes the whole daemon when a FIFO sits at the config path (the `open` waits for a writer),
//! or when the filesystem hangs; a huge file or `/dev/zero` behind a symbolic link eats its
//! memory. [`read_to_string`] reads on a blocking thread, refuses anything but a regular file
//! (a symbolic link to one is fine: `/etc` is full of them) and stops at [`MAX_CONFIG_SIZE`].
//!
//! ```no_run
//! # async fn reload() -> Result<(), control_server::config_file::ConfigFileError> {
//! let text = control_server::config_file::read_to_string("/etc/mydaemon.toml").await?;
//! # Ok(()) }
//! ```

use crate::log_file::describe;
use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Largest configuration file read, in bytes: 1 MiB. A configuration is a few kilobytes; a
/// file larger than this is refused by its size, before a byte is read, so that neither a
/// `check` nor a `reload` of it grows the daemon's memory (a parsed 3 MB file left the daemon
/// 25 MB larger for good: the allocator keeps what it once had).
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;

/// Why a configuration file was not read, naming its path.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {kind}", path.display())]
pub struct ConfigFileError {
    /// The path given.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ConfigFileErrorKind,
}

/// What went wrong reading a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileErrorKind {
    /// The operating system refused (missing file, permission, ...).
    #[error("{0}")]
    Io(io::Error),
    /// A FIFO, socket, device or directory: reading it could block forever or never end.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than [`MAX_CONFIG_SIZE`].
    #[error(
        "it is larger than {limit} bytes ({} MiB), the limit for a configuration file",
        limit / (1024 * 1024)
    )]
    TooLarge {
        /// The limit, [`MAX_CONFIG_SIZE`].
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("it is not UTF-8 text")]
    NotUtf8,
}

/// Reads the configuration file at `path` on a blocking thread, so that the runtime keeps
/// serving whatever the file is: refuses anything but a regular file (after following symbolic
/// links) and files larger than [`MAX_CONFIG_SIZE`].
pub async fn read_to_string(path: impl Into<PathBuf>) -> Result<String, ConfigFileError> {
    let path = path.into();
    let for_error = path.clone();
    tokio::task::spawn_blocking(move || read_to_string_blocking(&path))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigFileError {
                path: for_error,
                kind: ConfigFileErrorKind::Io(io::Error::other(e.to_string())),
            })
        })
}

/// [`read_to_string`] for code that is not async (start-up, before a runtime exists). It
/// blocks while the filesystem does, but never on a FIFO.
pub fn read_to_string_blocking(path: &Path) -> Result<String, ConfigFileError> {
    read(path).map_err(|kind| ConfigFileError {
        path: path.to_owned(),
        kind,
    })
}

fn read(path: &Path) -> Result<String, ConfigFileErrorKind> {
    // The stat spares opening a device; the fstat on what was opened is the check that counts.
    let meta = std::fs::metadata(path).map_err(ConfigFileErrorKind::Io)?;
    if !meta.file_type().is_file() {
        return Err(ConfigFileErrorKind::NotRegular(describe(meta.file_type())));
    }
    // NONBLOCK: a FIFO swapped in after the stat then opens at once (and is refused below)
    // instead of waiting for a writer.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(
        rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| ConfigFileErrorKind::Io(e.into()))?,
    );
    let meta = file.metadata().map_err(ConfigFileErrorKind::Io)?;
    if !meta.file_type().is_file() {
        return Err(ConfigFileErrorKind::NotRegular(describe(meta.file_type())));
    }
    let too_large = ConfigFileErrorKind::TooLarge {
        limit: MAX_CONFIG_SIZE,
    };
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(too_large);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed, to notice a file that grew after the fstat.
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(ConfigFileErrorKind::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(too_large);
    }
    String::from_utf8(bytes).map_err(|_| ConfigFileErrorKind::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{mkfifo, within_10s};

    #[test]
    fn reads_a_regular_file_and_a_link_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_to_string_blocking(&path).unwrap(), "x = 1\n");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_to_string_blocking(&link).unwrap(), "x = 1\n");
    }

    #[test]
    fn refuses_a_fifo_at_once_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a.toml");
        mkfifo(&fifo);
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        for path in [fifo, link] {
            // On a thread with a bound: without the checks, the read waits for a writer forever.
            let p = path.clone();
            let err = within_10s("reading a FIFO", move || {
                read_to_string_blocking(&p).map_err(|e| e.to_string())
            })
            .unwrap_err();
            assert_eq!(
                err,
                format!(
                    "cannot read {}: it is a FIFO (named pipe), not a regular file",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn refuses_devices_and_directories() {
        let err = read_to_string_blocking(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ConfigFileErrorKind::NotRegular("character device")
            ),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = read_to_string_blocking(dir.path()).unwrap_err();
        assert!(
            matches!(err.kind, ConfigFileErrorKind::NotRegular("directory")),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_file_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_CONFIG_SIZE + 1).unwrap(); // sparse: costs no disk
        let err = read_to_string_blocking(&path).unwrap_err();
        assert!(
            matches!(err.kind, ConfigFileErrorKind::TooLarge { .. }),
            "{err}"
        );
        file.set_len(MAX_CONFIG_SIZE).unwrap();
        let at_the_limit = read_to_string_blocking(&path).unwrap();
        assert_eq!(at_the_limit.len() as u64, MAX_CONFIG_SIZE);
    }
}
