//! The rule for the names of a daemon's own commands, in one place: the server refuses to bind a
//! command whose name breaks it, and `ctl` never offers (in completion) a name that breaks it.
//!
//! A valid name is 1 to [`MAX_LEN`] ASCII letters, digits, `-` or `_`, starting with a letter:
//! one shell word that `ctl call` cannot take for an option, and that names valid counters.
//!
//! ```
//! use control_api::command_name;
//! assert_eq!(command_name::problem("flush-cache"), None);
//! assert_eq!(command_name::problem("-rf"), Some("does not start with a letter"));
//! ```

/// The longest command name, in bytes.
pub const MAX_LEN: usize = 64;

/// What is wrong with `name` as a command name, or `None` when it is valid.
pub fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_LEN {
        Some("is too long")
    } else if !name.as_bytes()[0].is_ascii_alphabetic() {
        Some("does not start with a letter")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        Some("has a character other than an ASCII letter, a digit, '-' or '_'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_a_shell_word_and_a_counter_need_them() {
        for ok in [
            "a",
            "flush-cache",
            "set_message",
            "x9",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(problem(ok), None, "{ok:?}");
        }
        for (bad, why) in [
            ("", "is empty"),
            (&"a".repeat(MAX_LEN + 1) as &str, "is too long"),
            ("9lives", "does not start with a letter"),
            ("-rf", "does not start with a letter"),
            (
                "a b",
                "has a character other than an ASCII letter, a digit, '-' or '_'",
            ),
            (
                "a;touch x",
                "has a character other than an ASCII letter, a digit, '-' or '_'",
            ),
            ("é", "does not start with a letter"),
        ] {
            assert_eq!(problem(bad), Some(why), "{bad:?}");
        }
    }
}
