//! What a signal would do to the processes a line aims it at: the target resolved as the shell
//! would (a pid file by `ctl signal`'s trust rule, read under the root; a name or pattern
//! against `/proc/PID/comm`; `$MAINPID` from systemd), each process judged as `ctl signal`
//! judges it ([`crate::signal::inspect`]: nothing is sent), and whether it serves a control
//! socket (it holds the lock of one, as `ctl` finds a running daemon: [`crate::running`]).

use super::files::Root;
use super::shell::Target;
use crate::pidfile::{PidFileError, Reader};
use crate::signal::{self, Handled, Refusal, Sig};
use control_api::socket::implied_name;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most processes judged for one line (a pattern may match many).
const MAX_PROCESSES: usize = 64;

/// How long one run may spend judging processes in all (a process that blocks the signal is
/// looked at for up to 100 ms): past it, what is left is `cannot_tell`, so `ctl doctor` ends.
pub const JUDGING_TIME: Duration = Duration::from_secs(30);

/// How long `systemctl show` may take to say a unit's main pid.
const SYSTEMCTL_WAIT: Duration = Duration::from_secs(2);

/// What a line would do, from the worst to the most harmless: the JSON `verdict`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    WouldKill,
    WouldStop,
    Blocked,
    Ignored,
    ControlSocket,
    CannotTell,
    Untrusted,
    Bridged,
    Handled,
    /// The line runs as a user (a user's crontab) who may not signal the process: `kill`
    /// fails with `EPERM`, nothing is sent.
    NotPermitted,
    NotRunning,
}

impl Verdict {
    /// Whether the line would kill (or stop) its target: `ctl doctor` exits 1.
    pub fn dangerous(self) -> bool {
        matches!(self, Verdict::WouldKill | Verdict::WouldStop)
    }
}

/// One process judged.
#[derive(Clone)]
pub struct Judged {
    pub pid: i32,
    pub name: String,
    pub uid: u32,
    /// Its saved set-user-ID: a user may signal a process whose real or saved uid is theirs.
    pub saved_uid: u32,
    pub verdict: Verdict,
    pub why: Result<Handled, Refusal>,
    /// The control socket it serves, and the daemon's name there.
    pub socket: Option<(PathBuf, String)>,
}

impl Judged {
    pub fn json(&self) -> Value {
        json!({
            "pid": self.pid, "name": self.name, "uid": self.uid, "verdict": self.verdict,
            "socket": self.socket.as_ref().map(|(p, _)| p.display().to_string()),
            "daemon": self.socket.as_ref().map(|(_, n)| n.clone()),
            "handled": self.why.as_ref().ok(),
            "refusal": self.why.as_ref().err(),
        })
    }
}

/// What a target resolved to.
pub enum Resolved {
    Processes(Vec<Judged>),
    /// Not running, and how that is known.
    NotRunning(String),
    Untrusted(String),
    /// The line's user may not read what names the target: nothing is sent.
    NotPermitted(String),
    CannotTell(String),
}

/// Where a line is, for what needs it: the root (pid files), the unit (`$MAINPID`), and the
/// user it runs as when that is not root (a user's crontab: its owner).
pub struct Place<'a> {
    pub root: &'a Root,
    pub unit: Option<&'a str>,
    pub sender: Option<&'a Reader>,
}

/// What one run has judged so far, and until when it may judge: each (pid, signal) is judged
/// once per run, however many lines name it.
pub struct Judging {
    until: Instant,
    judged: HashMap<(i32, i32), Result<Option<Judged>, String>>,
}

impl Judging {
    pub fn new() -> Judging {
        Judging {
            until: Instant::now() + JUDGING_TIME,
            judged: HashMap::new(),
        }
    }

    /// Why nothing more is judged, once [`JUDGING_TIME`] has passed.
    fn over(&self) -> Option<String> {
        (Instant::now() >= self.until).then(|| {
            format!(
                "not judged: ctl doctor spends at most {}s judging processes, and that time had \
                 passed",
                JUDGING_TIME.as_secs()
            )
        })
    }

    /// Judges one process, once per run: `Ok(None)` when it is gone.
    fn process(&mut self, pid: i32, sig: &Sig) -> Result<Option<Judged>, String> {
        let key = (pid, sig.number());
        if let Some(judged) = self.judged.get(&key) {
            return judged.clone();
        }
        if let Some(why) = self.over() {
            return Err(why);
        }
        let judged = process(pid, sig);
        self.judged.insert(key, judged.clone());
        judged
    }
}

/// Resolves `target` and judges `sig` for each of its processes.
pub fn judge(target: &Target, sig: &Sig, at: &Place, run: &mut Judging) -> Resolved {
    let mut resolved = resolve(target, sig, at, run);
    if let (Resolved::Processes(judged), Some(sender)) = (&mut resolved, at.sender) {
        for j in judged.iter_mut() {
            if sender.uid != j.uid && sender.uid != j.saved_uid {
                j.verdict = Verdict::NotPermitted;
            }
        }
    }
    resolved
}

fn resolve(target: &Target, sig: &Sig, at: &Place, run: &mut Judging) -> Resolved {
    // A pid may have been judged already; anything else costs reading pid files, `/proc` or
    // asking systemd.
    if !matches!(target, Target::Pid(_)) {
        if let Some(why) = run.over() {
            return Resolved::CannotTell(why);
        }
    }
    let listed = match target {
        Target::PidFile(path, name) => return pidfile(path, name.as_deref(), sig, at, run),
        Target::Pid(pid) => Ok(vec![*pid]),
        Target::Name(name) => crate::procfs::pids_named(name.as_bytes()),
        Target::Pattern(p) => crate::procfs::pids_matching(|comm| p.matches(comm)),
        Target::MainPid => match main_pid(at) {
            Ok(pid) => Ok(vec![pid]),
            Err(resolved) => return resolved,
        },
        Target::Unknown(why) => return Resolved::CannotTell(why.clone()),
    };
    let pids = match listed {
        Ok(pids) => pids,
        Err(e) => return Resolved::CannotTell(format!("cannot list /proc: {e}")),
    };
    let mut judged: Vec<Judged> = Vec::new();
    let mut unjudged = None;
    for pid in pids.into_iter().take(MAX_PROCESSES) {
        match run.process(pid, sig) {
            Ok(Some(j)) => judged.push(j),
            Ok(None) => {}
            Err(why) => {
                unjudged.get_or_insert(why);
            }
        }
    }
    // A process that could not be judged makes the line "cannot tell", unless another is
    // known to be worse off.
    if let Some(why) = unjudged {
        if !judged.iter().any(|j| j.verdict < Verdict::CannotTell) {
            return Resolved::CannotTell(why);
        }
    }
    if judged.is_empty() {
        return Resolved::NotRunning(match target {
            Target::Pid(pid) => format!("no process has pid {pid}"),
            Target::MainPid => "the unit's main pid is not running".into(),
            Target::Pattern(p) => format!("no process name matches {:?}", p.source),
            Target::Name(name) => format!("no process named {name:?}"),
            _ => "no such process".into(),
        });
    }
    Resolved::Processes(judged)
}

/// The pid file's process; with `name`, only if it has that name.
fn pidfile(path: &Path, name: Option<&str>, sig: &Sig, at: &Place, run: &mut Judging) -> Resolved {
    let shown = at.root.shown(path);
    let read = match at.sender {
        Some(user) => crate::pidfile::read_as(&at.root.path, path, user),
        None => crate::pidfile::read_in(&at.root.path, path),
    };
    match read {
        Ok(pid) => match run.process(pid, sig) {
            Ok(Some(judged)) if name.is_some_and(|n| n != judged.name) => {
                Resolved::NotRunning(format!(
                    "the pid file {} names pid {pid}, which is now {:?}, not {:?}: the daemon \
                     died and its pid went to another process, which start-stop-daemon leaves \
                     alone",
                    shown.display(),
                    judged.name,
                    name.unwrap_or_default()
                ))
            }
            Ok(Some(judged)) => Resolved::Processes(vec![judged]),
            Err(why) => Resolved::CannotTell(why),
            Ok(None) => Resolved::NotRunning(format!(
                "the pid file {} names pid {pid}, which is not running (a stale pid file: \
                 the daemon died, or was stopped without removing it)",
                shown.display()
            )),
        },
        Err(PidFileError::Missing { .. }) => {
            Resolved::NotRunning(format!("no pid file at {}", shown.display()))
        }
        Err(e @ PidFileError::Untrusted { .. }) => Resolved::Untrusted(e.to_string()),
        // The line's user may not read it (or a directory above it): their `cat`, `pkill -F`
        // or start-stop-daemon fails and sends nothing.
        Err(PidFileError::Unreadable { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Resolved::NotPermitted(format!(
                "the line runs as uid {}, who may not read the pid file {} ({source}): it \
                 sends nothing",
                at.sender.map_or(0, |s| s.uid),
                shown.display()
            ))
        }
        Err(e) => Resolved::CannotTell(e.to_string()),
    }
}

/// Judges one process: `Ok(None)` when it is gone, `Err` saying why it could not be read.
fn process(pid: i32, sig: &Sig) -> Result<Option<Judged>, String> {
    let p = match signal::inspect(pid, None, sig, false) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let socket = crate::running::held_locks(Path::new(&format!("/proc/{pid}")), p.who.uid)
        .into_iter()
        .next()
        .map(|s| {
            let name = implied_name(&s).map_or_else(|| s.display().to_string(), str::to_owned);
            (s, name)
        });
    let verdict = match (&p.verdict, socket.is_some()) {
        (Err(Refusal::WouldKill), _) => Verdict::WouldKill,
        (Err(Refusal::WouldStop), _) => Verdict::WouldStop,
        (Ok(_), true) => Verdict::Bridged,
        (Ok(_), false) => Verdict::Handled,
        (Err(_), true) => Verdict::ControlSocket,
        (Err(Refusal::Blocked | Refusal::Stopped), false) => Verdict::Blocked,
        (Err(_), false) => Verdict::Ignored,
    };
    Ok(Some(Judged {
        pid,
        name: p.who.name.clone(),
        uid: p.who.uid,
        saved_uid: p.saved_uid,
        verdict,
        why: p.verdict,
        socket,
    }))
}

/// The unit's main pid, from systemd (`systemctl show`, given at most [`SYSTEMCTL_WAIT`]).
fn main_pid(at: &Place) -> Result<i32, Resolved> {
    if !at.root.is_host() {
        return Err(Resolved::CannotTell(
            "$MAINPID is the unit's main pid, which only the systemd running that root knows \
             (--root reads configuration, not its systemd)"
                .into(),
        ));
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(Resolved::NotRunning(
            "systemd is not running here (no /run/systemd/system), so the unit has no main pid"
                .into(),
        ));
    }
    let unit = at.unit.unwrap_or_default();
    let text = systemctl_main_pid(unit)
        .map_err(|e| Resolved::CannotTell(format!("systemctl show -p MainPID {unit}: {e}")))?;
    match text.trim().parse::<i32>() {
        Ok(0) => Err(Resolved::NotRunning(format!(
            "{unit} is not running (MainPID=0)"
        ))),
        Ok(pid) => Ok(pid),
        Err(_) => Err(Resolved::CannotTell(format!(
            "systemctl show -p MainPID {unit} said {:?}",
            text.trim()
        ))),
    }
}

/// Runs `systemctl show --property=MainPID --value -- UNIT`, killing it after
/// [`SYSTEMCTL_WAIT`]. The unit's name is an argument, never shell.
fn systemctl_main_pid(unit: &str) -> std::io::Result<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("systemctl")
        .args(["show", "--property=MainPID", "--value", "--", unit])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let until = Instant::now() + SYSTEMCTL_WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            if let Some(out) = child.stdout.as_mut() {
                out.take(64).read_to_string(&mut text)?;
            }
            return match status.success() {
                true => Ok(text),
                false => Err(std::io::Error::other(format!("it exited with {status}"))),
            };
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no answer within 2s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_judging_time_what_is_left_is_cannot_tell() {
        let root = Root::open(None).unwrap();
        let at = Place {
            root: &root,
            unit: None,
            sender: None,
        };
        let hup = crate::signal::names::parse("HUP").unwrap();
        let me = Target::Pid(std::process::id() as i32);
        let mut run = Judging::new();
        assert!(matches!(
            judge(&me, &hup, &at, &mut run),
            Resolved::Processes(_)
        ));
        // Judged once: asked again after the time is spent, the verdict is the one judged.
        run.until = Instant::now();
        assert!(matches!(
            judge(&me, &hup, &at, &mut run),
            Resolved::Processes(_)
        ));
        let usr2 = crate::signal::names::parse("USR2").unwrap();
        let Resolved::CannotTell(why) = judge(&me, &usr2, &at, &mut run) else {
            panic!("judged past the time");
        };
        assert!(why.contains("at most 30s"), "{why}");
    }
}
