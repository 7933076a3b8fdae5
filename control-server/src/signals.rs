//! Signals a daemon should stop dying of.
//!
//! The default action of SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT is to end the process. A daemon
//! that once handled one of them and no longer does is killed by the first leftover `pkill -HUP`
//! in a logrotate script. [`ignore_legacy_signals`] makes such a signal harmless; the server's
//! [`Builder::reload_on_sighup`](crate::Builder::reload_on_sighup) can turn SIGHUP into a
//! logged reload while operators migrate to `ctl`. SIGTERM and SIGINT keep their meaning.

use crate::handler::OpContext;
use crate::ops::reload::Reloads;
use crate::policy::Peer;
use control_api::Operation;
use nix::sys::signal::{signal, SigHandler, Signal};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The signals [`ignore_legacy_signals`] sets to ignored.
pub const LEGACY_SIGNALS: [Signal; 4] = [
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGQUIT,
];

/// Sets SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT to ignored, so a leftover `pkill -HUP` can no
/// longer kill the daemon. Call it once at start, before starting threads or the server
/// (the SIGHUP bridge then installs its own handler over the ignored disposition).
///
/// Ignored dispositions are inherited by child processes, across `exec`: a shell or a helper
/// the daemon starts would ignore these signals too. Reset them in the child with
/// [`restore_default_signals`] from `std::os::unix::process::CommandExt::pre_exec`.
pub fn ignore_legacy_signals() -> io::Result<()> {
    for sig in LEGACY_SIGNALS {
        // SAFETY: SIG_IGN installs no handler code, so nothing can run in signal context.
        unsafe { signal(sig, SigHandler::SigIgn) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// Restores the default action of the [`LEGACY_SIGNALS`]. Async-signal-safe: meant for
/// `pre_exec` in a child the daemon spawns.
///
/// ```no_run
/// use std::os::unix::process::CommandExt;
/// let mut child = std::process::Command::new("/usr/bin/helper");
/// // SAFETY: restore_default_signals only calls sigaction, which is async-signal-safe.
/// unsafe { child.pre_exec(control_server::signals::restore_default_signals) };
/// ```
pub fn restore_default_signals() -> io::Result<()> {
    for sig in LEGACY_SIGNALS {
        // SAFETY: SIG_DFL installs no handler code.
        unsafe { signal(sig, SigHandler::SigDfl) }.map_err(io::Error::from)?;
    }
    Ok(())
}

pub(crate) fn sighup_stream() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Runs a reload for every SIGHUP until the server shuts down.
pub(crate) async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    reloads: Arc<Reloads>,
    name: String,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        if !reloads.has_handler() {
            tracing::warn!("SIGHUP received and ignored: {name} has no reload");
            continue;
        }
        tracing::warn!(
            "SIGHUP received: reloading. A signal cannot report back whether this worked; \
             use `ctl reload {name}`, which does"
        );
        // A signal carries no credentials worth checking: whoever may signal us may already
        // kill us.
        let peer = Peer {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            pid: None,
        };
        let ctx = OpContext::new(
            Operation::Reload.as_str(),
            peer,
            Instant::now() + Duration::from_secs(3600),
        );
        match reloads.request(ctx).await {
            Ok(reply) => tracing::info!(
                generation = reply.generation,
                "reload after SIGHUP done: {}",
                reply.summary
            ),
            Err(err) => tracing::warn!("reload after SIGHUP failed: {err}"),
        }
    }
}
