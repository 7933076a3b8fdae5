//! Text that someone else chose (a caller's command or argument name, a file name in a directory
//! another user can write, a string in a daemon's reply), made safe to put in one log line or
//! one row of a terminal.
//!
//! A newline in such a string would let its author forge whole log lines, dated as they like; a
//! carriage return or an escape sequence would let them rewrite what an operator sees; a bidi
//! override (U+202E) would show `exe.txt` as `txt.exe`. [`escape`] writes each of those as a
//! visible escape instead, so the text stays on its line and reads as what it is. A backslash is
//! doubled, so an escape in the output always came from here, never from the text.
//!
//! Both sides use it: `control-server` for every log line with a caller's or a file's string in
//! it, `ctl` for every string of a daemon's reply in its human output.
//!
//! ```
//! use control_api::text::{escape, Escaped};
//!
//! assert_eq!(escape("rotate"), "rotate");
//! assert_eq!(escape("x\n2026-12-06T00:00:00Z  INFO forged"), "x\\n2026-12-06T00:00:00Z  INFO forged");
//! assert_eq!(escape("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
//! assert_eq!(format!("name={}", Escaped("a\tb\\c")), "name=a\\tb\\\\c");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// Whether `c` must be escaped: control characters (C0, DEL, C1), the backslash, and the
/// invisible characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// zero-width characters, line and paragraph separators, the byte-order mark).
pub fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `text` with every character [`needs_escape`] names written as a visible escape (`\n`, `\r`,
/// `\t`, `\\`, `\u{..}`); borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if text.contains(needs_escape) {
        Cow::Owned(Escaped(text).to_string())
    } else {
        Cow::Borrowed(text)
    }
}

/// A path, as [`escape`] writes text (bytes that are not UTF-8 become U+FFFD).
pub fn escape_path(path: &Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

/// Formats its text escaped, without allocating: for log fields (`name = %Escaped(&name)`) and
/// `format!` arguments.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().expect("found a char at `at`");
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `err` and its causes, outermost first, on one line (`a: b: c`): how an error is told in a
/// log line or a message, where its chain would otherwise be lost.
pub fn chain(err: &dyn std::error::Error) -> String {
    let causes: Vec<String> = std::iter::successors(Some(err), |&e| e.source())
        .map(ToString::to_string)
        .collect();
    causes.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "rotate", "/run/ctl/web.sock", "héllo wörld", "日本語"] {
            assert!(matches!(escape(s), Cow::Borrowed(b) if b == s));
        }
    }

    #[test]
    fn nothing_that_moves_the_cursor_or_reorders_text_survives() {
        let hostile =
            "a\nb\rc\u{1b}[2Jd\u{7f}e\u{9b}f\u{202e}g\u{2066}h\u{200b}i\u{2028}j\u{feff}k\\";
        let out = escape(hostile);
        assert!(
            !out.contains(|c: char| needs_escape(c) && c != '\\'),
            "{out}"
        );
        assert_eq!(
            out,
            "a\\nb\\rc\\u{1b}[2Jd\\u{7f}e\\u{9b}f\\u{202e}g\\u{2066}h\\u{200b}i\\u{2028}j\\u{feff}k\\\\"
        );
    }

    #[test]
    fn an_escape_in_the_output_always_came_from_escaping() {
        // The text "\n" (backslash, n) and a real newline must not look the same.
        assert_ne!(escape("\\n"), escape("\n"));
        assert_eq!(escape("\\n"), "\\\\n");
    }

    #[test]
    fn paths_that_are_not_utf8_are_still_one_line() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/w\xff\n;x.sock"));
        assert_eq!(escape_path(p), "/tmp/w\u{fffd}\\n;x.sock");
    }
}
