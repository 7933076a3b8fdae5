//! The open rules of a log file: never follow a symbolic link, never block on a FIFO, adopt
//! only a regular file of the daemon's own (or root's), and create a missing one like the old.

use super::DEFAULT_LOG_MODE;
use control_api::FileId;
use rustix::fs::{Mode, OFlags};
use std::fs::{File, FileType, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a log file was not opened, naming its path; what the error is, is in [`OpenError::kind`].
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct OpenError {
    /// The path that was opened.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: OpenErrorKind,
}

/// What is wrong with the file at a log path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenErrorKind {
    /// The operating system refused (permission, missing directory, full disk, ...).
    #[error("{0}")]
    Io(io::Error),
    /// A symbolic link: following it would let whoever can write to the log directory send
    /// the daemon's lines, with the daemon's rights, into any file.
    #[error(
        "is a symbolic link, and log files are never opened through one; \
         remove it, so that the file is created anew"
    )]
    Symlink,
    /// A FIFO, socket, device or directory, which a writer could block on or which is no log.
    #[error("is a {0}, not a regular file; remove it, so that the file is created anew")]
    NotRegular(&'static str),
    /// A regular file that neither the daemon's effective uid nor root owns: another user
    /// made it, and may read what the daemon writes or have linked it to something else.
    #[error(
        "is owned by uid {owner}, neither this daemon's uid {euid} nor root, so it is not \
         used; remove it, or chown it to uid {euid}"
    )]
    ForeignOwner {
        /// The file's owner.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
}

impl From<OpenError> for io::Error {
    /// For callers in `io::Result` code: the kind of the OS error where there is one.
    fn from(err: OpenError) -> io::Error {
        let kind = match &err.kind {
            OpenErrorKind::Io(e) => e.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

/// What a file type is called in messages.
pub(crate) fn describe(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_fifo() {
        "FIFO (named pipe)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Opens the log file at `path` for appending, under the rules in the module docs: a regular
/// file found there is used as it is; a missing one is created (never through a link), with
/// the mode, owner and group of `like` when given, else with [`DEFAULT_LOG_MODE`].
pub(super) fn open_log(
    path: &Path,
    like: Option<&Metadata>,
) -> Result<(File, FileId), OpenErrorKind> {
    // Three tries: logrotate (or anyone) may create or remove the file between our calls.
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for _ in 0..3 {
        // The lstat only makes the message precise and spares opening a device; the fstat
        // below, on what was actually opened, is the check that counts.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(OpenErrorKind::Symlink),
            // A directory is left to `open`, whose EISDIR says it as operators know it.
            Ok(meta) if !meta.file_type().is_file() && !meta.is_dir() => {
                return Err(OpenErrorKind::NotRegular(describe(meta.file_type())));
            }
            Ok(_) => match open_flags(path, OFlags::empty(), Mode::empty()) {
                Ok(file) => return adopt(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = e,
                Err(e) => return Err(refusal(path, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mode = like.map_or(DEFAULT_LOG_MODE, |old| old.mode() & 0o7777);
                let excl = OFlags::CREATE | OFlags::EXCL;
                match open_flags(path, excl, Mode::from_raw_mode(mode)) {
                    Ok(file) => return created(file, like),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                    Err(e) => return Err(refusal(path, e)),
                }
            }
            Err(e) => return Err(OpenErrorKind::Io(e)),
        }
    }
    Err(OpenErrorKind::Io(last))
}

pub(super) fn open_flags(path: &Path, extra: OFlags, mode: Mode) -> io::Result<File> {
    // NONBLOCK: opening a FIFO for writing otherwise waits for a reader, forever.
    let flags = OFlags::WRONLY
        | OFlags::APPEND
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC
        | extra;
    Ok(File::from(rustix::fs::open(path, flags, mode)?))
}

/// Names what an `open` ran into when the path changed after the lstat.
pub(super) fn refusal(path: &Path, err: io::Error) -> OpenErrorKind {
    match rustix::io::Errno::from_io_error(&err) {
        Some(rustix::io::Errno::LOOP) => OpenErrorKind::Symlink,
        // What a FIFO without a reader, or a socket, answers to a non-blocking open.
        Some(rustix::io::Errno::NXIO) => {
            let kind = std::fs::symlink_metadata(path)
                .map_or("FIFO or socket", |meta| describe(meta.file_type()));
            OpenErrorKind::NotRegular(kind)
        }
        _ => OpenErrorKind::Io(err),
    }
}

/// Checks what was opened, and makes it a blocking descriptor again.
pub(super) fn adopt(file: File) -> Result<(File, FileId), OpenErrorKind> {
    let meta = file.metadata().map_err(OpenErrorKind::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenErrorKind::NotRegular(describe(meta.file_type())));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(OpenErrorKind::ForeignOwner {
            owner: meta.uid(),
            euid,
        });
    }
    blocking(&file)?;
    Ok((file, id_of(&meta)))
}

/// Finishes a file this call created: exactly `like`'s mode and owner where given.
fn created(file: File, like: Option<&Metadata>) -> Result<(File, FileId), OpenErrorKind> {
    if let Some(old) = like {
        // The umask narrowed the mode at creation; set it exactly. The owner can only be
        // carried over when running as root; otherwise the file is ours anyway.
        file.set_permissions(Permissions::from_mode(old.mode() & 0o7777))
            .map_err(OpenErrorKind::Io)?;
        let _ = rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(old.uid())),
            Some(rustix::fs::Gid::from_raw(old.gid())),
        );
    }
    blocking(&file)?;
    let meta = file.metadata().map_err(OpenErrorKind::Io)?;
    Ok((file, id_of(&meta)))
}

fn blocking(file: &File) -> Result<(), OpenErrorKind> {
    let flags = rustix::fs::fcntl_getfl(file).map_err(|e| OpenErrorKind::Io(e.into()))?;
    rustix::fs::fcntl_setfl(file, flags - OFlags::NONBLOCK).map_err(|e| OpenErrorKind::Io(e.into()))
}

pub(super) fn id_of(meta: &Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// `path` made absolute against the current directory, once, at open: a daemon that changes
/// directory later must still reopen the same file on `rotate`.
pub(super) fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
