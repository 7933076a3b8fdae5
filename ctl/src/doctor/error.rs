//! What can stop `ctl doctor` before it reads anything. Everything after (a file it cannot
//! read, a process it cannot judge) is a finding or a skipped file, never an error.

use crate::exit::Exit;
use std::io;
use std::path::PathBuf;

/// A failed `ctl doctor`.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The `--root` directory cannot be opened.
    #[error("cannot open the root {} (--root): {source}", .path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DoctorError {
    /// One error of each kind, for the test that every `--json` kind is documented.
    #[cfg(test)]
    pub(crate) fn samples() -> Vec<DoctorError> {
        vec![DoctorError::Root {
            path: "/nonexistent".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        }]
    }

    /// The exit code and the `--json` kind: a `--root` that is no directory is a usage error.
    pub fn class(&self) -> (Exit, &'static str) {
        match self {
            DoctorError::Root { .. } => (Exit::Usage, "usage"),
        }
    }
}
