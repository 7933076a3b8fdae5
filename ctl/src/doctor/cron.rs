//! cron's tables, as Debian's cron reads them: `/etc/crontab` and `/etc/cron.d/*` (five time
//! fields or an `@` keyword, a user, the command) and the users' crontabs in
//! `/var/spool/cron/crontabs/*` (no user field). In `/etc/cron.d`, as cron does, only names
//! of letters, digits, `_` and `-` are read (so `x.dpkg-old` or `x~` is not), and a table
//! writable by its group or others, or not root's, is ignored. A command's text ends at its
//! first unescaped `%` (what follows is its input); `\%` is a `%`. `NAME=value` lines set the
//! environment and are skipped. The scripts in `/etc/cron.daily` and the like are not read.
//! A user's crontab runs as the user who owns it, and a system table's line as the user it
//! names: its lines are judged as sent by that user, who reads the pid files they name with
//! their own rights. A table whose owner, or a line whose user, has no entry in `/etc/passwd`
//! is not run by cron, and is left out saying so.

use super::files::{Root, Unread};
use super::{users, Found, Script, Source};
use crate::doctor::shell::Syntax;
use std::path::Path;

pub const CRONTAB: &str = "/etc/crontab";
pub const CRON_D: &str = "/etc/cron.d";
pub const SPOOL: &str = "/var/spool/cron/crontabs";

/// Reads cron's tables under `root` into `found`.
pub fn read(root: &Root, found: &mut Found) {
    let users = users::Users::read(root);
    let read_table =
        |path: &Path, system: bool, found: &mut Found| table(root, &users, path, system, found);
    read_table(Path::new(CRONTAB), true, found);
    for name in root.list(Path::new(CRON_D)).unwrap_or_default() {
        let path = Path::new(CRON_D).join(&name);
        let text = name.to_string_lossy();
        if text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            read_table(&path, true, found);
        } else {
            let why = "cron leaves it out: its name has a character other than letters, digits, \
                       _ and -";
            found.skip(root.shown(&path), why.into());
        }
    }
    for name in root.list(Path::new(SPOOL)).unwrap_or_default() {
        // crontab(1) writes a temporary file there before renaming it.
        if !name.to_string_lossy().starts_with('.') {
            read_table(&Path::new(SPOOL).join(&name), false, found);
        }
    }
}

/// One table; `system`: it has a user field.
fn table(root: &Root, users: &users::Users, path: &Path, system: bool, found: &mut Found) {
    let shown = root.shown(path);
    let file = match root.read(path) {
        Ok(file) => file,
        Err(Unread::Missing) => return,
        Err(why) => return found.skip(shown, why.to_string()),
    };
    // A user's crontab is that user's; the system's must be root's.
    if system {
        if let Some(why) = super::ignored_as_root(&file.stat, "cron") {
            return found.skip(shown, why);
        }
    }
    // A user's crontab runs as its owner, who may signal only their own processes and read
    // only their own files; a system table's line as the user it names.
    let owner = match (system, file.stat.st_uid) {
        (true, _) | (false, 0) => None,
        (false, uid) => match users.with_uid(uid) {
            Some(user) => Some(user),
            None => {
                let why = format!(
                    "cron does not run it: its owner, uid {uid}, has no entry in /etc/passwd"
                );
                return found.skip(shown, why);
            }
        },
    };
    found.read.push(shown.clone());
    for (n, line) in file.text.lines().enumerate() {
        let Some((user, command)) = command(line, system) else {
            continue;
        };
        let sender = match user {
            None | Some("root") => owner.clone(),
            Some(name) => match users.named(name) {
                Some(user) if user.uid == 0 => None,
                Some(user) => Some(user),
                None => {
                    let why = format!(
                        "cron does not run its line {}: it names the user {name:?}, who has no \
                         entry in /etc/passwd",
                        n + 1
                    );
                    found.skip(shown.clone(), why);
                    continue;
                }
            },
        };
        let mut script = Script::new(Source::Cron, shown.clone(), Syntax::Shell);
        script.shown_text = Some(line.trim().to_owned());
        script.sender = sender;
        script.lines.push((n + 1, command));
        found.scripts.push(script);
    }
}

/// The user field (of a system table's line) and the command of a crontab line, or `None` for
/// a comment, a blank or an environment line.
fn command(line: &str, system: bool) -> Option<(Option<&str>, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let first = line.split_whitespace().next()?;
    if let Some((name, _)) = line.split_once('=') {
        let name = name.trim();
        if !name.is_empty() && !name.contains(char::is_whitespace) && !first.starts_with('@') {
            return None;
        }
    }
    let fields = if first.starts_with('@') { 1 } else { 5 } + usize::from(system);
    let mut rest = line;
    let mut field = "";
    for _ in 0..fields {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        (field, rest) = rest.split_at(end);
    }
    let user = system.then_some(field);
    Some((user, until_percent(rest.trim()).trim_end().to_owned()))
}

/// The text up to the first unescaped `%`, with `\%` made `%`.
fn until_percent(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                out.push('%');
                chars.next();
            }
            '%' => break,
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_what_follows_the_time_and_user() {
        let some = |user: Option<&'static str>, command: &str| Some((user, command.to_owned()));
        assert_eq!(
            command("0 0 * * * root killall -USR1 x", true),
            some(Some("root"), "killall -USR1 x")
        );
        assert_eq!(
            command("@daily   www-data  kill -HUP 1 % input", true),
            some(Some("www-data"), "kill -HUP 1")
        );
        assert_eq!(
            command("*/5 * * * * date +\\%s", false),
            some(None, "date +%s")
        );
        assert_eq!(command("SHELL=/bin/sh", true), None);
        assert_eq!(command("MAILTO = root", true), None);
        assert_eq!(command("# 0 0 * * * root kill -HUP 1", true), None);
        assert_eq!(command("0 0 * * *", true), None);
    }
}
