//! `ctl doctor [--root DIR]`: find, on this host, the lines that would kill a daemon.
//!
//! # Layout
//!
//! - [`files`]: configuration files read under the root, bounded, links kept inside it;
//! - [`logrotate`], [`systemd`], [`cron`]: which files each reads, as it reads them, and the
//!   script lines in them;
//! - [`shell`]: a line split into words as the shell would, and the kill commands in it with
//!   their signal and target, without running anything;
//! - [`judge`]: each target resolved and its processes judged as `ctl signal` judges them.
//!
//! Nothing read is ever run: not a script, not a command substitution. The only program
//! `ctl doctor` starts is `systemctl show` for a unit's `$MAINPID`, without `--root`.

mod cron;
mod error;
mod files;
mod judge;
mod logrotate;
mod shell;
mod systemd;
mod users;

pub use error::DoctorError;

use crate::output::clean;
use crate::signal::Sig;
use clap::Args;
use control_api::text::escape_path;
use judge::{Judged, Place, Resolved, Verdict};
use serde_json::{json, Value};
use shell::{Kill, Scope, Syntax, Target};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The most targets judged on one line ([`shell::MAX_TARGETS`]), in one file, and the most
/// findings of one run: past them, `ctl doctor` says where it stopped reading, once.
const LINE_TARGETS: usize = shell::MAX_TARGETS;
const FILE_TARGETS: usize = 256;
const RUN_FINDINGS: usize = 1024;

/// The longest line (or command) shown in a finding; a longer one is cut, saying its length.
const MAX_SHOWN: usize = 1024;

/// The long help of `ctl doctor`.
pub const LONG_ABOUT: &str = "\
Find the lines in logrotate's, cron's and systemd's configuration that would kill a daemon

ctl reads /etc/logrotate.conf and what it includes (the prerotate, postrotate, firstaction, \
lastaction and preremove scripts), /etc/crontab, /etc/cron.d/* and \
/var/spool/cron/crontabs/*, and the ExecReload= and ExecStop= lines of the service units in \
/etc/systemd/system, /run/systemd/system, /lib/systemd/system and /usr/lib/systemd/system \
(with their drop-ins), as logrotate, cron and systemd read them. In them it finds kill, \
pkill, killall and start-stop-daemon --stop sending a signal other than TERM, KILL or INT, \
resolves each target as the shell would (a pid file, by ctl signal's trust rule; a name; \
$MAINPID), without running anything, and judges each process as ctl signal does, sending \
nothing.

Each finding names the file and line and a verdict: would_kill (the process does not catch \
the signal, whose default action terminates it), would_stop, blocked, ignored, \
control_socket (a daemon serving a control socket that ignores the signal: use ctl rotate \
NAME), bridged (a daemon serving a control socket that catches it: the control server's \
SIGHUP bridge, or its own handler; replace the line with ctl rotate NAME), handled, \
not_permitted (a cron line run as a user, aimed at a process of another user, which that user \
may not signal, or naming a pid file that user may not read), not_running, untrusted (a pid file another user could have written), cannot_tell \
(shell that is not evaluated; a process that could not be read; past the 30s judging takes at \
most). Exit 1 when a line would kill or stop its target, 0 otherwise.

At most 64 targets are judged on one line, 256 in one file and 1024 in one run; past them \
ctl says where it stopped reading (\"stopped reading FILE:LINE: ...\", and \"stopped\" in \
--json).

--root DIR reads every configuration file, and the pid files and includes they name, under \
DIR, as in a chroot (links do not leave DIR); processes are this host's.";

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Read the configuration under DIR instead of / (DIR/etc/logrotate.conf, ...): for tests
    /// and containers; processes are still this host's
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub root: Option<PathBuf>,
}

impl DoctorArgs {
    /// The envelope's `target`: the root.
    pub fn target(&self) -> String {
        self.root
            .as_deref()
            .unwrap_or(std::path::Path::new("/"))
            .display()
            .to_string()
    }
}

/// Which program reads the line, as `--json` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Logrotate,
    Systemd,
    Cron,
}

/// Lines run together: one logrotate script, one cron command, one unit's `Exec` line.
pub struct Script {
    source: Source,
    /// The file, as read (under the root).
    file: PathBuf,
    /// Each line's number and text.
    lines: Vec<(usize, String)>,
    syntax: Syntax,
    /// The unit, for `$MAINPID`.
    unit: Option<String>,
    /// The user the lines run as when it is not root: a user's crontab's owner, a system
    /// crontab line's user.
    sender: Option<crate::pidfile::Reader>,
    /// What a `ctl` operation would do instead: `rotate` (logrotate, cron), `reload`, `drain`.
    purpose: &'static str,
    /// The line as shown, when it is more than its command (`ExecReload=...`, a cron line).
    shown_text: Option<String>,
}

impl Script {
    fn new(source: Source, file: PathBuf, syntax: Syntax) -> Script {
        Script {
            source,
            file,
            lines: Vec::new(),
            syntax,
            unit: None,
            sender: None,
            purpose: "rotate",
            shown_text: None,
        }
    }
}

/// What the configuration holds: its scripts, the files read, and those left out.
#[derive(Default)]
pub struct Found {
    scripts: Vec<Script>,
    read: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

impl Found {
    fn skip(&mut self, file: PathBuf, why: String) {
        self.skipped.push((file, why));
    }
}

/// Why `who` (logrotate, cron) run as root ignores a file: writable by its group or others,
/// or owned by another user than root (or ctl's own user, when not run as root).
fn ignored_as_root(stat: &rustix::fs::Stat, who: &str) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    if stat.st_mode & 0o022 != 0 {
        return Some(format!(
            "{who} ignores it: it is writable by its group or others (mode {:04o})",
            stat.st_mode & 0o7777
        ));
    }
    if stat.st_uid != 0 && stat.st_uid != me {
        return Some(format!(
            "{who} ignores it: it is owned by uid {}, not root",
            stat.st_uid
        ));
    }
    None
}

/// Where reading stopped, and why: a budget was spent.
struct Stopped {
    file: PathBuf,
    line: usize,
    why: String,
}

/// What is left to judge: targets per file, findings per run; where reading stopped.
#[derive(Default)]
struct Budget<'a> {
    per_file: HashMap<&'a Path, usize>,
    findings: usize,
    /// The files whose budget is spent (and said so).
    spent: HashSet<&'a Path>,
    stopped: Vec<Stopped>,
}

impl<'a> Budget<'a> {
    /// Whether the run's findings are all spent.
    fn run_spent(&self) -> bool {
        self.findings >= RUN_FINDINGS
    }

    /// How many of `wanted` targets on line `line` of `script` may be judged; says where it
    /// stopped when not all.
    fn take(&mut self, script: &'a Script, line: usize, wanted: usize) -> usize {
        let file = script.file.as_path();
        let used = self.per_file.get(file).copied().unwrap_or(0);
        let for_file = FILE_TARGETS.saturating_sub(used);
        let for_run = RUN_FINDINGS.saturating_sub(self.findings);
        let granted = wanted.min(LINE_TARGETS).min(for_file).min(for_run);
        if granted < wanted {
            let why = if granted == for_run {
                format!(
                    "ctl doctor judges at most {RUN_FINDINGS} targets in one run: it stopped \
                     reading here, and the rest of this file and the files after it were not \
                     judged"
                )
            } else if granted == for_file {
                format!(
                    "ctl doctor judges at most {FILE_TARGETS} targets in one file: it stopped \
                     reading this file here"
                )
            } else {
                format!(
                    "the line has more than {LINE_TARGETS} targets: the first {LINE_TARGETS} \
                     were judged, the rest of the line was not read"
                )
            };
            if granted == for_file || granted == for_run {
                self.spent.insert(file);
            }
            self.stopped.push(Stopped {
                file: script.file.clone(),
                line,
                why,
            });
        }
        *self.per_file.entry(file).or_default() += granted;
        self.findings += granted;
        granted
    }
}

/// `text`, or its first [`MAX_SHOWN`] bytes and its length when longer.
fn shortened(text: &str) -> Rc<str> {
    if text.len() <= MAX_SHOWN {
        return text.into();
    }
    let mut end = MAX_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len()).into()
}

/// One kill command found, and what it would do.
struct Finding<'a> {
    script: &'a Script,
    line: usize,
    /// The line as shown: shared by the findings of one line.
    text: Rc<str>,
    kill: Kill,
    resolved: Resolved,
    verdict: Verdict,
}

/// Runs `ctl doctor`: the `--json` result, the lines for people, and whether a line would
/// kill its target.
pub fn run(args: &DoctorArgs) -> Result<(Value, String, bool), DoctorError> {
    let root = files::Root::open(args.root.as_deref()).map_err(|source| DoctorError::Root {
        path: args.root.clone().unwrap_or_else(|| "/".into()),
        source,
    })?;
    let mut found = Found::default();
    logrotate::read(&root, &mut found);
    cron::read(&root, &mut found);
    systemd::read(&root, &mut found);
    let mut findings = Vec::new();
    let mut judging = judge::Judging::new();
    let mut budget = Budget::default();
    for script in &found.scripts {
        if budget.run_spent() {
            break;
        }
        if !budget.spent.contains(script.file.as_path()) {
            findings.extend(examine(script, &root, &mut judging, &mut budget));
        }
    }
    let dangerous = findings.iter().any(|f| f.verdict.dangerous());
    let doc = json!({
        "root": root.path.display().to_string(),
        "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        "read": found.read.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "skipped": found.skipped.iter().map(|(p, why)| json!({"file": p.display().to_string(), "why": why})).collect::<Vec<_>>(),
        "stopped": budget.stopped.iter().map(|s| json!({"file": s.file.display().to_string(), "line": s.line, "why": s.why})).collect::<Vec<_>>(),
    });
    Ok((doc, human(&findings, &found, &budget.stopped), dangerous))
}

/// The kill commands of one script, line by line (a line ending in `\` joined to the next),
/// within `budget`.
fn examine<'a>(
    script: &'a Script,
    root: &files::Root,
    judging: &mut judge::Judging,
    budget: &mut Budget<'a>,
) -> Vec<Finding<'a>> {
    let mut scope = Scope::new(script.unit.is_some());
    let place = Place {
        root,
        unit: script.unit.as_deref(),
        sender: script.sender.as_ref(),
    };
    let mut out = Vec::new();
    let mut lines = script.lines.iter().peekable();
    while let Some((number, first)) = lines.next() {
        let mut text = first.clone();
        while text.ends_with('\\') && lines.peek().is_some() {
            text.pop();
            text.push('\n');
            text.push_str(&lines.next().expect("peeked").1);
        }
        let mut kills = shell::kills(&text, script.syntax, &mut scope);
        if kills.is_empty() {
            continue;
        }
        let wanted = kills.len();
        kills.truncate(budget.take(script, *number, wanted));
        let shown = shortened(script.shown_text.as_deref().unwrap_or(text.trim()));
        for mut kill in kills {
            kill.text = shortened(&kill.text);
            let resolved = match &kill.signal {
                Ok(sig) => judge::judge(&kill.target, sig, &place, judging),
                Err(s) => Resolved::CannotTell(format!("{s:?} is not a signal ctl knows")),
            };
            let verdict = verdict(&resolved);
            out.push(Finding {
                script,
                line: *number,
                text: shown.clone(),
                kill,
                resolved,
                verdict,
            });
        }
        if budget.spent.contains(script.file.as_path()) || budget.run_spent() {
            break;
        }
    }
    out
}

fn verdict(resolved: &Resolved) -> Verdict {
    match resolved {
        Resolved::Processes(p) => p
            .iter()
            .map(|j| j.verdict)
            .min()
            .unwrap_or(Verdict::NotRunning),
        Resolved::NotRunning(_) => Verdict::NotRunning,
        Resolved::Untrusted(_) => Verdict::Untrusted,
        Resolved::NotPermitted(_) => Verdict::NotPermitted,
        Resolved::CannotTell(_) => Verdict::CannotTell,
    }
}

fn signal_text(kill: &Kill) -> String {
    match &kill.signal {
        Ok(sig) => sig.to_string(),
        Err(text) => text.clone(),
    }
}

/// What the finding says, for people and in `message`: raw (escaped where shown).
fn message(f: &Finding) -> String {
    let sig = signal_text(&f.kill);
    let processes = match &f.resolved {
        Resolved::NotRunning(why) => return format!("target not running: {why}"),
        Resolved::Untrusted(why) => return format!("cannot tell: {why}"),
        Resolved::NotPermitted(why) => return why.clone(),
        Resolved::CannotTell(why) => return format!("cannot tell ({why})"),
        Resolved::Processes(p) => p,
    };
    let worst: Vec<&Judged> = processes
        .iter()
        .filter(|j| j.verdict == f.verdict)
        .collect();
    let who = who(&worst);
    let socket = worst
        .iter()
        .find_map(|j| j.socket.as_ref())
        .map(|(path, _)| path.display().to_string())
        .unwrap_or_default();
    match f.verdict {
        Verdict::WouldKill => {
            let what = f.kill.signal.as_ref().map_or("terminate", Sig::kills_how);
            format!("would kill {who}: {sig} not caught (its default action is to {what})")
        }
        Verdict::WouldStop => format!("would stop {who}: {sig} not caught"),
        Verdict::Blocked => format!(
            "{who} blocks {sig} in every thread and reads it from no signalfd: it would stay \
             pending and do nothing now"
        ),
        Verdict::Ignored => format!("{who} ignores {sig}: this line does nothing"),
        Verdict::ControlSocket => format!(
            "a daemon that serves a control socket ({socket}): {who} does not act on {sig}, so \
             this line does nothing"
        ),
        Verdict::Bridged => format!(
            "handled (by the control server's SIGHUP bridge, or the daemon's own handler): \
             {who} catches {sig} and serves a control socket ({socket})"
        ),
        Verdict::Handled => format!("handled: {who} catches {sig}"),
        Verdict::NotPermitted => format!(
            "the line runs as uid {}, who may not signal {who} (uid {}): kill would fail, \
             nothing is sent",
            f.script.sender.as_ref().map_or(0, |s| s.uid),
            worst.first().map_or(0, |j| j.uid)
        ),
        _ => format!("{who}: {sig}"),
    }
}

/// "logdeviced (pid 12)", "nginx (pids 12, 13)".
fn who(judged: &[&Judged]) -> String {
    let Some(first) = judged.first() else {
        return String::new();
    };
    let pids: Vec<String> = judged.iter().map(|j| j.pid.to_string()).collect();
    let s = if pids.len() == 1 { "" } else { "s" };
    format!("{} (pid{s} {})", first.name, pids.join(", "))
}

/// What to do about it, or `None`.
fn advice(f: &Finding) -> Option<String> {
    let sig = f.kill.signal.as_ref().ok()?.name;
    let op = f.script.purpose;
    if let Resolved::Processes(p) = &f.resolved {
        if let Some((_, name)) = p.iter().find_map(|j| j.socket.as_ref()) {
            let verb = if f.verdict == Verdict::Bridged {
                "replace with"
            } else {
                "use"
            };
            return Some(format!("{verb} `ctl {op} {name}`"));
        }
    }
    if !matches!(
        f.verdict,
        Verdict::WouldKill | Verdict::WouldStop | Verdict::Handled | Verdict::Blocked
    ) {
        return None;
    }
    let how = match &f.kill.target {
        Target::PidFile(path, _) => match &f.resolved {
            // The name its process has now, so that a pid reused after the daemon died is told
            // apart; only a plain word, since the line is for pasting into a shell as root.
            Resolved::Processes(p) if p.len() == 1 && is_plain_word(&p[0].name) => {
                format!("--pidfile {} --name {}", path.display(), p[0].name)
            }
            _ => format!("--pidfile {}", path.display()),
        },
        Target::Name(name) => format!("--name {name}"),
        Target::Pattern(p) if !p.source.contains(['^', '$', '.', '\\']) => {
            format!("--name {}", p.source)
        }
        _ => "--pidfile PIDFILE".to_owned(),
    };
    let (verify, proves) = match op {
        "rotate" => (" --verify-reopen LOG...", ", and proves the reopen"),
        _ => ("", ""),
    };
    Some(format!(
        "`ctl signal {sig} {how}{verify}` sends it only while the process handles it{proves}"
    ))
}

/// Whether `name` reads the same to a shell (and to ctl) as written: letters, digits and
/// `-_.+@:`, and no leading `-`.
fn is_plain_word(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+@:".contains(&b))
}

fn finding_json(f: &Finding) -> Value {
    let (pids, processes): (Vec<i32>, Vec<Value>) = match &f.resolved {
        Resolved::Processes(p) => (
            p.iter().map(|j| j.pid).collect(),
            p.iter().map(Judged::json).collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    json!({
        "file": f.script.file.display().to_string(),
        "line": f.line,
        "source": f.script.source,
        "unit": f.script.unit,
        "text": f.text,
        "command": &*f.kill.text,
        "tool": f.kill.tool,
        "signal": signal_text(&f.kill),
        "target": f.kill.target.json(),
        "pids": pids,
        "processes": processes,
        "verdict": f.verdict,
        "message": message(f),
        "advice": advice(f),
    })
}

/// The report for people: each finding with its file, line, text and advice, escaped; then a
/// summary.
fn human(findings: &[Finding], found: &Found, stopped: &[Stopped]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}: {}\n    {}\n",
            escape_path(&f.script.file),
            f.line,
            clean(&message(f)),
            clean(&f.text)
        ));
        if let Some(advice) = advice(f) {
            out.push_str(&format!("    advice: {}\n", clean(&advice)));
        }
    }
    for (file, why) in &found.skipped {
        out.push_str(&format!("skipped {}: {}\n", escape_path(file), clean(why)));
    }
    for s in stopped {
        out.push_str(&format!(
            "stopped reading {}:{}: {}\n",
            escape_path(&s.file),
            s.line,
            clean(&s.why)
        ));
    }
    let dangerous = findings.iter().filter(|f| f.verdict.dangerous()).count();
    let files = found.read.len();
    out.push_str(&match (findings.len(), dangerous) {
        (0, _) => {
            format!("no line in the {files} files read sends a signal other than TERM, KILL or INT")
        }
        (n, 0) => {
            format!("{n} signal(s) found in the {files} files read; none would kill its target")
        }
        (n, d) => format!(
            "{n} signal(s) found in the {files} files read; {d} would kill (or stop) its target"
        ),
    });
    out
}
