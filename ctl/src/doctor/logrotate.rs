//! logrotate's configuration, read as logrotate 3.21 reads it: `/etc/logrotate.conf`, then
//! each `include` where it stands (a file, or the regular files of a directory in byte order,
//! leaving out the taboo names: [`TABOO_EXT`], changed by `tabooext` and `taboopat`), and in
//! it the `prerotate`, `postrotate`, `firstaction`, `lastaction` and `preremove` scripts, each
//! up to its `endscript` line. Like logrotate run as root, a file writable by its group or
//! others, or owned by another user than root, is ignored (and listed as skipped, with why).

use super::files::{Root, Unread};
use super::{Found, Script, Source};
use crate::doctor::shell::Syntax;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The main configuration file.
pub const CONF: &str = "/etc/logrotate.conf";

/// The endings logrotate 3.21 leaves out of an included directory at start (its `tabooext`
/// list as built on Debian, read from `logrotate -d`; `*` in one is a wildcard).
pub const TABOO_EXT: &[&str] = &[
    ",v",
    ".bak",
    ".cfsaved",
    ".disabled",
    ".dpkg-bak",
    ".dpkg-del",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-old",
    ".dpkg-tmp",
    ".rhn-cfg-tmp-*",
    ".rpmnew",
    ".rpmorig",
    ".rpmsave",
    ".swp",
    ".ucf-dist",
    ".ucf-new",
    ".ucf-old",
    "~",
];

/// Includes inside includes, at most (logrotate has no limit; a loop must end).
const MAX_DEPTH: usize = 16;

/// The keywords that start a script.
const SCRIPTS: &[&str] = &[
    "prerotate",
    "postrotate",
    "firstaction",
    "lastaction",
    "preremove",
];

/// What reading logrotate's files keeps across them: the taboo patterns (`*` + extension, or a
/// `taboopat` glob) and where it is.
struct Reader<'a> {
    root: &'a Root,
    taboo: Vec<String>,
    found: &'a mut Found,
    depth: usize,
}

/// Reads logrotate's configuration under `root` into `found`.
pub fn read(root: &Root, found: &mut Found) {
    let mut reader = Reader {
        root,
        taboo: TABOO_EXT.iter().map(|e| format!("*{e}")).collect(),
        found,
        depth: 0,
    };
    reader.file(Path::new(CONF), true);
}

impl Reader<'_> {
    /// Reads the configuration file at `path`; a missing main file is left unsaid (no
    /// logrotate here).
    fn file(&mut self, path: &Path, main: bool) {
        let shown = self.root.shown(path);
        let file = match self.root.read(path) {
            Ok(file) => file,
            Err(Unread::Missing) if main => return,
            Err(why) => return self.found.skip(shown, why.to_string()),
        };
        if let Some(why) = super::ignored_as_root(&file.stat, "logrotate") {
            return self.found.skip(shown, why);
        }
        self.found.read.push(shown.clone());
        let mut script: Option<Script> = None;
        for (n, line) in file.text.lines().enumerate() {
            let trimmed = line.trim();
            if let Some(s) = &mut script {
                if trimmed == "endscript" {
                    self.found.scripts.extend(script.take());
                } else {
                    s.lines.push((n + 1, line.to_owned()));
                }
                continue;
            }
            if trimmed.starts_with('#') {
                continue;
            }
            let (key, value) = keyword(trimmed);
            match key {
                k if SCRIPTS.contains(&k) => {
                    script = Some(Script::new(Source::Logrotate, shown.clone(), Syntax::Shell));
                }
                "include" => self.include(value, &shown, n + 1),
                "tabooext" | "taboopat" => self.taboo(key, value),
                _ => {}
            }
        }
        // A script that never ends is run by no logrotate (it refuses the file), but its lines
        // are still worth seeing.
        self.found.scripts.extend(script);
    }

    fn include(&mut self, value: &str, from: &Path, line: usize) {
        let path = Path::new(value);
        if !path.is_absolute() {
            let why = format!(
                "included by {}:{line} with a relative path, which logrotate reads from its \
                 working directory: not known here",
                from.display()
            );
            return self.found.skip(PathBuf::from(value), why);
        }
        if self.depth >= MAX_DEPTH {
            let why = format!("included more than {MAX_DEPTH} deep (a loop?)");
            return self.found.skip(self.root.shown(path), why);
        }
        self.depth += 1;
        match self.root.list(path) {
            Some(names) => {
                for name in names {
                    let entry = path.join(&name);
                    if let Some(pattern) = self.taboo.iter().find(|p| glob(p, name.as_bytes())) {
                        let why = format!("logrotate leaves it out (taboo: {pattern})");
                        self.found.skip(self.root.shown(&entry), why);
                    } else if self
                        .root
                        .stat(&entry)
                        .is_some_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_dir())
                    {
                        // logrotate leaves out what is not a regular file; a directory silently.
                    } else {
                        self.file(&entry, false);
                    }
                }
            }
            None => self.file(path, false),
        }
        self.depth -= 1;
    }

    /// `tabooext [+] LIST` and `taboopat [+] LIST`: replace the list, or add to it.
    fn taboo(&mut self, key: &str, value: &str) {
        let (add, list) = match value.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        if !add {
            self.taboo.clear();
        }
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            if !item.is_empty() {
                self.taboo.push(match key {
                    "tabooext" => format!("*{item}"),
                    _ => item.to_owned(),
                });
            }
        }
    }
}

/// A directive's keyword (its leading letters) and its value (after blanks and an optional
/// `=`), as logrotate splits them.
fn keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(line.len());
    let value = line[end..].trim_start();
    let value = value.strip_prefix('=').unwrap_or(value).trim();
    (&line[..end], value)
}

/// Whether `name` matches the glob `pattern` (`*`, `?`; a leading `.` of `name` is matched
/// only by a `.`, as `fnmatch(FNM_PERIOD)`).
pub fn glob(pattern: &str, name: &[u8]) -> bool {
    fn from(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| from(rest, &n[i..])),
            Some((b'?', rest)) => !n.is_empty() && from(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && from(rest, &n[1..]),
        }
    }
    let p = pattern.as_bytes();
    if name.first() == Some(&b'.') && p.first() != Some(&b'.') {
        return false;
    }
    from(p, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taboo_names_are_matched_as_logrotate_matches_them() {
        let taboo = |name: &str| {
            TABOO_EXT
                .iter()
                .any(|e| glob(&format!("*{e}"), name.as_bytes()))
        };
        for name in [
            "a.dpkg-old",
            "a.rpmsave",
            "a~",
            "a,v",
            "a.bak",
            "a.rhn-cfg-tmp-x1",
        ] {
            assert!(taboo(name), "{name}");
        }
        for name in ["a", "a.conf", ".hidden", "a.old", "a.dpkg-remove"] {
            assert!(!taboo(name), "{name}");
        }
        assert_eq!(
            keyword("include /etc/logrotate.d"),
            ("include", "/etc/logrotate.d")
        );
        assert_eq!(keyword("tabooext = + .x"), ("tabooext", "+ .x"));
    }
}
