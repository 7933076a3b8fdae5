//! Shell completion: `ctl completions SHELL` prints clap's static script (operations and
//! options) with a small wrapper around it that, where a TARGET, a `call`'s COMMAND or its
//! `KEY=` goes, or `--timeout`'s value, asks `ctl __complete` at TAB time: daemon names from
//! the places `ctl list` reads, socket paths for a word with `/`, the commands and their
//! arguments the daemon's `describe` lists, and durations.
//!
//! What `ctl __complete` prints is one candidate a line, each a word `ctl` would accept there:
//! a daemon name valid as a target ([`socket::validate_name`]), a command name valid by the
//! command-name rule, a socket path with no character that cannot be shown on one line. Names
//! come from file names another user may have chosen and from a daemon's reply, so each
//! wrapper quotes what it inserts (bash with `printf %q`, zsh's and fish's own quoting): a
//! planted `w;touch PWNED;x.sock` is inserted as one word, never run.
//!
//! Why a hidden subcommand and not clap_complete's dynamic completion (`CompleteEnv`): that is
//! behind an unstable feature whose API still changes between 4.5 releases (the floor this
//! workspace promises), and its completers see only the word being completed, not the TARGET
//! typed before a `call`'s COMMAND. Here the shell hands ctl every word and the cursor's
//! index, and ctl, which knows its own grammar, decides.

use crate::client::{Ahead, Session};
use crate::ops::Op;
use clap::Subcommand as _;
use control_api::socket::{self, SocketEnv, Target};
use control_api::OperationKind;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long completing a `call`'s COMMAND may wait for the daemon: a TAB must never hang the
/// shell.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The script for `shell`: clap's, then the wrapper that adds targets and commands.
pub fn script(shell: clap_complete::Shell, mut cmd: clap::Command) -> Vec<u8> {
    let mut generated = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ctl", &mut generated);
    // clap's scripts offer hidden subcommands too: not `__complete`, which is for them only.
    let generated: String = String::from_utf8_lossy(&generated)
        .replace(" __complete ", " ")
        .lines()
        .filter(|l| !l.starts_with("'__complete:") && !l.contains("-a \"__complete\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let script = match shell {
        clap_complete::Shell::Bash => format!("{generated}\n{BASH}"),
        // The file is both sourced and autoloaded as `_ctl` from $fpath; either way its last
        // lines call, or register, `_ctl`: so clap's function becomes `_ctl_static`, and `_ctl`
        // is the wrapper.
        clap_complete::Shell::Zsh => {
            let generated = generated.replacen("\n_ctl() {", "\n_ctl_static() {", 1);
            match generated.rfind("\nif [ \"$funcstack[1]\" = \"_ctl\" ]") {
                Some(at) => format!("{}\n{ZSH}{}", &generated[..at], &generated[at..]),
                None => generated,
            }
        }
        clap_complete::Shell::Fish => format!("{generated}\n{FISH}"),
        _ => generated,
    };
    script.into_bytes()
}

const BASH: &str = r#"# Daemon names, socket paths and a daemon's commands, asked of ctl at TAB time
# (`ctl __complete` exits 1 where it has nothing to add: clap's completion above does the rest).
_ctl_dynamic() {
    local out
    if out=$(ctl __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null); then
        compopt +o default +o bashdefault 2>/dev/null
        COMPREPLY=()
        local -a found
        local word quoted
        [[ -n "$out" ]] && mapfile -t found <<<"$out"
        # Inserted as they are, so quoted here: a file name is anyone's choice.
        for word in "${found[@]}"; do
            printf -v quoted '%q' "$word"
            COMPREPLY+=("$quoted")
        done
        # A directory, or a KEY= whose value follows: no space after it.
        [[ "${COMPREPLY[0]}" == */ || "${COMPREPLY[0]}" == *= ]] && compopt -o nospace 2>/dev/null
        return 0
    fi
    _ctl "$@"
}
complete -F _ctl_dynamic -o nosort -o bashdefault -o default ctl
"#;

const ZSH: &str = r#"# Daemon names, socket paths and a daemon's commands, asked of ctl at TAB time
# (`ctl __complete` exits 1 where it has nothing to add: clap's completion does the rest).
_ctl() {
    local out
    if out=$(ctl __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null); then
        local -a candidates
        candidates=("${(@f)out}")
        # Not -Q: zsh quotes what it inserts, and a file name is anyone's choice.
        # A directory, or a KEY= whose value follows: no space after it.
        compadd -S '' -- "${(@M)candidates:#*[/=]}"
        compadd -- "${(@)candidates:#*[/=]}"
        return 0
    fi
    _ctl_static "$@"
}
"#;

const FISH: &str = r#"# Daemon names, socket paths and a daemon's commands, asked of ctl at TAB time
# (fish quotes what it inserts).
# The word at the cursor quoted, so that an empty one still counts as a word.
function __ctl_dynamic
    set -l current (commandline -ct)
    set -l words (commandline -opc) "$current"
    ctl __complete (math (count $words) - 1) $words 2>/dev/null
end
function __ctl_dynamic_applies
    set -l current (commandline -ct)
    set -l words (commandline -opc) "$current"
    ctl __complete (math (count $words) - 1) $words >/dev/null 2>/dev/null
end
complete -c ctl -n __ctl_dynamic_applies -f -a '(__ctl_dynamic)'
"#;

/// What the word at the cursor is, for the operations that take a TARGET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// A TARGET, started as this.
    Target(&'a str),
    /// `call`'s COMMAND for this target, started as this.
    Command { target: &'a str, word: &'a str },
    /// A `KEY=` of `call`'s COMMAND, not one of the keys already given, started as `word`.
    Argument {
        target: &'a str,
        command: &'a str,
        given: Vec<&'a str>,
        word: &'a str,
    },
    /// The value of `--timeout`, started as this.
    Duration(&'a str),
    /// Nothing ctl adds to: an option, an operation name, another value.
    Other,
}

/// What `--timeout <TAB>` (and `top --interval <TAB>`) offers: durations in the syntax it takes.
const DURATIONS: [&str; 6] = ["500ms", "1s", "5s", "30s", "2m", "10m"];

/// Options that take the next word as their value, wherever they stand.
const WITH_VALUE: &[&str] = &["--timeout", "--args", "--limit", "--interval", "--count"];

/// Reads `words` (the whole command line, `ctl` first) up to `index`, the word at the cursor.
pub fn slot(index: usize, words: &[String]) -> Slot<'_> {
    let Some(current) = words.get(index) else {
        return Slot::Other;
    };
    if current.starts_with('-') {
        return Slot::Other;
    }
    let mut operation = None;
    let mut positionals: Vec<&str> = Vec::new();
    // The option whose value the next word is.
    let mut value_of: Option<&str> = None;
    for word in words.get(1..index).unwrap_or_default() {
        if value_of.take().is_some() {
            continue;
        }
        if word.starts_with('-') {
            value_of = WITH_VALUE.contains(&word.as_str()).then_some(word.as_str());
        } else if operation.is_none() {
            operation = Some(word.as_str());
        } else {
            positionals.push(word);
        }
    }
    match value_of {
        Some("--timeout" | "--interval") => return Slot::Duration(current),
        Some(_) => return Slot::Other,
        None => {}
    }
    match (operation, positionals.as_slice()) {
        // The operations on one daemon: each takes a TARGET first.
        (Some(op), []) if Op::has_subcommand(op) => Slot::Target(current),
        // `top NAME...`: every one a daemon.
        (Some("top"), _) => Slot::Target(current),
        (Some("call"), [target]) => Slot::Command {
            target,
            word: current,
        },
        // A value after its `=` is the caller's own.
        (Some("call"), [target, command, given @ ..]) if !current.contains('=') => Slot::Argument {
            target,
            command,
            given: given
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, _)| k)
                .collect(),
            word: current,
        },
        _ => Slot::Other,
    }
}

/// The candidates for `slot`, those that start with its word; `None` when ctl has nothing to
/// add there.
pub async fn candidates(slot: Slot<'_>) -> Option<Vec<String>> {
    let mut found = match slot {
        Slot::Other => return None,
        Slot::Target(word) => {
            let word = unquote(word);
            on_a_thread(move || {
                if word.contains('/') {
                    socket_paths(&word, |path| std::fs::metadata(path))
                } else {
                    daemon_names()
                }
            })
        }
        Slot::Command { target, .. } => commands(target).await,
        Slot::Argument {
            target,
            command,
            ref given,
            ..
        } => arguments(target, command)
            .await
            .into_iter()
            .filter(|key| !given.contains(&key.as_str()))
            .map(|key| format!("{key}="))
            .collect(),
        Slot::Duration(_) => DURATIONS.map(str::to_owned).to_vec(),
    };
    let word = match slot {
        Slot::Target(word)
        | Slot::Command { word, .. }
        | Slot::Argument { word, .. }
        | Slot::Duration(word) => unquote(word),
        Slot::Other => String::new(),
    };
    found.retain(|c| c.starts_with(&word) && shows_on_one_line(c));
    found.sort();
    found.dedup();
    Some(found)
}

/// `word` as the shell would pass it on: backslash escapes and quotes removed, as the wrappers
/// insert them (`/tmp/a\ b/` is the directory `/tmp/a b/`).
fn unquote(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut quote = None;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') | (Some('"'), '\\') => out.extend(chars.next()),
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (_, c) => out.push(c),
        }
    }
    out
}

/// Whether `candidate` can be one line of `__complete`'s output and be shown as it is: no
/// control character (a newline would make two candidates of it) nor any other character
/// [`control_api::text::needs_escape`] names, a backslash aside.
fn shows_on_one_line(candidate: &str) -> bool {
    !candidate.contains(|c| control_api::text::needs_escape(c) && c != '\\')
}

/// The command-name rule the server applies when a daemon binds a command: a name that
/// breaks it cannot come from a daemon built with `control-server`, and is never offered.
fn is_command_name(name: &str) -> bool {
    control_api::command_name::problem(name).is_none()
}

/// Runs `list` (which reads directories) on a thread of its own and gives up after
/// [`DESCRIBE_TIMEOUT`]: a directory on a hung NFS server, or an automount that does not come,
/// blocks a system call that no timer can interrupt, and a TAB must never hang the shell. The
/// thread is left behind; the process exits without it.
fn on_a_thread(list: impl FnOnce() -> Vec<String> + Send + 'static) -> Vec<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("complete".into())
        .spawn(move || {
            let _ = tx.send(list());
        });
    if spawned.is_err() {
        return Vec::new();
    }
    rx.recv_timeout(DESCRIBE_TIMEOUT).unwrap_or_default()
}

/// The names `ctl list` shows and `ctl` would talk to: valid names (a socket file's name is
/// anyone's choice in a directory others can write to), and not those the trust rule refuses
/// (a socket in a directory others can write to), which `ctl status NAME` refuses too.
fn daemon_names() -> Vec<String> {
    SocketEnv::from_process()
        .list()
        .map(|listed| {
            listed
                .into_iter()
                .filter(|l| l.trust.is_ok() && socket::validate_name(&l.name).is_ok())
                .map(|l| l.name)
                .collect()
        })
        .unwrap_or_default()
}

/// The sockets and directories in the directory `word` names, as `word` continues. Each
/// entry's type comes from the directory listing itself, without a `stat`: a `stat` of every
/// entry of `/net` or `/mnt` would mount every automount there, or hang on a dead NFS server.
/// Only symbolic links are followed, with `follow` (`std::fs::metadata`), as the shell would:
/// /run/NAME may be a link.
fn socket_paths(
    word: &str,
    follow: impl Fn(&Path) -> std::io::Result<std::fs::Metadata>,
) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let (dir, _) = word.rsplit_once('/').unwrap_or(("", word));
    let read_from = if dir.is_empty() { "/" } else { dir };
    let Ok(entries) = std::fs::read_dir(Path::new(read_from)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kind = e.file_type().ok()?;
            let kind = if kind.is_symlink() {
                follow(&e.path()).ok()?.file_type()
            } else {
                kind
            };
            if kind.is_dir() {
                Some(format!("{dir}/{name}/"))
            } else if kind.is_socket() {
                Some(format!("{dir}/{name}"))
            } else {
                None
            }
        })
        .collect()
}

/// The commands the daemon at `target` lists; none if it cannot be asked.
async fn commands(target: &str) -> Vec<String> {
    described(target)
        .await
        .into_iter()
        .filter(|op| op.kind == OperationKind::Command && is_command_name(&op.name))
        .map(|op| op.name)
        .collect()
}

/// The argument names of the daemon's command `command`, as its `describe` gives them; none
/// if it cannot be asked. Only names a `KEY=VALUE` word can carry.
async fn arguments(target: &str, command: &str) -> Vec<String> {
    let Some(op) = described(target)
        .await
        .into_iter()
        .find(|op| op.kind == OperationKind::Command && op.name == command)
    else {
        return Vec::new();
    };
    control_api::args::arguments(&op.args)
        .into_iter()
        .map(|arg| arg.name)
        .filter(|name| is_command_name(name))
        .collect()
}

/// What the daemon at `target` describes, asked within [`DESCRIBE_TIMEOUT`]; nothing if it
/// cannot be asked. Its reply is the daemon's: each caller keeps only the words `ctl` takes.
async fn described(target: &str) -> Vec<control_api::OperationInfo> {
    let asked = async {
        let target = Target::parse(target).ok()?;
        let lookup = target.lookup(&SocketEnv::from_process()).ok()?;
        let name = match &target {
            Target::Name(name) => Some(name.as_str()),
            Target::Path(_) => None,
        };
        let session = Session::open_first(
            &lookup.found,
            name,
            Instant::now(),
            DESCRIBE_TIMEOUT,
            Ahead::Nothing,
        )
        .await
        .ok()?;
        let described = session.call(&control_api::DescribeRequest {}).await.ok()?;
        Some(described.operations)
    };
    // The session's deadline bounds each step; this bounds them all, whatever they are.
    tokio::time::timeout(DESCRIBE_TIMEOUT, asked)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if line.ends_with(' ') {
            words.pop();
            words.push(String::new());
        }
        words
    }

    #[test]
    fn socket_paths_take_types_from_the_listing_and_follow_only_links() {
        use std::cell::RefCell;
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(d.join("web.sock")).unwrap();
        std::fs::write(d.join("plain"), "").unwrap();
        symlink(d.join("sub"), d.join("to-sub")).unwrap();
        symlink(d.join("web.sock"), d.join("to-web.sock")).unwrap();
        symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        let followed = RefCell::new(Vec::new());
        let prefix = format!("{}/", d.display());
        let mut found = socket_paths(&prefix, |path| {
            followed
                .borrow_mut()
                .push(path.file_name().unwrap().to_owned());
            std::fs::metadata(path)
        });
        found.sort();
        let at = |name: &str| format!("{}/{name}", d.display());
        assert_eq!(
            found,
            [at("sub/"), at("to-sub/"), at("to-web.sock"), at("web.sock")]
        );
        // Only the links were stat'ed: never `sub`, `web.sock` or `plain`.
        let mut followed = followed.into_inner();
        followed.sort();
        assert_eq!(followed, ["dangling", "to-sub", "to-web.sock"]);
    }

    #[test]
    fn only_words_ctl_would_take_are_offered_and_typed_quotes_are_read() {
        assert_eq!(unquote(r"/tmp/a\ b/"), "/tmp/a b/");
        assert_eq!(unquote(r#"'/tmp/a b'/c"d\"e""#), r#"/tmp/a b/cd"e"#);
        assert_eq!(unquote("plain"), "plain");
        for good in ["stats", "set-message", "a_1", &"x".repeat(64)] {
            assert!(is_command_name(good), "{good}");
        }
        for bad in [
            "",
            "$(touch PWNED4)",
            "1st",
            "-x",
            "a;b",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!is_command_name(bad), "{bad:?}");
        }
        assert!(shows_on_one_line("/tmp/w;touch PWNED;x.sock"));
        assert!(!shows_on_one_line("/tmp/a\nb.sock"));
        assert!(!shows_on_one_line("/tmp/\u{202e}kcos.x"));
    }

    #[test]
    fn the_word_at_the_cursor_is_read_like_ctl_parses() {
        let command = |target, word| Slot::Command { target, word };
        let cases = [
            ("ctl status ", Slot::Target("")),
            ("ctl status we", Slot::Target("we")),
            (
                "ctl --timeout 2s --json reload /run/c",
                Slot::Target("/run/c"),
            ),
            ("ctl call web ", command("web", "")),
            ("ctl call --timeout 1s web se", command("web", "se")),
            (
                "ctl call web set-message count=1 ",
                Slot::Argument {
                    target: "web",
                    command: "set-message",
                    given: vec!["count"],
                    word: "",
                },
            ),
            ("ctl --timeout ", Slot::Duration("")),
            ("ctl status --timeout 5", Slot::Duration("5")),
            // `top` takes any number of names, and an interval.
            ("ctl top web d", Slot::Target("d")),
            ("ctl top --count 3 web ", Slot::Target("")),
            ("ctl top --interval ", Slot::Duration("")),
            ("ctl top --count ", Slot::Other),
            ("ctl st", Slot::Other),
            ("ctl status web ", Slot::Other),
            ("ctl status --", Slot::Other),
            ("ctl call web set-message text=he", Slot::Other),
            ("ctl call --args ", Slot::Other),
            ("ctl list ", Slot::Other),
            ("ctl completions ", Slot::Other),
        ];
        for (line, expected) in cases {
            let w = words(line);
            assert_eq!(slot(w.len() - 1, &w), expected, "{line:?}");
        }
    }
}
