//! Getting lines into the file: whole lines appended, the part of one a failed write left cut
//! off again, and a handle's unfinished line held until its end comes.

use super::{lock, Core, Inner, LogFile, MAX_PENDING};
use std::fs::File;
use std::io::{self, Write};

/// Writes `bytes` (whole lines) at the end of the file. On failure, returns how many of them
/// the file keeps, and the error: none of them when `whole_lines_kept` is false (line mode: the
/// caller retries them all), else every whole line written before the failure. A part of a
/// line written is cut off again, so that a retry does not follow a fragment of itself.
pub(super) fn write_out(
    inner: &mut Inner,
    bytes: &[u8],
    whole_lines_kept: bool,
) -> Result<(), (usize, io::Error)> {
    if bytes.is_empty() {
        return Ok(());
    }
    let file = inner.file.clone();
    if inner.torn {
        write_fully(&file, b"\n").map_err(|(_, err)| (0, err))?;
        inner.written += 1;
        inner.torn = false;
    }
    let (done, err) = match write_fully(&file, bytes) {
        Ok(()) => {
            inner.written += bytes.len() as u64;
            return Ok(());
        }
        Err(failed) => failed,
    };
    let kept = match whole_lines_kept {
        true => bytes[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1),
        false => 0,
    };
    // A short write then an error (ENOSPC): cut off the part after `kept`. Only on this path,
    // so a line costs no extra syscall. Appends happen only under the file's lock, so the file
    // grew by exactly `done` bytes (unless another process appends to it too).
    if done > kept && cut_off(&file, (done - kept) as u64).is_err() {
        inner.written += done as u64;
        inner.torn = true;
    } else {
        inner.written += kept as u64;
    }
    Err((kept, err))
}

/// Writes all of `bytes`, or returns how many were written before the error.
fn write_fully(mut file: &File, bytes: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return Err((done, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
}

fn cut_off(file: &File, tail: u64) -> io::Result<()> {
    let size = file.metadata()?.len();
    let Some(before) = size.checked_sub(tail) else {
        return Err(io::Error::other(
            "the file is shorter than what was written",
        ));
    };
    file.set_len(before)
}

/// Buffers `buf` into `pending` and writes out every complete line.
pub(super) fn buffer_lines(core: &Core, pending: &mut Vec<u8>, buf: &[u8]) -> io::Result<usize> {
    let before = pending.len();
    pending.extend_from_slice(buf);
    let complete = match pending.iter().rposition(|&b| b == b'\n') {
        Some(last_newline) => last_newline + 1,
        None if pending.len() > MAX_PENDING => pending.len(),
        None => return Ok(buf.len()),
    };
    match core.append(&pending[..complete]) {
        Ok(()) => {
            pending.drain(..complete);
            Ok(buf.len())
        }
        Err(err) => {
            // `Write` promises that an error took nothing: give `buf` back, so that a retry
            // does not write it twice; earlier lines stay for the next attempt.
            pending.truncate(before);
            Err(err)
        }
    }
}

/// Writes a handle's unfinished line, then what the file has buffered.
pub(super) fn flush_pending(core: &Core, pending: &mut Vec<u8>) -> io::Result<()> {
    // Kept on error, for the next flush.
    core.append(pending)?;
    pending.clear();
    core.write_out(&mut lock(&core.inner))
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        buffer_lines(&self.core, pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        LogFile::flush(self)
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        // Only the unfinished line: the file's buffer is written out when the last handle goes.
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = self.core.append(pending);
    }
}

/// A borrowed writer on a [`LogFile`] with its own line buffer, written out on drop.
#[derive(Debug)]
pub struct LineWriter<'a> {
    pub(super) core: &'a Core,
    pub(super) pending: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        buffer_lines(self.core, &mut self.pending, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush_pending(self.core, &mut self.pending)
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        // Not a flush: in buffered mode that would write on the logging thread, per event.
        let _ = self.core.append(&self.pending);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        self.writer()
    }
}
