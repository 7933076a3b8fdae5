//! Gates for the test hooks `reload_gate` and `job_gate`: a FIFO that holds the daemon up at
//! one point until the test writes a line into it. The test decides when work ends, so an
//! outcome never depends on how fast the machine is.

use std::io;
use std::path::{Path, PathBuf};
use tokio::net::unix::pipe;

/// A FIFO opened for reading; it opens when someone writes to it.
pub struct Gate {
    path: PathBuf,
    fifo: pipe::Receiver,
}

impl Gate {
    /// Opens the FIFO at `path` for reading, without blocking and without waiting for a writer.
    /// From now on a writer can open it (`open(O_WRONLY | O_NONBLOCK)` fails with `ENXIO` while
    /// no one reads, which is how a test knows that the daemon has reached the gate). Fails if
    /// `path` is not a FIFO.
    pub fn open(path: &Path) -> io::Result<Gate> {
        Ok(Gate {
            path: path.to_owned(),
            fifo: pipe::OpenOptions::new().open_receiver(path)?,
        })
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves once a writer has written to the FIFO, or opened and closed it. Only waits on
    /// the runtime: the daemon goes on serving meanwhile.
    pub async fn passed(self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            // A FIFO that no writer has opened yet is not readable (Linux reports hang-up only
            // after a writer came and went), so this waits for the writer.
            self.fifo.readable().await?;
            match self.fifo.try_read(&mut buf) {
                // Bytes, or end of file after a writer closed it without writing.
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
