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

    /// A drain began: said in `STATUS=` only. `STOPPING=1` would be wrong here: systemd
    /// takes it from a running unit as the service stopping by itself (`service.c`,
    /// `service_enter_stop_by_notify`): the unit leaves `active`, `TimeoutStopSec` starts and
    /// ends in SIGKILL, and no later `READY=1` brings it back, so `resume` could not undo it.
    pub(crate) fn draining(&self) {
        self.send_logged(
            "STATUS=draining: taking no new work, finishing what is in flight (ctl resume undoes it)",
        );
    }

    /// A drain completed: nothing in flight, still taking no new work.
    pub(crate) fn drained(&self) {
        self.send_logged("STATUS=drained: nothing in flight, taking no new work until ctl resume");
    }

    /// `resume` undid a drain. The unit never left `active` (see [`draining`](Self::draining)),
    /// so there is no readiness to announce again, only the status line.
    pub(crate) fn resumed(&self) {
        self.send_logged("STATUS=serving again: resume undid the drain");
    }

    /// `STOPPING=1`: the daemon is shutting down for real. Never sent on drain.
    pub(crate) fn stopping(&self) {
        self.send_logged("STOPPING=1");
    }

    fn send_logged(&self, message: &str) {
        if let Err(err) = self.send(message) {
            tracing::warn!("cannot notify systemd ({message:?}): {err}");
        }
    }
}
