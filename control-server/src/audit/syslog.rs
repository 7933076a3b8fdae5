//! Audit lines to the system's log: one datagram per line to `/dev/log`, where rsyslog or
//! systemd-journald listen, in the format glibc's `syslog(3)` sends (RFC 3164):
//!
//! ```text
//! <85>Dec  7 09:24:58 ctl-control[4242]: demo: reload by uid 1000 (alice) pid 4243 "ctl reload demo": ok (generation 3) in 12 ms
//! ```
//!
//! Facility `authpriv` (where sudo writes: `/var/log/auth.log` on Debian, `/var/log/secure` on
//! Red Hat, the journal everywhere), severity `notice` for a call that succeeded and `warning`
//! for one that failed or was refused, the tag `ctl-control` and the daemon's pid.
//!
//! Sending never waits: the socket is non-blocking and each line is sent with `MSG_DONTWAIT`,
//! so a syslog daemon that is stopped, absent or behind (its queue full) costs the line, which
//! is counted (`ctl.audit.syslog.dropped`) and said in the daemon's log, rate-limited.

use crate::counters::Counter;
use crate::noise::Throttle;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the system's log listens.
pub const DEFAULT_SYSLOG_PATH: &str = "/dev/log";

/// The tag of every audit line.
pub const TAG: &str = "ctl-control";

/// `authpriv`, as syslog(3) numbers facilities.
const AUTHPRIV: u8 = 10;

/// Severities.
pub(crate) const NOTICE: u8 = 5;
pub(crate) const WARNING: u8 = 4;

/// The longest datagram sent: rsyslog's default message size is 8 KiB, and a line is cut well
/// before (its command line is at most 512 bytes before escaping).
const MAX_LINE: usize = 4096;

/// A sender of audit lines.
#[derive(Debug)]
pub(crate) struct Syslog {
    path: PathBuf,
    /// `None` if no socket could be made (out of descriptors): every line is then dropped.
    socket: Option<UnixDatagram>,
    pid: u32,
    sent: Counter,
    dropped: Counter,
    /// The daemon's lines saying a line was not sent.
    failures: Arc<Throttle>,
}

impl Syslog {
    pub fn new(path: &Path, sent: Counter, dropped: Counter) -> Syslog {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|err| {
                tracing::warn!("cannot make a socket for the audit lines to syslog: {err}");
            })
            .ok();
        // The zone is read now, once, off the runtime: formatting a line's time reads no file.
        // SAFETY: tzset only reads the environment and the zone file; nothing else is running
        // that calls it (bind runs before the server starts serving).
        unsafe { tzset() };
        Syslog {
            path: path.to_owned(),
            socket,
            pid: std::process::id(),
            sent,
            dropped,
            failures: Throttle::new("audit lines not sent to syslog"),
        }
    }

    /// Sends `message` (already escaped: one line) at `severity`; never waits.
    pub fn send(&self, severity: u8, message: &str) {
        let line = format_line(severity, &timestamp(), self.pid, message);
        let sent = match &self.socket {
            Some(socket) => {
                // O_NONBLOCK is set; MSG_DONTWAIT says so again for this one send.
                use std::os::fd::AsFd;
                match rustix::net::SocketAddrUnix::new(&self.path) {
                    Ok(addr) => rustix::net::sendto(
                        socket.as_fd(),
                        line.as_bytes(),
                        rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
                        &addr,
                    )
                    .map(drop)
                    .map_err(std::io::Error::from),
                    Err(err) => Err(err.into()),
                }
            }
            None => Err(std::io::Error::other("no socket")),
        };
        match sent {
            Ok(()) => self.sent.inc(),
            Err(err) => {
                self.dropped.inc();
                if self.failures.admit() {
                    tracing::warn!(
                        path = %control_api::text::escape_path(&self.path),
                        "an audit line was not sent to syslog ({err}); counted in \
                         ctl.audit.syslog.dropped, and kept in `ctl history`"
                    );
                }
            }
        }
    }
}

/// `<PRI>TIMESTAMP ctl-control[PID]: MESSAGE`, at most [`MAX_LINE`] bytes, on one line.
pub(crate) fn format_line(severity: u8, timestamp: &str, pid: u32, message: &str) -> String {
    let mut line = format!(
        "<{}>{timestamp} {TAG}[{pid}]: ",
        AUTHPRIV * 8 + (severity & 7)
    );
    // The message is escaped already; this keeps the promise if a caller of this forgot.
    line.extend(
        message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c }),
    );
    if line.len() > MAX_LINE {
        super::truncate_marked(&mut line, MAX_LINE - 3, "...");
    }
    line
}

/// Local time as RFC 3164 writes it: `Dec  7 09:24:58`.
fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives through the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return "Jan  1 00:00:00".to_owned();
    }
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

extern "C" {
    fn tzset();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;
    use std::time::{Duration, Instant};

    #[test]
    fn a_line_is_rfc3164_on_one_line_and_bounded() {
        let line = format_line(NOTICE, "Dec  7 09:24:58", 42, "demo: reload by uid 0: ok");
        assert_eq!(
            line,
            "<85>Dec  7 09:24:58 ctl-control[42]: demo: reload by uid 0: ok"
        );
        let line = format_line(WARNING, "Dec  7 09:24:58", 42, "a\nb\u{7}");
        assert_eq!(line, "<84>Dec  7 09:24:58 ctl-control[42]: a b ");
        let line = format_line(NOTICE, "x", 1, &"\u{e9}".repeat(MAX_LINE));
        assert!(
            line.len() <= MAX_LINE && line.ends_with("..."),
            "{}",
            line.len()
        );
        let stamp = timestamp();
        assert_eq!(stamp.len(), 15, "{stamp:?}");
    }

    #[test]
    fn a_reader_that_never_reads_costs_lines_not_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let reader = UnixDatagram::bind(&path).unwrap();
        let counters = Counters::new();
        let (sent, dropped) = (counters.counter("s", "s"), counters.counter("d", "d"));
        let syslog = Syslog::new(&path, sent.clone(), dropped.clone());
        let started = Instant::now();
        for i in 0..5000 {
            syslog.send(NOTICE, &format!("line {i} {}", "x".repeat(200)));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(dropped.get() > 0, "the queue filled");
        assert_eq!(sent.get() + dropped.get(), 5000);
        let mut buf = [0u8; 8192];
        let n = reader.recv(&mut buf).unwrap();
        let first = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(first.starts_with("<85>"), "{first}");
        assert!(first.contains(&format!("ctl-control[{}]: line 0 ", std::process::id())));
        // Nobody there: dropped at once too.
        drop(reader);
        let before = dropped.get();
        syslog.send(NOTICE, "to nobody");
        assert_eq!(dropped.get(), before + 1);
    }
}
