//! Signals by name and number, what each does by default, and the judgement of whether a
//! process handles one.

use crate::procfs::{bit, SigSet};
use rustix::process::Signal;
use serde::Serialize;
use std::fmt;

/// What the kernel does with a signal that has no handler and is not ignored (signal(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Terminate,
    Core,
    Ignore,
    Stop,
    Continue,
}

/// A signal `ctl signal` can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sig {
    /// Its name without `SIG`, as `kill -l` shows it.
    pub name: &'static str,
    pub signal: Signal,
    pub default: Action,
}

impl Sig {
    pub fn number(&self) -> i32 {
        self.signal.as_raw()
    }

    /// How its default action kills a process, for the messages of a signal that kills.
    pub fn kills_how(&self) -> &'static str {
        match self.default {
            Core => "terminate and dump core",
            _ => "terminate",
        }
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name)
    }
}

const fn sig(name: &'static str, signal: Signal, default: Action) -> Sig {
    Sig {
        name,
        signal,
        default,
    }
}

use Action::{Continue, Core, Ignore, Stop, Terminate};

/// The standard signals of Linux (1 to 31), with their default actions.
pub const SIGNALS: &[Sig] = &[
    sig("HUP", Signal::HUP, Terminate),
    sig("INT", Signal::INT, Terminate),
    sig("QUIT", Signal::QUIT, Core),
    sig("ILL", Signal::ILL, Core),
    sig("TRAP", Signal::TRAP, Core),
    sig("ABRT", Signal::ABORT, Core),
    sig("BUS", Signal::BUS, Core),
    sig("FPE", Signal::FPE, Core),
    sig("KILL", Signal::KILL, Terminate),
    sig("USR1", Signal::USR1, Terminate),
    sig("SEGV", Signal::SEGV, Core),
    sig("USR2", Signal::USR2, Terminate),
    sig("PIPE", Signal::PIPE, Terminate),
    sig("ALRM", Signal::ALARM, Terminate),
    sig("TERM", Signal::TERM, Terminate),
    sig("STKFLT", Signal::STKFLT, Terminate),
    sig("CHLD", Signal::CHILD, Ignore),
    sig("CONT", Signal::CONT, Continue),
    sig("STOP", Signal::STOP, Stop),
    sig("TSTP", Signal::TSTP, Stop),
    sig("TTIN", Signal::TTIN, Stop),
    sig("TTOU", Signal::TTOU, Stop),
    sig("URG", Signal::URG, Ignore),
    sig("XCPU", Signal::XCPU, Core),
    sig("XFSZ", Signal::XFSZ, Core),
    sig("VTALRM", Signal::VTALARM, Terminate),
    sig("PROF", Signal::PROF, Terminate),
    sig("WINCH", Signal::WINCH, Ignore),
    sig("IO", Signal::IO, Terminate),
    sig("PWR", Signal::POWER, Terminate),
    sig("SYS", Signal::SYS, Core),
];

/// Other names `kill` takes for the same signals.
const ALIASES: &[(&str, &str)] = &[("IOT", "ABRT"), ("POLL", "IO"), ("CLD", "CHLD")];

/// Parses `HUP`, `SIGHUP`, `hup` or `1` (clap's value parser for SIGNAL).
pub fn parse(text: &str) -> Result<Sig, String> {
    if let Ok(n) = text.parse::<i32>() {
        return SIGNALS
            .iter()
            .find(|s| s.number() == n)
            .copied()
            .ok_or_else(|| match n {
                0 => "signal 0 sends nothing (it only tests that a process exists)".to_owned(),
                32..=64 => format!(
                    "signal {n} is a real-time signal, which ctl signal does not send (their \
                     numbers depend on the C library)"
                ),
                _ => format!("no signal has the number {n} (1 to 31)"),
            });
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| real);
    SIGNALS
        .iter()
        .find(|s| s.name == name)
        .copied()
        .ok_or_else(|| {
            format!("{text:?} is no signal name; give one as `kill -l` lists them (HUP, USR1, TERM, ...) or its number")
        })
}

/// How a process that gets the signal handles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handled {
    /// A handler is installed (`SigCgt`).
    Handler,
    /// Blocked in every thread and read from a signalfd.
    Signalfd,
    /// SIGCONT without a handler: its default action, continuing a stopped process, is what
    /// it is sent for.
    Continues,
}

/// Why a signal is not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Not caught, and its default action terminates (or dumps core): it would kill it.
    WouldKill,
    /// Not caught, and its default action stops the process.
    WouldStop,
    /// Set to be ignored: it would do nothing.
    Ignored,
    /// Not caught, and ignored by default (SIGCHLD, SIGURG, SIGWINCH): it would do nothing.
    IgnoredByDefault,
    /// Blocked in every thread, and no signalfd reads it: it would stay pending.
    Blocked,
    /// The process is stopped (by SIGSTOP, its terminal or a debugger): its handler would run
    /// only once it is continued.
    Stopped,
}

/// What `ctl signal` reads of a process to judge a signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Masks {
    pub caught: SigSet,
    pub ignored: SigSet,
    /// Blocked in every thread.
    pub blocked: SigSet,
    /// Read by a signalfd.
    pub signalfd: SigSet,
    /// Stopped or traced (`State: T` or `t`).
    pub stopped: bool,
}

/// Whether a process with `masks` handles `sig`, or why sending it is refused.
pub fn judge(sig: &Sig, masks: &Masks) -> Result<Handled, Refusal> {
    match judge_running(sig, masks) {
        // Sent, it would be handled, but not now: the daemon answers nothing while stopped.
        Ok(Handled::Handler | Handled::Signalfd) if masks.stopped => Err(Refusal::Stopped),
        verdict => verdict,
    }
}

/// [`judge`] for a process that runs.
fn judge_running(sig: &Sig, masks: &Masks) -> Result<Handled, Refusal> {
    let b = bit(sig.number());
    // Neither can be caught, blocked or ignored.
    if sig.signal == Signal::KILL {
        return Err(Refusal::WouldKill);
    }
    if sig.signal == Signal::STOP {
        return Err(Refusal::WouldStop);
    }
    if masks.ignored & b != 0 {
        return Err(Refusal::Ignored);
    }
    if masks.blocked & b != 0 {
        return if masks.signalfd & b != 0 {
            Ok(Handled::Signalfd)
        } else {
            Err(Refusal::Blocked)
        };
    }
    if masks.caught & b != 0 {
        return Ok(Handled::Handler);
    }
    match sig.default {
        Terminate | Core => Err(Refusal::WouldKill),
        Stop => Err(Refusal::WouldStop),
        Ignore => Err(Refusal::IgnoredByDefault),
        Continue => Ok(Handled::Continues),
    }
}

impl Refusal {
    /// What sending `sig` would do, for the message.
    pub fn text(&self, sig: &Sig) -> String {
        match self {
            Refusal::WouldKill if sig.signal == Signal::KILL => {
                "SIGKILL would kill it: no handler can catch it".to_owned()
            }
            Refusal::WouldKill => format!(
                "{sig} would kill it: no handler (its default action is to {})",
                sig.kills_how()
            ),
            Refusal::WouldStop => format!("{sig} would stop it: no handler"),
            Refusal::Ignored => format!("it ignores {sig}: sending it would do nothing"),
            Refusal::IgnoredByDefault => {
                format!(
                    "{sig} would do nothing: no handler, and its default action is to ignore it"
                )
            }
            Refusal::Blocked => format!(
                "it blocks {sig} in every thread (for the 100ms it was looked at) and reads it \
                 from no signalfd: it would stay pending and do nothing now"
            ),
            Refusal::Stopped => format!(
                "it is stopped (SIGSTOP, its terminal or a debugger): {sig} would stay pending \
                 until it is continued, and do nothing now"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse_as_kill_takes_them() {
        for text in ["HUP", "SIGHUP", "hup", "SigHup", "1"] {
            assert_eq!(parse(text).unwrap().signal, Signal::HUP, "{text}");
        }
        assert_eq!(parse("USR1").unwrap().number(), 10);
        assert_eq!(parse("IOT").unwrap().signal, Signal::ABORT);
        assert_eq!(parse("15").unwrap().to_string(), "SIGTERM");
        assert!(parse("0").unwrap_err().contains("sends nothing"));
        assert!(parse("34").unwrap_err().contains("real-time"));
        for bad in ["99", "-1", "HUPP", "", "SIG"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // The table holds every standard signal once, by its own number.
        for n in 1..=31 {
            assert_eq!(SIGNALS.iter().filter(|s| s.number() == n).count(), 1, "{n}");
        }
    }

    #[test]
    fn a_signal_is_sent_only_where_it_is_handled() {
        let b = bit(1);
        let masks = |caught, ignored, blocked, signalfd, stopped| Masks {
            caught,
            ignored,
            blocked,
            signalfd,
            stopped,
        };
        let (none, all) = (Masks::default(), masks(!0, 0, 0, 0, false));
        // caught, ignored, blocked (in every thread), read by a signalfd, stopped
        for (sig, masks, verdict) in [
            ("HUP", masks(b, 0, 0, 0, false), Ok(Handled::Handler)),
            ("HUP", none, Err(Refusal::WouldKill)),
            ("HUP", masks(b, b, 0, 0, false), Err(Refusal::Ignored)),
            ("HUP", masks(b, 0, b, 0, false), Err(Refusal::Blocked)),
            ("HUP", masks(b, 0, b, b, false), Ok(Handled::Signalfd)),
            ("KILL", all, Err(Refusal::WouldKill)),
            ("STOP", all, Err(Refusal::WouldStop)),
            ("TSTP", none, Err(Refusal::WouldStop)),
            ("WINCH", none, Err(Refusal::IgnoredByDefault)),
            ("CONT", none, Ok(Handled::Continues)),
            // A stopped process would handle it only once continued; SIGCONT is what continues
            // it, and a signal that would kill it still says so.
            ("HUP", masks(b, 0, 0, 0, true), Err(Refusal::Stopped)),
            ("HUP", masks(b, 0, b, b, true), Err(Refusal::Stopped)),
            ("HUP", masks(0, 0, 0, 0, true), Err(Refusal::WouldKill)),
            ("CONT", masks(0, 0, 0, 0, true), Ok(Handled::Continues)),
        ] {
            assert_eq!(
                judge(&parse(sig).unwrap(), &masks),
                verdict,
                "{sig} {masks:?}"
            );
        }
        assert!(Refusal::WouldKill
            .text(&parse("HUP").unwrap())
            .contains("would kill it: no handler"));
    }
}
