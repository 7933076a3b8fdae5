//! systemd service units: the `ExecReload=` and `ExecStop=` lines of each `NAME.service` in
//! [`UNIT_DIRS`] (the first directory that has a unit of that name wins, one linked to
//! `/dev/null` is masked), then of its drop-ins `NAME.service.d/*.conf` from every directory
//! (a drop-in's name in an earlier directory hides the same name in a later one; read in name
//! order), an empty `ExecReload=` clearing what came before, as systemd does. The prefixes
//! `-`, `@`, `+`, `!`, `!!` and `:` are taken off (`@` also drops the `argv[0]` word after the
//! path). Lines continued with a trailing `\` are joined.

use super::files::{Root, Unread};
use super::{Found, Script, Source};
use crate::doctor::shell::Syntax;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where units are looked for, the one that wins first.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// The keys read, and what a `ctl` operation would do instead of each.
const KEYS: &[(&str, &str)] = &[("ExecReload", "reload"), ("ExecStop", "drain")];

/// Reads the units under `root` into `found`.
pub fn read(root: &Root, found: &mut Found) {
    // unit name -> (directory, name), first directory winning; directories that are one
    // (`/lib` linked to `/usr/lib`) are read once.
    let mut units: BTreeMap<OsString, PathBuf> = BTreeMap::new();
    let mut seen_dirs = HashSet::new();
    let mut dirs = Vec::new();
    for dir in UNIT_DIRS {
        let Some(stat) = root.stat(Path::new(dir)) else {
            continue;
        };
        if !seen_dirs.insert((stat.st_dev, stat.st_ino)) {
            continue;
        }
        dirs.push(Path::new(dir));
        for name in root.list(Path::new(dir)).unwrap_or_default() {
            if name.to_string_lossy().ends_with(".service") {
                units
                    .entry(name.clone())
                    .or_insert_with(|| Path::new(dir).join(&name));
            }
        }
    }
    // An alias (`sshd.service -> ssh.service`) is the same unit: read once, by its first name.
    let mut seen_files = HashSet::new();
    for (name, path) in units {
        let stat = root.stat(&path);
        if stat.is_some_and(|s| !seen_files.insert((s.st_dev, s.st_ino))) {
            continue;
        }
        unit(root, &name.to_string_lossy(), &path, &dirs, found);
    }
}

/// One unit and its drop-ins.
fn unit(root: &Root, name: &str, path: &Path, dirs: &[&Path], found: &mut Found) {
    let mut lines: BTreeMap<&str, Vec<Script>> = BTreeMap::new();
    let masked = root
        .stat(path)
        .is_some_and(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_char_device());
    if masked {
        return;
    }
    let mut files = vec![path.to_owned()];
    let mut drop_ins: BTreeMap<OsString, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let d = dir.join(format!("{name}.d"));
        for entry in root.list(&d).unwrap_or_default() {
            if entry.to_string_lossy().ends_with(".conf") {
                drop_ins
                    .entry(entry.clone())
                    .or_insert_with(|| d.join(&entry));
            }
        }
    }
    files.extend(drop_ins.into_values());
    for file in files {
        let shown = root.shown(&file);
        let text = match root.read(&file) {
            Ok(f) => f.text,
            Err(Unread::Missing) => continue,
            Err(why) => {
                found.skip(shown, why.to_string());
                continue;
            }
        };
        found.read.push(shown.clone());
        assignments(&text, &shown, name, &mut lines);
    }
    found.scripts.extend(lines.into_values().flatten());
}

/// The [`KEYS`] assignments of `[Service]` in a unit file's `text`.
fn assignments(
    text: &str,
    shown: &Path,
    unit: &str,
    lines: &mut BTreeMap<&'static str, Vec<Script>>,
) {
    let mut section = String::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let (start, mut line) = match pending.take() {
            Some((start, before)) => (start, before + " " + raw.trim()),
            None => (n + 1, raw.trim().to_owned()),
        };
        if line.ends_with('\\') {
            line.pop();
            pending = Some((start, line));
            continue;
        }
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let Some(&(key, purpose)) = KEYS.iter().find(|(k, _)| *k == key.trim()) else {
            continue;
        };
        if section != "Service" {
            continue;
        }
        let value = value.trim();
        let list = lines.entry(key).or_default();
        if value.is_empty() {
            list.clear();
            continue;
        }
        let mut script = Script::new(Source::Systemd, shown.to_owned(), Syntax::Systemd);
        script.unit = Some(unit.to_owned());
        script.purpose = purpose;
        script.shown_text = Some(line.clone());
        script.lines.push((start, command(value)));
        list.push(script);
    }
}

/// An `Exec` value without its prefixes; `@PATH ARGV0 ARGS` becomes `PATH ARGS`.
fn command(value: &str) -> String {
    let prefixes = value
        .find(|c: char| !"-@+!:".contains(c))
        .unwrap_or(value.len());
    let (flags, rest) = value.split_at(prefixes);
    if !flags.contains('@') {
        return rest.to_owned();
    }
    let mut words = rest.splitn(3, char::is_whitespace);
    let path = words.next().unwrap_or_default();
    let _argv0 = words.next();
    format!("{path} {}", words.next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_come_off_and_an_empty_assignment_clears() {
        assert_eq!(
            command("-/bin/kill -HUP $MAINPID"),
            "/bin/kill -HUP $MAINPID"
        );
        assert_eq!(command("@/bin/kill kill -HUP 1"), "/bin/kill -HUP 1");
        assert_eq!(command("!!/bin/kill -HUP 1"), "/bin/kill -HUP 1");
        let mut lines = BTreeMap::new();
        let text = "[Unit]\nExecReload=/bin/kill -HUP 1\n[Service]\nExecReload=/bin/kill \\\n  -HUP $MAINPID\nExecStop=/bin/kill -QUIT $MAINPID\n";
        assignments(text, Path::new("/u"), "u.service", &mut lines);
        let reload = &lines["ExecReload"];
        assert_eq!(reload.len(), 1);
        assert_eq!(
            reload[0].lines,
            [(4, "/bin/kill  -HUP $MAINPID".to_owned())]
        );
        assignments(
            "[Service]\nExecReload=\n",
            Path::new("/d"),
            "u.service",
            &mut lines,
        );
        assert!(lines["ExecReload"].is_empty());
        assert_eq!(lines["ExecStop"].len(), 1);
    }
}
