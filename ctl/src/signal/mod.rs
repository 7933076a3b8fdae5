//! `ctl signal SIGNAL (--pidfile PATH [--name NAME] | --name NAME) [--force]
//! [--verify-reopen LOG...]`: send a signal to a daemon that has no control socket, only where it
//! is handled, and prove what it did.
//!
//! Each process is pinned first: its pidfd is opened, then `/proc` is read (its name, its
//! dispositions, every thread's mask, its descriptors), then the pidfd is polled to check the
//! process is still alive. A pid is not reused before its process is reaped, so a process
//! alive after the reads is the one they describe, and the signal goes through the same
//! pidfd: a pid reused meanwhile is never signalled. With several processes (`--name`), all
//! are judged before any is signalled.
//!
//! Afterwards the pidfds say whether a process died of it (polled for a moment, or for the
//! whole `--verify-reopen` wait), and [`reopen`] whether the logs were reopened.

mod error;
pub(crate) mod names;
mod reopen;

pub use error::SignalError;
pub(crate) use error::Who;
pub(crate) use names::{Handled, Refusal, Sig};

use crate::procfs::{self, OpenFile};
use clap::Args;
use reopen::Log;
use rustix::process::{Pid, PidfdFlags};
use serde_json::{json, Value};
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a process must stay alive after the signal, without `--verify-reopen`, to count
/// as having survived it (a signal that kills is acted on at the process's next return from
/// the kernel, well within this).
pub const SETTLE: Duration = Duration::from_millis(200);

/// How often `--verify-reopen` reads `/proc/PID/fd`.
const POLL: Duration = Duration::from_millis(20);

/// How many times, and how far apart, a signal blocked in every thread is looked at again
/// before it counts as blocked: 100 ms in all.
const BLOCK_LOOKS: u32 = 21;
const BLOCK_LOOK_EVERY: Duration = Duration::from_millis(5);

/// The most processes `--name` judges and signals at once (a prefork server's workers are a
/// few hundred): past it, nothing is sent.
pub const MAX_NAMED: usize = 1024;

/// The long help of `ctl signal`.
pub const LONG_ABOUT: &str = "\
Send a signal to a daemon without a control socket, only where it is handled, and prove what \
it did

The process is the one whose pid the pid file holds (--pidfile: it, and each directory above \
it, must be root's or ctl's user's and writable by nobody else, and it must not be a symbolic \
link), or every process whose name (/proc/PID/comm, at most 15 bytes, as `pkill -x` matches) \
is NAME. Before sending, ctl reads each process's dispositions from /proc/PID/status: a signal \
it does not catch and whose default action would kill or stop it, one it ignores, and one \
blocked in every thread (and read from no signalfd) is not sent: exit 1, naming the process and \
why. With several processes, if one of them would not handle it, none is signalled; more \
than 1024 of the name, or more than --timeout spent judging them, and none is either. --force \
sends anyway. SIGCONT is sent without a handler: continuing is what it does.

The signal goes through a pidfd opened before the checks, so a pid reused meanwhile is never \
signalled, and with both --pidfile and --name, the pid file's process must have that name: a \
stale pid file whose pid went to another process is exit 69, nothing sent. Without \
--verify-reopen, exit 0 once every process is still alive 200ms after the \
signal (\"sent; not verified\"), 1 if one died. With --verify-reopen LOG..., wait (up to \
--timeout) until, for each LOG, a signalled process has the file now at LOG open and none \
still writes to the file that was there (now renamed, e.g. LOG.1, or deleted): exit 0 then, 1 \
naming what is still held open. Reading /proc/PID/fd needs the process's uid or root: refused, \
exit 77.

Exit 69 when the pid file is missing (0 with --missing-ok) or names a process that is gone \
(a stale pid file: 69 even with --missing-ok), or no process has the name (0 with \
--missing-ok); 77 for an untrusted pid file. In a logrotate postrotate script, instead of \
`kill -HUP $(cat /run/nginx.pid)`:

    ctl signal HUP --pidfile /run/nginx.pid --name nginx --verify-reopen /var/log/nginx/access.log";

/// Arguments of `signal`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("process").required(true).multiple(true).args(["pidfile", "name"])))]
pub struct SignalArgs {
    /// The signal: a name as `kill -l` lists it (HUP, SIGHUP, usr1) or its number (1)
    #[arg(value_name = "SIGNAL", value_parser = names::parse)]
    pub signal: Sig,
    /// The process whose pid this file holds (the pid file a logrotate stanza reads)
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub pidfile: Option<PathBuf>,
    /// Every process with this exact name in /proc/PID/comm, as `pkill -x` (at most 15 bytes),
    /// but login users' (their name is their choice); with --pidfile, the name its process
    /// must have
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Send it even to a process that does not handle it (it may kill or stop it)
    #[arg(long)]
    pub force: bool,
    /// After sending, wait until the processes have reopened each LOG (one or more paths;
    /// put this option last)
    #[arg(long, value_name = "LOG", num_args = 1.., value_hint = clap::ValueHint::FilePath)]
    pub verify_reopen: Vec<PathBuf>,
}

impl SignalArgs {
    /// The pid file or name, as the envelope's `target`.
    pub fn target(&self) -> String {
        match (&self.pidfile, &self.name) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => String::new(),
        }
    }
}

/// A process pinned by its pidfd, and what was read of it.
pub(crate) struct Process {
    pub(crate) who: Who,
    /// Its saved set-user-ID (`who` has its real uid).
    pub(crate) saved_uid: u32,
    pidfd: OwnedFd,
    pub(crate) verdict: Result<Handled, Refusal>,
    /// Its descriptors before the signal (when read: `--verify-reopen`, or when permitted).
    files: Option<Vec<OpenFile>>,
}

/// Runs `ctl signal`; `Ok` is the `--json` result and the lines for people.
pub fn run(args: &SignalArgs, timeout: Duration) -> Result<(Value, String), SignalError> {
    let deadline = Instant::now() + timeout;
    let verify = !args.verify_reopen.is_empty();
    let processes = find(args, verify, deadline)?;
    let refused: Vec<(Who, Refusal)> = processes
        .iter()
        .filter_map(|p| p.verdict.err().map(|r| (p.who.clone(), r)))
        .collect();
    if !refused.is_empty() && !args.force {
        return Err(SignalError::NotSent {
            sig: args.signal,
            refused,
            of: processes.len(),
        });
    }
    let mut logs: Vec<Log> = args.verify_reopen.iter().map(|p| Log::new(p)).collect();
    for log in &mut logs {
        let files: Vec<&OpenFile> = processes
            .iter()
            .flat_map(|p| p.files.iter().flatten())
            .collect();
        log.record(&files);
    }
    for p in &processes {
        send(&p.pidfd, &args.signal).map_err(|e| sent_error(e, p))?;
    }
    let holdings = if verify {
        Some(wait_for_reopen(&processes, &logs, deadline, args, timeout)?)
    } else {
        let dead = settle(&processes, deadline.min(Instant::now() + SETTLE))?;
        if !dead.is_empty() {
            return Err(killed(args, dead));
        }
        None
    };
    Ok(report(args, &processes, holdings.as_deref()))
}

/// The processes to signal, pinned and judged, by `deadline`.
fn find(args: &SignalArgs, verify: bool, deadline: Instant) -> Result<Vec<Process>, SignalError> {
    let name = args.name.as_deref();
    if let Some(name) = name.filter(|n| n.len() > procfs::COMM_MAX) {
        return Err(SignalError::NameTooLong {
            name: name.to_owned(),
            short: procfs::comm_prefix(name).to_owned(),
        });
    }
    if let Some(path) = &args.pidfile {
        let pid = crate::pidfile::read(path)?;
        if let Some(p) = inspect(pid, name.map(str::as_bytes), &args.signal, verify)? {
            return Ok(vec![p]);
        }
        // Not so named (or gone): whose the pid is now says which.
        return Err(match (name, inspect(pid, None, &args.signal, false)?) {
            (Some(name), Some(now)) => SignalError::Reused {
                path: path.clone(),
                pid,
                name: name.to_owned(),
                now: now.who.name,
            },
            _ => SignalError::Stale {
                path: path.clone(),
                pid,
            },
        });
    }
    let name = name.unwrap_or_default();
    let pids = procfs::pids_named(name.as_bytes()).map_err(|source| SignalError::Os {
        what: "cannot list the processes in /proc".into(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    let people = login_uids();
    // A login user's process could be named so to take the daemon's place (a dead daemon's
    // signal "handled" by theirs), or to refuse for it; it is left out before it is looked at,
    // so that many of them cost nothing either.
    let mut left_out = Vec::new();
    let pids: Vec<i32> = pids
        .into_iter()
        .filter(|&pid| match procfs::dispositions(pid) {
            Ok(d) if people.contains(&d.uid) && d.uid != me => {
                left_out.push((pid, d.uid));
                false
            }
            _ => true,
        })
        .collect();
    // Each may cost the 100 ms of a blocked signal's looks: a system user's thousand
    // processes of that name must not hold root's logrotate past its --timeout.
    if pids.len() > MAX_NAMED {
        return Err(SignalError::TooMany {
            name: name.to_owned(),
            count: pids.len(),
        });
    }
    let mut found = Vec::new();
    for (judged, &pid) in pids.iter().enumerate() {
        if Instant::now() >= deadline {
            return Err(SignalError::Unjudged {
                name: name.to_owned(),
                judged,
                of: pids.len(),
            });
        }
        // One that exited, or was replaced by another name, since the listing is left out.
        found.extend(inspect(pid, Some(name.as_bytes()), &args.signal, verify)?);
    }
    if found.is_empty() {
        return Err(SignalError::NoProcess {
            name: name.to_owned(),
            left_out,
        });
    }
    Ok(found)
}

/// The uids of login users, people rather than daemons: `UID_MIN` to `UID_MAX` of
/// /etc/login.defs, 1000 to 60000 where it does not say (nobody, 65534, is not one).
fn login_uids() -> std::ops::RangeInclusive<u32> {
    let defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
    let value = |key: &str, default: u32| {
        defs.lines()
            .filter_map(|line| line.split_once(char::is_whitespace))
            .filter(|(k, _)| *k == key)
            .find_map(|(_, v)| v.trim().parse().ok())
            .unwrap_or(default)
    };
    value("UID_MIN", 1000)..=value("UID_MAX", 60000)
}

/// Pins `pid` with a pidfd and reads what judging `sig` needs; `None` when it is gone (or,
/// with `name`, is no longer called so). `ctl doctor` judges with it too.
pub(crate) fn inspect(
    pid: i32,
    name: Option<&[u8]>,
    sig: &Sig,
    verify: bool,
) -> Result<Option<Process>, SignalError> {
    let os = |what: String| move |source| SignalError::Os { what, source };
    let Some(raw) = Pid::from_raw(pid) else {
        return Ok(None);
    };
    let pidfd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        Err(e) => return Err(os(format!("cannot open a pidfd for pid {pid} (pidfd_open: Linux 5.3 or later, and a process, not a thread)"))(e.into())),
    };
    let read = || -> io::Result<_> {
        let comm = procfs::comm(pid)?;
        let d = procfs::dispositions(pid)?;
        Ok((comm, d, blocked_for_a_while(pid, sig)?))
    };
    let (comm, d, blocked) = match read() {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(os(format!("cannot read /proc/{pid}"))(e)),
    };
    if d.exited() || name.is_some_and(|n| n != comm) {
        return Ok(None);
    }
    let who = Who {
        pid,
        name: String::from_utf8_lossy(&comm).into_owned(),
        uid: d.uid,
    };
    let files = match procfs::open_files(pid) {
        Ok(files) => Some(files),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !verify => None,
        Err(source) => return Err(read_fd_error(who, source, false)),
    };
    let signalfd = files
        .as_deref()
        .map_or(0, |f| procfs::signalfd_signals(pid, f));
    // Alive now, so everything above was read of this process and not of a pid's next owner.
    if !alive(&pidfd).map_err(os(format!("cannot poll the pidfd of pid {pid}")))? {
        return Ok(None);
    }
    let masks = names::Masks {
        caught: d.caught,
        ignored: d.ignored,
        blocked,
        signalfd,
        stopped: matches!(d.state, 'T' | 't'),
    };
    Ok(Some(Process {
        who,
        saved_uid: d.saved_uid,
        pidfd,
        verdict: names::judge(sig, &masks),
        files,
    }))
}

/// The signals blocked in every thread of `pid`; `sig` only if it stays so while it is looked
/// at [`BLOCK_LOOKS`] times, [`BLOCK_LOOK_EVERY`] apart. Programs block signals for moments
/// (a shell around each fork, an event loop outside `ppoll`), and a signal sent then is
/// delivered a moment later.
fn blocked_for_a_while(pid: i32, sig: &Sig) -> io::Result<procfs::SigSet> {
    let bit = procfs::bit(sig.number());
    let mut blocked = procfs::blocked_in_every_thread(pid)?.0;
    for _ in 1..BLOCK_LOOKS {
        if blocked & bit == 0 {
            break;
        }
        std::thread::sleep(BLOCK_LOOK_EVERY);
        blocked = procfs::blocked_in_every_thread(pid)?.0;
    }
    Ok(blocked)
}

fn read_fd_error(who: Who, source: io::Error, sent: bool) -> SignalError {
    if source.kind() == io::ErrorKind::PermissionDenied {
        SignalError::Denied {
            who,
            what: "read the open descriptors (/proc/PID/fd) of",
            sent,
            source,
        }
    } else {
        SignalError::Os {
            what: format!("cannot read /proc/{}/fd", who.pid),
            source,
        }
    }
}

/// Sends `sig` to the process `pidfd` refers to: never to another one, even when the pid has
/// been reused since (the process is gone: `ESRCH`).
pub fn send(pidfd: &OwnedFd, sig: &Sig) -> io::Result<()> {
    rustix::process::pidfd_send_signal(pidfd, sig.signal).map_err(io::Error::from)
}

fn sent_error(e: io::Error, p: &Process) -> SignalError {
    match rustix::io::Errno::from_io_error(&e) {
        Some(rustix::io::Errno::SRCH) => SignalError::Gone { who: p.who.clone() },
        Some(rustix::io::Errno::PERM) => SignalError::Denied {
            who: p.who.clone(),
            what: "signal",
            sent: false,
            source: e,
        },
        _ => SignalError::Os {
            what: format!("cannot signal {}", p.who),
            source: e,
        },
    }
}

/// Whether the process of `pidfd` has not exited: a pidfd turns readable when it does.
fn alive(pidfd: &OwnedFd) -> io::Result<bool> {
    Ok(exited_within(&[pidfd], Duration::ZERO)?.is_empty())
}

/// The indexes of `pidfds` whose process has exited, waiting at most `limit` for one.
fn exited_within(pidfds: &[&OwnedFd], limit: Duration) -> io::Result<Vec<usize>> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut polled: Vec<PollFd> = pidfds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::IN))
        .collect();
    let timeout = Timespec {
        tv_sec: limit.as_secs() as _,
        tv_nsec: limit.subsec_nanos() as _,
    };
    while let Err(e) = rustix::event::poll(&mut polled, Some(&timeout)) {
        if e != rustix::io::Errno::INTR {
            return Err(e.into());
        }
    }
    Ok(polled
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.revents().is_empty())
        .map(|(i, _)| i)
        .collect())
}

/// Waits until `until` unless a process exits first; returns those that did.
fn settle(processes: &[Process], until: Instant) -> Result<Vec<Who>, SignalError> {
    let pidfds: Vec<&OwnedFd> = processes.iter().map(|p| &p.pidfd).collect();
    let limit = until.saturating_duration_since(Instant::now());
    let dead = exited_within(&pidfds, limit).map_err(|source| SignalError::Os {
        what: "cannot poll the pidfds".into(),
        source,
    })?;
    Ok(dead.into_iter().map(|i| processes[i].who.clone()).collect())
}

/// The error of `args`' signal having killed `dead`.
fn killed(args: &SignalArgs, dead: Vec<Who>) -> SignalError {
    SignalError::Killed {
        sig: args.signal,
        dead,
        forced: args.force,
    }
}

/// Reads the processes' descriptors every [`POLL`] until every LOG is reopened, a process
/// exits, or `deadline` passes.
fn wait_for_reopen(
    processes: &[Process],
    logs: &[Log],
    deadline: Instant,
    args: &SignalArgs,
    timeout: Duration,
) -> Result<Vec<reopen::Holding>, SignalError> {
    let rounds = timeout.as_millis() / POLL.as_millis() + 2;
    let mut last = Vec::new();
    for _ in 0..rounds {
        let mut held = Vec::new();
        for p in processes {
            match procfs::open_files(p.who.pid) {
                Ok(files) => held.push((&p.who, files)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(read_fd_error(p.who.clone(), e, true)),
            }
        }
        // Checked after the reads: a process alive now is the one whose descriptors were read.
        let dead = settle(processes, Instant::now())?;
        if !dead.is_empty() {
            return Err(killed(args, dead));
        }
        last = reopen::check(logs, &held);
        if last.iter().all(reopen::Holding::done) {
            return Ok(last);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    Err(SignalError::NotReopened {
        sig: args.signal,
        waited: timeout,
        unreopened: reopen::Unreopened { logs: last },
    })
}

/// The `--json` result and the human lines of a signal sent.
fn report(
    args: &SignalArgs,
    processes: &[Process],
    holdings: Option<&[reopen::Holding]>,
) -> (Value, String) {
    let sig = &args.signal;
    let mut lines = Vec::new();
    let mut docs = Vec::new();
    for p in processes {
        let how = match p.verdict {
            Ok(Handled::Handler) => "it has a handler".to_owned(),
            Ok(Handled::Signalfd) => "it reads it from a signalfd".to_owned(),
            Ok(Handled::Continues) => "its default action continues it".to_owned(),
            Err(r) => format!("--force: {}", r.text(sig)),
        };
        let reopened: Vec<&reopen::Holding> = holdings
            .unwrap_or_default()
            .iter()
            .filter(|h| h.holders.contains(&p.who.pid))
            .collect();
        let outcome = match holdings {
            None => format!("not verified: alive {}ms later", SETTLE.as_millis()),
            Some(_) if reopened.is_empty() => "holds none of the logs".to_owned(),
            Some(_) => reopened_text(&reopened),
        };
        lines.push(format!(
            "{}: {sig} sent ({how}); {outcome}",
            crate::output::clean(&p.who.to_string())
        ));
        docs.push(json!({
            "pid": p.who.pid, "name": p.who.name, "uid": p.who.uid,
            "handled": p.verdict.ok(), "refusal": p.verdict.err(),
            "reopened": reopened.iter().map(|h| json!({
                "path": h.path, "file": h.file, "was": h.before,
            })).collect::<Vec<_>>(),
        }));
    }
    let doc = json!({
        "signal": sig.to_string(), "number": sig.number(), "forced": args.force,
        "verified": holdings.is_some(), "processes": docs,
    });
    (doc, lines.join("\n"))
}

fn reopened_text(reopened: &[&reopen::Holding]) -> String {
    let each: Vec<String> = reopened
        .iter()
        .map(|h| {
            let was: Vec<String> = h.before.iter().map(|id| id.ino.to_string()).collect();
            format!(
                "{} (inode {}{})",
                control_api::text::escape_path(&h.path),
                h.file.map_or("-".into(), |id| id.ino.to_string()),
                if was.is_empty() {
                    String::new()
                } else {
                    format!(", was {}", was.join(", "))
                }
            )
        })
        .collect();
    format!("reopened {}", each.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pidfd keeps naming the process it was opened for: once that one is reaped, sending
    /// through it fails with ESRCH, whoever has the pid now; nothing else is signalled.
    #[test]
    fn a_pidfd_of_a_reaped_process_signals_nobody() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).unwrap();
        assert!(alive(&pidfd).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(&pidfd).unwrap(), "the pidfd turns readable at exit");
        let hup = names::parse("HUP").unwrap();
        let err = send(&pidfd, &hup).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::SRCH.raw_os_error())
        );
        // And a process checked as gone is no target.
        assert!(inspect(child.id() as i32, None, &hup, false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_name_longer_than_the_kernel_keeps_is_a_usage_error() {
        let args = SignalArgs {
            signal: names::parse("HUP").unwrap(),
            pidfile: None,
            name: Some("a-very-long-daemon-name".into()),
            force: false,
            verify_reopen: Vec::new(),
        };
        let err = run(&args, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.class(), (crate::exit::Exit::Usage, "usage"));
        assert!(err.to_string().contains("\"a-very-long-dae\""), "{err}");
    }
}
