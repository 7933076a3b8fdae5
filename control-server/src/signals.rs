//! Signals a daemon should stop dying of.
//!
//! The default action of SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT is to end the process. A daemon
//! that once handled one of them and no longer does is killed by the first leftover `pkill -HUP`
//! in a logrotate script. [`ignore_legacy_signals`] makes such a signal harmless; the server's
//! [`Builder::on_sighup`](crate::Builder::on_sighup) turns SIGHUP into what a leftover
//! `postrotate kill -HUP` means, a reopen of the log files (and a reload, if the daemon says
//! so), logged with the `ctl` command to use instead ([`Sighup`]). SIGTERM and SIGINT keep
//! their meaning.

use crate::audit::{Outcome, Who};
use crate::handler::OpContext;
use crate::policy::Peer;
use crate::state::Shared;
use control_api::Command as _;
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

/// What the SIGHUP bridge does with a SIGHUP, set with
/// [`Builder::on_sighup`](crate::Builder::on_sighup).
///
/// A SIGHUP that still arrives after a daemon moved to `ctl` is almost always a leftover
/// `postrotate kill -HUP` (or `pkill -HUP`) in a logrotate stanza: logrotate has just renamed
/// the log file and means "reopen your logs". So the bridge always reopens them, as
/// `ctl rotate` does; whether it also reloads the configuration is the daemon's choice.
///
/// While such lines are being replaced, the bridge keeps them harmless: a SIGHUP reopens the
/// logs and logs a warning naming `ctl rotate NAME`, into the new file. `ctl doctor` finds
/// the lines: for a daemon that catches SIGHUP and holds the lock of a control socket it
/// reports `bridged`, "handled (by the control server's SIGHUP bridge, or the daemon's own
/// handler); replace with `ctl rotate NAME`". Without the bridge, after
/// [`ignore_legacy_signals`], such a line does nothing (`control_socket`: the logs are not
/// reopened).
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
    shared: Arc<Shared>,
) {
    let Shared {
        rotate,
        reloads,
        audit,
        name,
        shutdown,
        ..
    } = &*shared;
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
        let done = match rotate.serves() {
            true => {
                let name = control_api::RotateRequest::NAME;
                let record = audit.begin(Who::Signal("SIGHUP"), name);
                let ctx = OpContext::new(name, peer, deadline);
                let reopened = rotate
                    .rotate(ctx, true)
                    .await
                    .map(|reply| format!("{} log file(s) reopened", reply.files.len()));
                let outcome = match &reopened {
                    Ok(done) => Outcome::ok(done.clone()),
                    Err(err) => Outcome::failed(err),
                };
                audit.finish(record, outcome).await;
                reopened.unwrap_or_else(|err| format!("reopening the log files failed ({err})"))
            }
            false => "no log file to reopen".to_owned(),
        };
        let reload = action == Sighup::ReopenLogsAndReload && reloads.has_handler();
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
        let record = audit.begin(Who::Signal("SIGHUP"), control_api::ReloadRequest::NAME);
        let ctx = OpContext::new(control_api::ReloadRequest::NAME, peer, deadline);
        let outcome = match reloads.request(ctx).await {
            Ok(reply) => {
                tracing::info!(
                    generation = reply.generation,
                    "reload after SIGHUP done: {}",
                    reply.summary
                );
                Outcome::ok(reply.summary)
            }
            Err(err) => {
                tracing::warn!("reload after SIGHUP failed: {err}");
                Outcome::failed(&err)
            }
        };
        audit.finish(record, outcome).await;
    }
}

/// SIGTERM and SIGINT, received on a thread of their own, with a deadline for the stop they
/// ask for.
///
/// A daemon that waits for SIGTERM on its runtime never hears it while the runtime's thread is
/// stuck: a log line written to a frozen disk, a blocking step run where it should not be. And
/// a graceful shutdown can itself wait on such a thing. So [`Termination::start`] blocks both
/// signals in every thread and waits for them on a thread that does nothing else; when one
/// arrives, [`requested`](Termination::requested) resolves, and if
/// [`finished`](Termination::finished) is not called within the deadline, the process exits
/// at once with status 1 and one line on stderr (written only if stderr takes it without
/// waiting). A second signal during the stop exits at once the same way.
///
/// The kernel finishes the exit of a process only when each of its threads leaves the system
/// call it is in: a thread writing to a frozen file system holds the process (a zombie, its
/// socket closed) until the disk thaws. Nothing in user space can do better; what the deadline
/// bounds is how long the daemon goes on trying.
///
/// ```no_run
/// # async fn serve() {}
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// // First, before anything starts a thread: threads started later inherit the mask.
/// let termination = control_server::signals::Termination::start(Duration::from_secs(11))?;
/// tokio::select! {
///     _ = serve() => {}
///     _ = termination.requested() => {}
/// }
/// // ... server.shutdown().await, last writes ...
/// termination.finished();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Termination {
    requested: CancellationToken,
    finished: std::sync::mpsc::SyncSender<()>,
}

impl Termination {
    /// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts from
    /// now on) and starts the thread that waits for them. Call it first, before the runtime or
    /// anything else starts a thread: a thread started before still has them unblocked, and a
    /// signal delivered to it ends the process the default way.
    pub fn start(deadline: Duration) -> io::Result<Termination> {
        use nix::sys::signal::{SigSet, SigmaskHow};
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(io::Error::from)?;
        let requested = CancellationToken::new();
        let (finished, done) = std::sync::mpsc::sync_channel(1);
        let token = requested.clone();
        std::thread::Builder::new()
            .name("termination".into())
            .spawn(move || {
                let Ok(first) = set.wait() else { return };
                token.cancel();
                // A second signal ends the stop at once, as an impatient operator expects.
                let (again, again_rx) = std::sync::mpsc::sync_channel(1);
                let _ = std::thread::Builder::new()
                    .name("termination-again".into())
                    .spawn(move || {
                        if let Ok(sig) = set.wait() {
                            let _ = again.send(sig);
                        }
                    });
                let start = Instant::now();
                loop {
                    match done.recv_timeout(Duration::from_millis(50)) {
                        // Finished, or the value dropped without a word: nothing to cut short.
                        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    if let Ok(sig) = again_rx.try_recv() {
                        give_up(&format!("{} received again during the stop", sig.as_str()));
                    }
                    if start.elapsed() >= deadline {
                        give_up(&format!(
                            "the stop {} asked for did not finish within {deadline:?} (a step \
                             or a disk that does not answer)",
                            first.as_str()
                        ));
                    }
                }
            })?;
        Ok(Termination {
            requested,
            finished,
        })
    }

    /// Resolves once SIGTERM or SIGINT has arrived. Cancel-safe.
    pub async fn requested(&self) {
        self.requested.cancelled().await
    }

    /// The stop is done: the deadline no longer applies.
    pub fn finished(&self) {
        let _ = self.finished.try_send(());
    }
}

/// Exits now with status 1, saying why on stderr if stderr takes the line without waiting: a
/// reader who stopped reading must not hold the exit up either.
fn give_up(why: &str) -> ! {
    use rustix::event::{poll, PollFd, PollFlags};
    // SAFETY: descriptor 2 is not closed by anything here, and if it is not open at all, poll
    // and write fail with EBADF, harmlessly.
    let stderr = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
    let mut fds = [PollFd::new(&stderr, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if poll(&mut fds, Some(&zero)).is_ok_and(|n| n == 1)
        && fds[0].revents().contains(PollFlags::OUT)
    {
        let line = format!("{}: {why}; exiting now\n", program_name());
        let _ = rustix::io::write(stderr, line.as_bytes());
    }
    std::process::exit(1)
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "daemon".to_owned())
}
