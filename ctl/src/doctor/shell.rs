//! Reading a shell one-liner (a logrotate script line, a cron command, a unit's `Exec` line)
//! the way the shell would split it, without running anything, and finding in it the commands
//! that send a signal: `kill`, `pkill`, `killall`, `start-stop-daemon --stop --signal`, also
//! behind `sh -c '...'`, `xargs`, `exec`, `env`, `nohup` or a condition (`[ -f F ] && ...`).
//!
//! Words are split as the shell splits them: single and double quotes, backslashes, `;`,
//! `&&`, `||`, `|`, `&`, parentheses, redirections (their targets dropped, `< FILE` kept), `#`
//! comments. What the shell would expand is kept as parts: `$(...)` and backticks (their text,
//! read again as a command: `cat FILE`, `< FILE`, `head -1 FILE`, `pidof NAME`, `pgrep
//! PATTERN`), `$NAME` (a variable set earlier in the same script to a literal is used;
//! `$MAINPID` in a unit is systemd's), and anything else (`$((...))`, `${X:-y}`, globs, `$1`)
//! is a reason to say "cannot tell".

use crate::signal::names::{self, Sig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

/// How deep `sh -c '...'` and `$(...)` are read inside one another.
const MAX_DEPTH: usize = 4;

/// The most targets judged on one line (`kill -HUP 1 2 3 ...`): one command yields at most one
/// more, so that the reader of the line knows it went past.
pub const MAX_TARGETS: usize = 64;

/// Whose syntax a line has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// `/bin/sh`: logrotate scripts, cron commands.
    Shell,
    /// A unit's `Exec*=` line: quotes and `$NAME` as systemd reads them, no command
    /// substitution, `%` specifiers, and a lone `;` between commands.
    Systemd,
}

/// One piece of a word.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// `$(...)` or `` `...` ``: the command's text.
    Subst(String),
    /// `$NAME` or `${NAME}`.
    Var(String),
    /// Something the shell would expand that is not read here, as written.
    Other(String),
}

/// One word, as its parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Word {
    parts: Vec<Part>,
}

impl Word {
    fn push_char(&mut self, c: char) {
        match self.parts.last_mut() {
            Some(Part::Lit(s)) => s.push(c),
            _ => self.parts.push(Part::Lit(c.to_string())),
        }
    }

    /// Its text if it is literal throughout.
    fn literal(&self) -> Option<String> {
        self.expanded(|_| None)
    }

    /// Its text with each variable's value from `var`; `None` when it holds anything else the
    /// shell would expand, or a variable `var` has no value for.
    fn expanded<'a>(&'a self, var: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Lit(s) => Some(s.as_str()),
                Part::Var(v) => var(v),
                _ => None,
            })
            .collect()
    }

    /// Its text with what the shell would expand written as it was.
    fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) | Part::Other(s) => s.clone(),
                Part::Subst(s) => format!("$({s})"),
                Part::Var(s) => format!("${s}"),
            })
            .collect()
    }
}

/// One simple command: its words and the files its input is redirected from.
#[derive(Debug, Default)]
struct Command {
    words: Vec<Word>,
    inputs: Vec<Word>,
}

/// Splits `text` into simple commands.
fn commands(text: &str, syntax: Syntax) -> Vec<Command> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        at: 0,
        syntax,
        done: Vec::new(),
        current: Command::default(),
        word: None,
        redirect: None,
    };
    lexer.run();
    lexer.done
}

/// Where the next word goes after a redirection operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Redirect {
    Input,
    Dropped,
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    syntax: Syntax,
    done: Vec<Command>,
    current: Command,
    word: Option<Word>,
    redirect: Option<Redirect>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn word(&mut self) -> &mut Word {
        self.word.get_or_insert_with(Word::default)
    }

    fn push(&mut self, part: Part) {
        self.word().parts.push(part);
    }

    fn end_word(&mut self) {
        let Some(word) = self.word.take() else { return };
        match self.redirect.take() {
            Some(Redirect::Input) => self.current.inputs.push(word),
            Some(Redirect::Dropped) => {}
            None => self.current.words.push(word),
        }
    }

    fn end_command(&mut self) {
        self.end_word();
        let command = std::mem::take(&mut self.current);
        if !command.words.is_empty() || !command.inputs.is_empty() {
            self.done.push(command);
        }
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match (c, self.syntax) {
                (' ' | '\t', _) => self.end_word(),
                ('\n', _) => self.end_command(),
                ('#', Syntax::Shell) if self.word.is_none() => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                }
                (';' | '(' | ')', Syntax::Shell) => self.end_command(),
                ('|', Syntax::Shell) => {
                    if matches!(self.peek(0), Some('|' | '&')) {
                        self.at += 1;
                    }
                    self.end_command();
                }
                ('&', Syntax::Shell) if self.peek(0) == Some('>') => self.redirection(c),
                ('&', Syntax::Shell) => {
                    if self.peek(0) == Some('&') {
                        self.at += 1;
                    }
                    self.end_command();
                }
                ('<' | '>', Syntax::Shell) => self.redirection(c),
                ('\'' | '"', _) => self.quoted(c),
                ('\\', _) => match self.peek(0) {
                    Some('\n') => self.at += 1,
                    Some(next) => {
                        self.at += 1;
                        self.word().push_char(next);
                    }
                    None => {}
                },
                ('$', _) => self.dollar(),
                ('`', Syntax::Shell) => self.backquoted(),
                ('%', Syntax::Systemd) => self.specifier(),
                ('*' | '?' | '[', Syntax::Shell) => self.push(Part::Other(c.into())),
                _ => self.word().push_char(c),
            }
        }
        self.end_command();
    }

    /// `<`, `>`, `>>`, `2>&1`, `&>`, `<<`: the word after it is a file (or a descriptor),
    /// not an argument; only an input file is kept.
    fn redirection(&mut self, first: char) {
        // A descriptor number right before it (`2>`) is no argument.
        let digits = self
            .word
            .as_ref()
            .and_then(Word::literal)
            .is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
        if digits {
            self.word = None;
        } else {
            self.end_word();
        }
        while matches!(self.peek(0), Some('<' | '>' | '&' | '|' | '-')) {
            self.at += 1;
        }
        self.redirect = Some(if first == '<' && self.chars[self.at - 1] == '<' {
            Redirect::Input
        } else {
            Redirect::Dropped
        });
    }

    /// After an opening quote, up to the closing one: single quotes keep everything as it is;
    /// inside double quotes `\`, `$`, `` ` `` (and `%` in a unit) are still read.
    fn quoted(&mut self, quote: char) {
        self.push(Part::Lit(String::new()));
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                _ if c == quote => return,
                _ if quote == '\'' => self.word().push_char(c),
                '\\' => match self.peek(0) {
                    Some(next @ ('$' | '`' | '"' | '\\')) => {
                        self.at += 1;
                        self.word().push_char(next);
                    }
                    Some('\n') => self.at += 1,
                    _ => self.word().push_char('\\'),
                },
                '$' => self.dollar(),
                '`' if self.syntax == Syntax::Shell => self.backquoted(),
                '%' if self.syntax == Syntax::Systemd => self.specifier(),
                _ => self.word().push_char(c),
            }
        }
        self.push(Part::Other("an unterminated quote".into()));
    }

    /// After a `$`.
    fn dollar(&mut self) {
        let shell = self.syntax == Syntax::Shell;
        match self.peek(0) {
            Some('(') if shell && self.peek(1) == Some('(') => {
                let inner = self.balanced();
                self.push(Part::Other(format!("$({inner})")));
            }
            Some('(') if shell => {
                let inner = self.balanced();
                self.push(Part::Subst(inner));
            }
            Some('{') => {
                self.at += 1;
                let mut inner = String::new();
                while let Some(c) = self.peek(0) {
                    self.at += 1;
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let part = if is_name(&inner) {
                    Part::Var(inner)
                } else {
                    Part::Other(format!("${{{inner}}}"))
                };
                self.push(part);
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(c) = self
                    .peek(0)
                    .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                {
                    self.at += 1;
                    name.push(c);
                }
                self.push(Part::Var(name));
            }
            Some(c) if shell && "0123456789?$!#*@-'".contains(c) => {
                self.at += 1;
                self.push(Part::Other(format!("${c}")));
            }
            _ => self.word().push_char('$'),
        }
    }

    /// The text between the `(` at the cursor and its matching `)`, quotes respected.
    fn balanced(&mut self) -> String {
        self.at += 1;
        let (mut depth, mut inner, mut quote) = (1usize, String::new(), None);
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match (c, quote) {
                ('\\', _) => {
                    inner.push(c);
                    if let Some(next) = self.peek(0) {
                        self.at += 1;
                        inner.push(next);
                    }
                    continue;
                }
                ('\'' | '"', None) => quote = Some(c),
                (q, Some(open)) if q == open => quote = None,
                ('(', None) => depth += 1,
                (')', None) => {
                    depth -= 1;
                    if depth == 0 {
                        return inner;
                    }
                }
                _ => {}
            }
            inner.push(c);
        }
        inner
    }

    /// After a backquote: the command's text, up to the closing one.
    fn backquoted(&mut self) {
        let mut inner = String::new();
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                '`' => return self.push(Part::Subst(inner)),
                '\\' if matches!(self.peek(0), Some('$' | '`' | '\\')) => {
                    inner.push(self.chars[self.at]);
                    self.at += 1;
                }
                _ => inner.push(c),
            }
        }
        self.push(Part::Other(format!("`{inner}")));
    }

    /// After a `%` in a unit: `%%` is a `%`, anything else a specifier systemd expands.
    fn specifier(&mut self) {
        match self.peek(0) {
            Some('%') => {
                self.at += 1;
                self.word().push_char('%');
            }
            Some(c) => {
                self.at += 1;
                self.push(Part::Other(format!("%{c}")));
            }
            None => self.word().push_char('%'),
        }
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Which processes a kill command is aimed at, as far as the line tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The pid a pid file holds; with the name its process must have (start-stop-daemon
    /// `--pidfile F --name N` matches only a process that both name).
    PidFile(PathBuf, Option<String>),
    /// A pid written in the line.
    Pid(i32),
    /// Every process with this exact name (`/proc/PID/comm`).
    Name(String),
    /// Every process whose name this pattern (`pkill`'s regular expression, of the simple kind
    /// [`Pattern`] reads) matches.
    Pattern(Pattern),
    /// The unit's main pid (`$MAINPID`).
    MainPid,
    /// Why it cannot be told without running the shell.
    Unknown(String),
}

impl Target {
    /// Its kind and value, for `--json`.
    pub fn json(&self) -> serde_json::Value {
        if let Target::PidFile(p, Some(name)) = self {
            let path = p.display().to_string();
            return serde_json::json!({"kind": "pidfile", "value": path, "name": name});
        }
        let (kind, value) = match self {
            Target::PidFile(p, _) => ("pidfile", p.display().to_string()),
            Target::Pid(n) => ("pid", n.to_string()),
            Target::Name(n) => ("name", n.clone()),
            Target::Pattern(p) => ("pattern", p.source.clone()),
            Target::MainPid => ("mainpid", "$MAINPID".to_owned()),
            Target::Unknown(why) => ("unknown", why.clone()),
        };
        serde_json::json!({"kind": kind, "value": value})
    }
}

/// A `pkill`/`pgrep` pattern of letters, digits, `_`, `-`, `.` (any character), `\.`, and `^`
/// and `$` at its ends; matched against the process name as `pkill` does (a search, or the
/// whole name with `-x`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub source: String,
    /// `None` stands for `.`, any character.
    chars: Vec<Option<u8>>,
    start: bool,
    end: bool,
}

impl Pattern {
    fn parse(source: &str, exact: bool) -> Option<Pattern> {
        let mut body = source;
        let start = exact || body.starts_with('^');
        body = body.strip_prefix('^').unwrap_or(body);
        let end = exact || (body.ends_with('$') && !body.ends_with("\\$"));
        if body.ends_with('$') {
            body = &body[..body.len() - 1];
        }
        let mut chars = Vec::new();
        let mut bytes = body.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'.' => chars.push(None),
                b'\\' => chars.push(Some(bytes.next().filter(|b| !b.is_ascii_alphanumeric())?)),
                b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => chars.push(Some(b)),
                _ => return None,
            }
        }
        Some(Pattern {
            source: source.to_owned(),
            chars,
            start,
            end,
        })
    }

    /// Whether it matches the process name `name`.
    pub fn matches(&self, name: &[u8]) -> bool {
        let fits = |at: usize| {
            self.chars.len() + at <= name.len()
                && self
                    .chars
                    .iter()
                    .zip(&name[at..])
                    .all(|(p, c)| p.is_none_or(|p| p == *c))
        };
        if self.start {
            return fits(0) && (!self.end || self.chars.len() == name.len());
        }
        if self.end {
            return name.len() >= self.chars.len() && fits(name.len() - self.chars.len());
        }
        (0..=name.len()).any(fits)
    }
}

/// A command that sends a signal, as read from a line.
#[derive(Clone, Debug)]
pub struct Kill {
    /// The program (`kill`, `pkill`, ...).
    pub tool: String,
    /// Its words, as written: shared by the command's targets.
    pub text: Rc<str>,
    /// The signal, or what was written where one was expected.
    pub signal: Result<Sig, String>,
    pub target: Target,
}

/// What the reading of a script knows as it goes: the variables set to literals so far, and
/// whether `$MAINPID` means the unit's main pid.
#[derive(Default)]
pub struct Scope {
    vars: HashMap<String, String>,
    unit: bool,
}

impl Scope {
    /// A script's start; `unit`: it is a unit's line, where `$MAINPID` is systemd's.
    pub fn new(unit: bool) -> Scope {
        Scope {
            vars: HashMap::new(),
            unit,
        }
    }
}

/// The commands in `line` that send a signal other than TERM, KILL and INT (which stop a
/// daemon on purpose), each aimed at one target; assignments are remembered in `scope`.
pub fn kills(line: &str, syntax: Syntax, scope: &mut Scope) -> Vec<Kill> {
    read(line, syntax, scope, 0)
}

fn read(line: &str, syntax: Syntax, scope: &mut Scope, depth: usize) -> Vec<Kill> {
    let mut found = Vec::new();
    for command in commands(line, syntax) {
        // In a unit, a lone `;` separates commands.
        let unit = syntax == Syntax::Systemd;
        for words in command
            .words
            .split(|w| unit && w.literal().as_deref() == Some(";"))
        {
            found.extend(simple(words, scope, depth));
        }
    }
    found.retain(|k| !matches!(&k.signal, Ok(s) if ["TERM", "KILL", "INT"].contains(&s.name)));
    found
}

/// The kill commands of one simple command.
fn simple(words: &[Word], scope: &mut Scope, depth: usize) -> Vec<Kill> {
    let mut rest = words;
    let mut assigned = Vec::new();
    while let Some((first, after)) = rest.split_first() {
        let text = first.literal().unwrap_or_default();
        match text.split_once('=') {
            Some((name, value)) if is_name(name) => {
                assigned.push((name.to_owned(), value.to_owned()))
            }
            _ if PREFIXES.contains(&text.as_str()) => {}
            _ if text == "env" => {}
            _ if text.starts_with('-') && rest.len() < words.len() => {
                // Options of `env`, `nohup`, `command`...
            }
            _ => break,
        }
        rest = after;
    }
    let Some((program, args)) = rest.split_first() else {
        // Only assignments: the script's variables from now on.
        for (name, value) in assigned {
            scope.vars.insert(name, value);
        }
        return Vec::new();
    };
    let Some(program) = program.literal() else {
        return Vec::new();
    };
    let tool = program.rsplit('/').next().unwrap_or_default().to_owned();
    let text: Rc<str> = std::iter::once(program.clone())
        .chain(args.iter().map(Word::text))
        .collect::<Vec<_>>()
        .join(" ")
        .into();
    let read = Reader { scope, depth };
    let (signal, targets) = match tool.as_str() {
        "kill" => read.kill(args),
        "pkill" => read.pkill(args),
        "killall" => read.killall(args),
        "start-stop-daemon" => read.start_stop(args),
        "sh" | "bash" | "dash" | "ash" | "ksh" | "zsh" => return read.shell_c(args),
        "xargs" => return read.xargs(args),
        _ => return Vec::new(),
    }
    .unwrap_or((Err(String::new()), Vec::new()));
    targets
        .into_iter()
        .take(MAX_TARGETS + 1)
        .map(|target| Kill {
            tool: tool.clone(),
            text: text.clone(),
            signal: signal.clone(),
            target,
        })
        .collect()
}

/// Words before a command that leave the command what it is.
const PREFIXES: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time", "exec", "command",
    "builtin", "nohup", "fi", "done",
];

/// What one kill command sends, and to what; `None`: it sends nothing (`kill -l`).
type Read = Option<(Result<Sig, String>, Vec<Target>)>;

struct Reader<'a> {
    scope: &'a mut Scope,
    depth: usize,
}

/// A signal as written after `-` or `-s`: a name with or without `SIG`, or a number.
fn signal(text: &str) -> Result<Sig, String> {
    names::parse(text).map_err(|_| text.to_owned())
}

/// A signal written as `-SIG` (`-HUP`, `-1`), when it is one.
fn dash_signal(text: &str) -> Option<Sig> {
    names::parse(text.strip_prefix('-')?).ok()
}

impl Reader<'_> {
    /// `kill [-s SIG | -SIG | -n NUM | --signal SIG] [--] PID...`
    fn kill(&self, args: &[Word]) -> Read {
        let mut sig: Option<Result<Sig, String>> = None;
        let mut targets = Vec::new();
        let mut words = args.iter();
        let mut options = true;
        while let Some(word) = words.next() {
            let text = word.literal().unwrap_or_default();
            match text.as_str() {
                "--" if options => options = false,
                "-l" | "-L" | "--list" | "--table" | "-p" | "--pid" if options => return None,
                "-s" | "-n" | "--signal" if options => {
                    sig = Some(signal(&words.next().map(Word::text).unwrap_or_default()));
                }
                "-q" | "--queue" if options => {
                    words.next();
                }
                t if options && sig.is_none() && t.len() > 1 && t.starts_with('-') => {
                    sig = Some(signal(&t[1..]));
                }
                t if t.starts_with('-') && t.len() > 1 => targets.push(Target::Unknown(format!(
                    "{t} is a process group, which is not read here"
                ))),
                _ => targets.push(self.pid_word(word)),
            }
        }
        Some((sig.unwrap_or_else(|| signal("TERM")), targets))
    }

    /// `pkill [-SIG | --signal SIG] [-x] PATTERN`; other options that narrow the match make
    /// it "cannot tell".
    fn pkill(&self, args: &[Word]) -> Read {
        let mut sig = None;
        let (mut exact, mut pattern, mut unknown, mut pidfile) = (false, None, None, None);
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let text = word.literal().unwrap_or_else(|| word.text());
            match text.as_str() {
                "-x" | "--exact" => exact = true,
                "-e" | "--echo" | "-c" | "--count" => {}
                "--signal" => sig = Some(signal(&words.next().map(Word::text).unwrap_or_default())),
                t if t.starts_with("--signal=") => sig = Some(signal(&t[9..])),
                "-F" | "--pidfile" => pidfile = words.next().cloned(),
                t if sig.is_none() && dash_signal(t).is_some() => sig = dash_signal(t).map(Ok),
                t if t.starts_with('-') && t.len() > 1 => {
                    unknown.get_or_insert(format!(
                        "pkill {t} changes what it matches, which is not read here"
                    ));
                }
                _ => pattern = Some(word.clone()),
            }
        }
        let target = match (unknown, pidfile, pattern) {
            (Some(why), _, _) => Target::Unknown(why),
            (None, Some(file), _) => self.file_target(&file),
            (None, None, Some(p)) => self.pattern(&p, exact),
            (None, None, None) => return None,
        };
        Some((sig.unwrap_or_else(|| signal("TERM")), vec![target]))
    }

    fn pattern(&self, word: &Word, exact: bool) -> Target {
        let Some(text) = self.expand(word) else {
            return Target::Unknown(format!("uses shell we do not evaluate: {}", word.text()));
        };
        match Pattern::parse(&text, exact) {
            Some(p) => Target::Pattern(p),
            None => Target::Unknown(format!(
                "the pattern {text:?} is a regular expression we do not evaluate"
            )),
        }
    }

    /// `killall [-s SIG | -SIG | --signal SIG] NAME...`
    fn killall(&self, args: &[Word]) -> Read {
        let mut sig = None;
        let (mut names, mut unknown) = (Vec::new(), None);
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let text = word.literal().unwrap_or_else(|| word.text());
            match text.as_str() {
                "-q" | "--quiet" | "-w" | "--wait" | "-v" | "--verbose" | "-e" | "--exact"
                | "-g" | "--process-group" => {}
                "-s" | "--signal" => {
                    sig = Some(signal(&words.next().map(Word::text).unwrap_or_default()))
                }
                t if sig.is_none() && dash_signal(t).is_some() => sig = dash_signal(t).map(Ok),
                t if t.starts_with('-') && t.len() > 1 => {
                    unknown.get_or_insert(format!(
                        "killall {t} changes what it matches, which is not read here"
                    ));
                }
                _ => names.push(word.clone()),
            }
        }
        let targets = match unknown {
            Some(why) => vec![Target::Unknown(why)],
            None => names.iter().map(|n| self.name(n)).collect(),
        };
        Some((sig.unwrap_or_else(|| signal("TERM")), targets))
    }

    fn name(&self, word: &Word) -> Target {
        match self.expand(word) {
            Some(n) if n.contains('/') => Target::Unknown(format!(
                "{n} is a program's path, matched by its executable, which is not read here"
            )),
            // The kernel keeps 15 bytes of a name; killall and pidof compare those.
            Some(n) => Target::Name(crate::procfs::comm_prefix(&n).to_owned()),
            None => Target::Unknown(format!("uses shell we do not evaluate: {}", word.text())),
        }
    }

    /// `start-stop-daemon --stop [--signal SIG] (--pidfile F | --name N | ...)`; with both,
    /// a process must match both, as start-stop-daemon's matchers do.
    fn start_stop(&self, args: &[Word]) -> Read {
        let (mut stop, mut sig, mut pidfile, mut name) = (false, None, None, None);
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let text = word.literal().unwrap_or_default();
            let (option, inline) = match text.split_once('=') {
                Some((o, v)) if o.starts_with("--") => (o.to_owned(), Some(v.to_owned())),
                _ => (text.clone(), None),
            };
            // The value as a word, so that `--pidfile "$P"` is a variable, not a path "$P".
            let literal = |text: String| Word {
                parts: vec![Part::Lit(text)],
            };
            let mut value = || {
                inline
                    .clone()
                    .map(literal)
                    .or_else(|| words.next().cloned())
            };
            match option.as_str() {
                "-K" | "--stop" => stop = true,
                "-s" | "--signal" => sig = value().map(|v| signal(&v.text())),
                "-p" | "--pidfile" => pidfile = value(),
                "-n" | "--name" => name = value(),
                "-x" | "--exec" | "-u" | "--user" | "-R" | "--retry" | "-g" | "--group" => {
                    value();
                }
                _ => {}
            }
        }
        if !stop {
            return None;
        }
        let target = match (pidfile, name) {
            (Some(file), None) => self.file_target(&file),
            // Both must match: the pid file's process, if it has that name.
            (Some(file), Some(n)) => match (self.file_target(&file), self.name(&n)) {
                (Target::PidFile(path, _), Target::Name(n)) => Target::PidFile(path, Some(n)),
                (Target::PidFile(..), unknown) | (unknown, _) => unknown,
            },
            (None, Some(n)) => self.name(&n),
            (None, None) => Target::Unknown(
                "start-stop-daemon without --pidfile or --name matches by what is not read here"
                    .into(),
            ),
        };
        Some((sig.unwrap_or_else(|| signal("TERM")), vec![target]))
    }

    /// `sh -c 'SCRIPT'`: the script, read as a line of its own.
    fn shell_c(self, args: &[Word]) -> Vec<Kill> {
        let at = args
            .iter()
            .position(|w| w.literal().as_deref() == Some("-c"));
        let Some(script) = at.and_then(|i| args.get(i + 1)) else {
            return Vec::new();
        };
        if self.depth >= MAX_DEPTH {
            return Vec::new();
        }
        // In a unit, systemd has expanded `$MAINPID` in it before the shell runs.
        read(&script.text(), Syntax::Shell, self.scope, self.depth + 1)
    }

    /// `... | xargs kill -HUP`: the pids come from the input.
    fn xargs(self, args: &[Word]) -> Vec<Kill> {
        let at = args.iter().position(|w| {
            let t = w.literal().unwrap_or_default();
            ["kill", "pkill", "killall"].contains(&t.rsplit('/').next().unwrap_or_default())
        });
        let Some(at) = at else { return Vec::new() };
        let mut kills = simple(&args[at..], self.scope, self.depth + 1);
        if kills.is_empty() {
            let tool = args[at].literal().unwrap_or_default();
            let text: Vec<String> = args[at..].iter().map(Word::text).collect();
            let sig = self.kill(&args[at + 1..]).map(|(s, _)| s);
            if let Some(signal) =
                sig.filter(|s| !matches!(s, Ok(s) if ["TERM", "KILL", "INT"].contains(&s.name)))
            {
                kills.push(Kill {
                    tool: tool.rsplit('/').next().unwrap_or_default().to_owned(),
                    text: format!("xargs {}", text.join(" ")).into(),
                    signal,
                    target: Target::Unknown(
                        "the pids come from xargs's input, which is not read here".into(),
                    ),
                });
            }
        }
        kills
    }

    /// A word where `kill` takes a pid.
    fn pid_word(&self, word: &Word) -> Target {
        match word.parts.as_slice() {
            [Part::Var(v)] if v == "MAINPID" && self.scope.unit => return Target::MainPid,
            [Part::Subst(inner)] => return self.subst(inner),
            [Part::Lit(empty), Part::Subst(inner)] if empty.is_empty() => return self.subst(inner),
            _ => {}
        }
        match self.expand(word) {
            Some(t) if t.starts_with('%') => Target::Unknown(format!("{t} is a shell job")),
            Some(t) => match t.parse::<i32>() {
                Ok(pid) if pid > 0 => Target::Pid(pid),
                _ => Target::Unknown(format!("{t:?} is not a pid")),
            },
            None => Target::Unknown(format!("uses shell we do not evaluate: {}", word.text())),
        }
    }

    /// The word's text, with variables set earlier in the script put in; `None` when it holds
    /// anything else the shell would expand.
    fn expand(&self, word: &Word) -> Option<String> {
        word.expanded(|v| self.scope.vars.get(v).map(String::as_str))
    }

    fn file_target(&self, word: &Word) -> Target {
        match self.expand(word) {
            Some(path) => Target::PidFile(PathBuf::from(path), None),
            None => Target::Unknown(format!("uses shell we do not evaluate: {}", word.text())),
        }
    }

    /// `$(...)` where a pid goes: `cat FILE`, `< FILE`, `head -1 FILE`, `pidof NAME`,
    /// `pgrep [-x] PATTERN`.
    fn subst(&self, inner: &str) -> Target {
        let unknown = || Target::Unknown(format!("uses shell we do not evaluate: $({inner})"));
        let commands = commands(inner, Syntax::Shell);
        let [command] = commands.as_slice() else {
            return unknown();
        };
        let words: Vec<String> = command.words.iter().map(Word::text).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        // After the program: the options, and the one name `pidof` and `pgrep` are given.
        let (options, operands): (Vec<&Word>, Vec<&Word>) = command
            .words
            .iter()
            .skip(1)
            .partition(|w| w.text().starts_with('-'));
        let exact = |w: &&Word| matches!(w.text().as_str(), "-x" | "--exact");
        let file = |w: &Word| self.file_target(w);
        match (
            words.as_slice(),
            command.inputs.as_slice(),
            operands.as_slice(),
        ) {
            ([], [input], _) => file(input),
            (["cat" | "/bin/cat" | "/usr/bin/cat"], [input], _) => file(input),
            (["cat" | "/bin/cat" | "/usr/bin/cat", _], [], _) => file(&command.words[1]),
            (["head", "-1" | "-n1", _], [], _) => file(&command.words[2]),
            (["head", "-n", "1", _], [], _) => file(&command.words[3]),
            (["pidof" | "/bin/pidof" | "/usr/bin/pidof", ..], [], [name]) => self.name(name),
            (["pgrep" | "/usr/bin/pgrep", ..], [], [p]) if options.iter().all(exact) => {
                self.pattern(p, options.iter().any(exact))
            }
            _ => unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> (String, Target) {
        let mut scope = Scope::default();
        let found = kills(line, Syntax::Shell, &mut scope);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        let k = &found[0];
        (
            k.signal
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.clone()),
            k.target.clone(),
        )
    }

    fn pidfile(p: &str) -> Target {
        Target::PidFile(PathBuf::from(p), None)
    }

    #[test]
    fn the_forms_logrotate_stanzas_use_are_read() {
        let (hup, usr1) = ("SIGHUP", "SIGUSR1");
        let name = |n: &str| Target::Name(n.into());
        for (line, sig, target) in [
            ("kill -HUP $(cat /run/x.pid)", hup, pidfile("/run/x.pid")),
            ("kill -s HUP `cat /run/x.pid`", hup, pidfile("/run/x.pid")),
            ("/bin/kill -1 812", hup, Target::Pid(812)),
            (
                "[ -f /run/x.pid ] && kill -HUP \"$(cat /run/x.pid 2>/dev/null)\" || true",
                hup,
                pidfile("/run/x.pid"),
            ),
            ("kill -HUP $(< /run/x.pid)", hup, pidfile("/run/x.pid")),
            ("/usr/bin/killall -USR1 nginx", usr1, name("nginx")),
            (
                "start-stop-daemon --stop --signal HUP --quiet --pidfile /run/a.pid",
                hup,
                pidfile("/run/a.pid"),
            ),
            ("start-stop-daemon -K -s 1 -n a", hup, name("a")),
            (
                "start-stop-daemon -K -s HUP -p /run/a.pid --name=a-daemon-of-long-name",
                hup,
                Target::PidFile("/run/a.pid".into(), Some("a-daemon-of-lon".into())),
            ),
            (
                "start-stop-daemon -K -s HUP --pidfile \"$P\"",
                hup,
                Target::Unknown("uses shell we do not evaluate: $P".into()),
            ),
            (
                "start-stop-daemon -K -s HUP -p /run/a.pid -n \"$N\"",
                hup,
                Target::Unknown("uses shell we do not evaluate: $N".into()),
            ),
            (
                "sh -c 'kill -USR1 $(cat /run/a.pid)'",
                usr1,
                pidfile("/run/a.pid"),
            ),
            (
                "P=/run/b.pid; kill -HUP `cat $P`",
                hup,
                pidfile("/run/b.pid"),
            ),
            ("if true; then kill -HUP 5; fi", hup, Target::Pid(5)),
        ] {
            assert_eq!(one(line), (sig.to_owned(), target), "{line}");
        }
        assert_eq!(one("pkill -SIGHUP logdeviced").0, hup);
        assert_eq!(one("pkill -HUP -x logdeviced").0, hup);
        assert_eq!(one("killall -s HUP rsyslogd").1, name("rsyslogd"));
        assert_eq!(one("kill -HUP $(pidof rsyslogd)").1, name("rsyslogd"));
    }

    #[test]
    fn signals_that_stop_on_purpose_and_commands_that_send_none_are_left_out() {
        let mut scope = Scope::default();
        for line in [
            "kill $(cat /run/x.pid)",
            "kill -TERM 5",
            "kill -9 5",
            "pkill -INT x",
            "killall nginx",
            "kill -l",
            "invoke-rc.d x rotate",
            "echo kill -HUP 5",
            "# kill -HUP 5",
            "start-stop-daemon --start --signal HUP --pidfile /run/a.pid",
        ] {
            assert!(kills(line, Syntax::Shell, &mut scope).is_empty(), "{line}");
        }
    }

    #[test]
    fn what_the_shell_would_expand_is_cannot_tell() {
        for line in [
            "kill -HUP $(ps ax | grep x | awk '{print $1}')",
            "kill -HUP $PID",
            "kill -HUP ${PID:-1}",
            "kill -HUP $((1+2))",
            "pkill -HUP -f 'x y'",
            "pkill -HUP 'a|b'",
            "cat /run/x.pid | xargs kill -HUP",
            "kill -HUP -- -1234",
        ] {
            let (_, target) = one(line);
            assert!(matches!(target, Target::Unknown(_)), "{line}: {target:?}");
        }
        // $MAINPID is systemd's in a unit only.
        let unit = |line| kills(line, Syntax::Systemd, &mut Scope::new(true));
        let found = unit("/bin/kill -HUP $MAINPID");
        assert_eq!(found[0].target, Target::MainPid);
        let found = unit("/bin/sh -c \"kill -HUP $MAINPID\"");
        assert_eq!(found[0].target, Target::MainPid);
        let found = unit("/bin/kill -HUP $(cat /run/%i.pid)");
        assert!(matches!(found[0].target, Target::Unknown(_)), "{found:?}");
        assert_eq!(unit("/bin/kill -HUP 5 ; /bin/kill -USR1 6").len(), 2);
    }

    #[test]
    fn patterns_match_as_pkill_matches_names() {
        let p = Pattern::parse("logd", false).unwrap();
        assert!(p.matches(b"logdeviced") && p.matches(b"mylogd") && !p.matches(b"log"));
        let x = Pattern::parse("logdeviced", true).unwrap();
        assert!(x.matches(b"logdeviced") && !x.matches(b"logdeviced2"));
        let anchored = Pattern::parse("^ng.nx$", false).unwrap();
        assert!(anchored.matches(b"nginx") && !anchored.matches(b"nginx2"));
        assert!(Pattern::parse("a|b", false).is_none());
        assert!(Pattern::parse("a.*", false).is_none());
    }
}
