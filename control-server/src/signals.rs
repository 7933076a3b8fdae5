//! Signals a daemon should stop dying of.
//!
//! The default action of SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT is to end the process. A daemon
//! that once handled one of them and no longer does is killed by the first leftover `pkill -HUP`
//! in a logrotate script. [`ignore_legacy_signals`] makes such a signal harmless; the server's
//! [`Builder::on_sighup`](crate::Builder::on_sighup) turns SIGHUP into what a leftover
//! `postrotate kill -HUP` means, a reopen of the log files (and a reload, if the daemon says
//! so), logged with the `ctl` command to use instead ([`Sighup`]). SIGTERM and SIGINT keep
//! their meaning.

use crate::handler::OpContext;
use crate::ops::reload::Reloads;
use crate::ops::rotate::Rotate;
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

/// What the SIGHUP bridge does with a SIGHUP, set with
/// [`Builder::on_sighup`](crate::Builder::on_sighup).
///
/// A SIGHUP that still arrives after a daemon moved to `ctl` is almost always a leftover
/// `postrotate kill -HUP` (or `pkill -HUP`) in a logrotate stanza: logrotate has just renamed
/// the log file and means "reopen your logs". So the bridge always reopens them, as
/// `ctl rotate` does; whether it also reloads the configuration is the daemon's choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sighup {
    /// No bridge: SIGHUP keeps its disposition (ignored after [`ignore_legacy_signals`]).
    #[default]
    Off,
    /// Reopen the log files, as `ctl rotate` does: what a leftover postrotate `kill -HUP`
    /// asks for. The daemon's own rotate ([`Builder::rotate`](crate::Builder::rotate)) runs
    /// too.
    ReopenLogs,
    /// Reopen the log files, then reload the configuration as `ctl reload` does: for a daemon
    /// whose SIGHUP used to do both.
    ReopenLogsAndReload,
}

/// Answers every SIGHUP as `action` says until the server shuts down: the log files are
/// reopened first, so that the warning naming the `ctl` command goes into the new file, where
/// whoever reads the log after the rotation looks.
pub(crate) async fn bridge_sighup(
    mut hangups: tokio::signal::unix::Signal,
    action: Sighup,
    rotate: Arc<Rotate>,
    reloads: Arc<Reloads>,
    name: String,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        // A signal carries no credentials worth checking: whoever may signal us may already
        // kill us.
        let peer = Peer {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            pid: None,
        };
        let deadline = Instant::now() + Duration::from_secs(3600);
        let reopened = match rotate.serves() {
            true => {
                let ctx = OpContext::new(Operation::Rotate.as_str(), peer, deadline);
                Some(rotate.rotate(ctx, true).await)
            }
            false => None,
        };
        let reload = action == Sighup::ReopenLogsAndReload && reloads.has_handler();
        let done = match &reopened {
            Some(Ok(reply)) => format!("{} log file(s) reopened", reply.files.len()),
            Some(Err(err)) => format!("reopening the log files failed ({err})"),
            None => "no log file to reopen".to_owned(),
        };
        let then = if reload { ", reloading" } else { "" };
        let instead = if action == Sighup::ReopenLogsAndReload {
            format!("`ctl reload {name}` to reload and `ctl rotate {name}` after logrotate")
        } else {
            format!("`ctl rotate {name}` after logrotate")
        };
        tracing::warn!(
            "SIGHUP received: {done}{then}. A signal cannot report back whether this worked; \
             use {instead}, which do"
        );
        if !reload {
            if action == Sighup::ReopenLogsAndReload {
                tracing::warn!("SIGHUP: no reload: {name} has no reload");
            }
            continue;
        }
        let ctx = OpContext::new(Operation::Reload.as_str(), peer, deadline);
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
