//! systemd's readiness protocol: datagrams to `$NOTIFY_SOCKET` (sd_notify(3)).
//!
//! With `Type=notify` (or `notify-reload`) systemd learns when the daemon is ready, when a reload
//! starts and ends, and what happened, so `systemctl reload` waits for the real outcome.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`. `Ok(None)` when it is not set: not started by systemd, nothing
    /// to tell. A name starting with `@` is in the abstract namespace.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&path)?,
        };
        Ok(Some(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        }))
    }

    /// Sends one message, e.g. `READY=1`. Newlines separate assignments.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        Ok(())
    }

    /// `READY=1`: serving.
    pub(crate) fn ready(&self) {
        self.send_logged("READY=1");
    }

    /// `RELOADING=1` with the monotonic timestamp `Type=notify-reload` requires.
    pub(crate) fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send_logged(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    /// `READY=1` again after a reload, with its outcome as the unit's status line.
    pub(crate) fn reloaded(&self, status: &str) {
        // STATUS is one line in `systemctl status`.
        let status = status.replace('\n', " ");
        self.send_logged(&format!("READY=1\nSTATUS={status}"));
    }

    /// `READY=1` again after `resume` undid a drain.
    pub(crate) fn resumed(&self) {
        self.send_logged("READY=1\nSTATUS=serving again: resume undid the drain");
    }

    /// `STOPPING=1`: draining or shutting down.
    pub(crate) fn stopping(&self) {
        self.send_logged("STOPPING=1");
    }

    fn send_logged(&self, message: &str) {
        if let Err(err) = self.send(message) {
            tracing::warn!("cannot notify systemd ({message:?}): {err}");
        }
    }
}
