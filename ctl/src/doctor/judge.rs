//! What a signal would do to the processes a line aims it at: the target resolved as the shell
//! would (a pid file by `ctl signal`'s trust rule, read under the root; a name or pattern
//! against `/proc/PID/comm`; `$MAINPID` from systemd), each process judged as `ctl signal`
//! judges it ([`crate::signal::inspect`]: nothing is sent), and whether it serves a control
//! socket (it holds the lock of one, as `ctl` finds a running daemon: [`crate::running`]).

use super::files::Root;
use super::shell::Target;
use crate::pidfile::PidFileError;
use crate::signal::{self, Handled, Refusal, Sig};
use control_api::socket::implied_name;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most processes judged for one line (a pattern may match many).
const MAX_PROCESSES: usize = 64;

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
    NotRunning,
}

impl Verdict {
    /// Whether the line would kill (or stop) its target: `ctl doctor` exits 1.
    pub fn dangerous(self) -> bool {
        matches!(self, Verdict::WouldKill | Verdict::WouldStop)
    }
}

/// One process judged.
pub struct Judged {
    pub pid: i32,
    pub name: String,
    pub uid: u32,
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
    CannotTell(String),
}

/// Where a line is, for what needs it: the root (pid files), the unit (`$MAINPID`).
pub struct Place<'a> {
    pub root: &'a Root,
    pub unit: Option<&'a str>,
}

/// Resolves `target` and judges `sig` for each of its processes.
pub fn judge(target: &Target, sig: &Sig, at: &Place) -> Resolved {
    let listed = match target {
        Target::PidFile(path) => return pidfile(path, sig, at.root),
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
    let judged: Vec<Judged> = pids
        .into_iter()
        .take(MAX_PROCESSES)
        .filter_map(|pid| process(pid, sig))
        .collect();
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

fn pidfile(path: &Path, sig: &Sig, root: &Root) -> Resolved {
    let shown = root.shown(path);
    match crate::pidfile::read_in(&root.path, path) {
        Ok(pid) => match process(pid, sig) {
            Some(judged) => Resolved::Processes(vec![judged]),
            None => Resolved::NotRunning(format!(
                "the pid file {} names pid {pid}, which is not running (a stale pid file: \
                 the daemon died, or was stopped without removing it)",
                shown.display()
            )),
        },
        Err(PidFileError::Missing { .. }) => {
            Resolved::NotRunning(format!("no pid file at {}", shown.display()))
        }
        Err(e @ PidFileError::Untrusted { .. }) => Resolved::Untrusted(e.to_string()),
        Err(e) => Resolved::CannotTell(e.to_string()),
    }
}

/// Judges one process, or `None` when it is gone.
fn process(pid: i32, sig: &Sig) -> Option<Judged> {
    let p = signal::inspect(pid, None, sig, false).ok()??;
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
    Some(Judged {
        pid,
        name: p.who.name.clone(),
        uid: p.who.uid,
        verdict,
        why: p.verdict,
        socket,
    })
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
