//! `ssh://[USER@]HOST[:PORT]/NAME` and `--host [USER@]HOST[:PORT]`: what they may hold. Every
//! part is checked against a strict character set, so that nothing in a target can be an ssh
//! option (a HOST starting with `-`), reach the remote shell unquoted, or name a socket path.

use super::error::SshError;
use crate::error::CtlError;
use control_api::socket::validate_name;

/// The scheme of a target on another host.
pub const SCHEME: &str = "ssh://";

/// A daemon on another host, reached through ssh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The user to log in as (`-l`); ssh's default (its config, else the local user) without.
    pub user: Option<String>,
    /// A host name, an address, or a Host alias of the ssh configuration.
    pub host: String,
    /// The port (`-p`); ssh's default without.
    pub port: Option<u16>,
    /// The daemon's name there.
    pub name: String,
}

impl Remote {
    /// The target an operation names, with `--host`: `None` for a local target (a name or a
    /// path without `--host`).
    pub fn from_target(target: &str, host: Option<&str>) -> Result<Option<Remote>, CtlError> {
        let bad = |why: &str| SshError::Target {
            given: target.to_owned(),
            why: why.to_owned(),
        };
        match (target.strip_prefix(SCHEME), host) {
            (Some(_), Some(_)) => {
                Err(bad("give the host once: in the target or with --host").into())
            }
            (Some(rest), None) => {
                let (authority, name) = rest
                    .split_once('/')
                    .ok_or_else(|| bad("the daemon's NAME is missing after the host"))?;
                Remote::new(authority, name)
                    .map(Some)
                    .map_err(|why| bad(&why).into())
            }
            (None, Some(host)) if target.contains('/') => Err(bad(&format!(
                "--host {host} takes a daemon name, not a socket path (which is local)"
            ))
            .into()),
            (None, Some(host)) => Remote::new(host, target).map(Some).map_err(|why| {
                SshError::Target {
                    given: host.to_owned(),
                    why,
                }
                .into()
            }),
            (None, None) => Ok(None),
        }
    }

    fn new(authority: &str, name: &str) -> Result<Remote, String> {
        if name.contains('/') {
            return Err("only a daemon NAME may follow the host, not a path".into());
        }
        validate_name(name).map_err(|e| e.to_string())?;
        let (user, hostport) = match authority.split_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, authority),
        };
        if let Some(user) = user {
            check_user(user)?;
        }
        let (host, port) = split_port(hostport)?;
        check_host(host)?;
        Ok(Remote {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            name: name.to_owned(),
        })
    }

    /// The target as shown in output: `ssh://[USER@]HOST[:PORT]/NAME`.
    pub fn url(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{SCHEME}{user}{host}{port}/{}", self.name)
    }
}

fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then_some(()).ok_or_else(|| {
        format!("invalid user {user:?}: 1 to 32 of letters, digits and _ - ., not starting with -")
    })
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
fn split_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address opened with [ is not closed with ]")?;
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("invalid IPv6 address {v6:?}"));
        }
        match after {
            "" => return Ok((v6, None)),
            _ => (
                v6,
                after
                    .strip_prefix(':')
                    .ok_or("only :PORT may follow an IPv6 address's ]")?,
            ),
        }
    } else {
        match hostport.split_once(':') {
            None => return Ok((hostport, None)),
            Some(parts) => parts,
        }
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0 && port.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("invalid port {port:?}: a number from 1 to 65535"))?;
    Ok((host, Some(port)))
}

fn check_host(host: &str) -> Result<(), String> {
    let v6 = host.contains(':');
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && !host.starts_with('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (v6 && c == ':'));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "invalid host {host:?}: a host name, an address or an ssh Host alias, of letters, \
             digits and . - _ (an IPv6 address in [ ]), not starting with - or ."
        )
    })
}

/// One word for the remote shell: ssh joins its command's words with spaces and the remote
/// user's shell reads the line, so every word goes in single quotes, each `'` in it as `'\''`
/// and each `\` as `'\\'`. Nothing in a single-quoted word is special to a POSIX shell, bash or
/// zsh; fish reads `\'` and `\\` there as escapes, so no backslash is left inside the quotes,
/// and outside them `\'` and `\\` mean `'` and `\` to all of them.
pub fn quote(word: &str) -> String {
    let mut quoted = String::from("'");
    for c in word.chars() {
        match c {
            '\'' => quoted.push_str(r"'\''"),
            '\\' => quoted.push_str(r"'\\'"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(target: &str, host: Option<&str>) -> Result<Option<Remote>, CtlError> {
        Remote::from_target(target, host)
    }

    #[test]
    fn the_ssh_forms_read_user_host_port_and_name() {
        let r = parse("ssh://root@web1.example:2222/demo", None)
            .unwrap()
            .unwrap();
        assert_eq!(r.user.as_deref(), Some("root"));
        assert_eq!((r.host.as_str(), r.port), ("web1.example", Some(2222)));
        assert_eq!(r.name, "demo");
        assert_eq!(r.url(), "ssh://root@web1.example:2222/demo");
        let r = parse("ssh://[::1]/web", None).unwrap().unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.user.as_deref()),
            ("::1", None, None)
        );
        assert_eq!(r.url(), "ssh://[::1]/web");
        let r = parse("ssh://[fe80::1]:22/web", None).unwrap().unwrap();
        assert_eq!((r.host.as_str(), r.port), ("fe80::1", Some(22)));
        let r = parse("web", Some("admin@db2")).unwrap().unwrap();
        assert_eq!(r.url(), "ssh://admin@db2/web");
        // Local targets stay local.
        assert_eq!(parse("web", None).unwrap(), None);
        assert_eq!(parse("/run/ctl/web.sock", None).unwrap(), None);
    }

    #[test]
    fn nothing_but_a_user_a_host_a_port_and_a_name_passes() {
        for bad in [
            "ssh://",
            "ssh://host",
            "ssh://host/",
            "ssh://host/a/b",
            "ssh://host//run/ctl/web.sock",
            "ssh://-oProxyCommand=touch/web",
            "ssh://.hidden/web",
            "ssh://-l@host/web",
            "ssh://us$er@host/web",
            "ssh://host:0/web",
            "ssh://host:99999/web",
            "ssh://host:22x/web",
            "ssh://host:/web",
            "ssh://h;touch x/web",
            "ssh://h`id`/web",
            "ssh://host/we;b",
            "ssh://host/$(id)",
            "ssh://host/-web",
            "ssh://[::1/web",
            "ssh://[::1]x/web",
            "ssh://[]/web",
            "ssh://a:b:c/web",
            "ssh://h o/web",
        ] {
            let err = parse(bad, None).expect_err(bad);
            assert_eq!(err.class(), (crate::exit::Exit::Usage, "usage"), "{bad}");
        }
        for (target, host) in [
            ("ssh://a/web", "b"),
            ("/run/ctl/web.sock", "b"),
            ("web", "-oProxyCommand=x"),
            ("web", "h/x"),
        ] {
            assert!(parse(target, Some(host)).is_err(), "{target} --host {host}");
        }
    }

    #[test]
    fn quoted_words_are_one_word_each_for_every_login_shell() {
        let words = [
            "it's",
            "a b",
            "$(touch PWNED)",
            "`x`",
            "\n;",
            "",
            "\\'",
            "x\\",
            "\\\\",
            "a=x\\",
            "b=;touch PWNED;echo \\",
        ];
        let line: Vec<String> = words.iter().map(|w| quote(w)).collect();
        // The remote user's shell may be any of these (fish is installed with the test tools).
        let dir = tempfile::tempdir().unwrap();
        for shell in ["sh", "bash", "zsh", "fish"] {
            let out = std::process::Command::new(shell)
                .current_dir(dir.path())
                .args(["-c", &format!("printf '%s\\n' {}", line.join(" "))])
                .output()
                .unwrap_or_else(|e| panic!("{shell}: {e}"));
            assert!(out.status.success(), "{shell}: {out:?}");
            let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "{shell}");
            assert!(!dir.path().join("PWNED").exists(), "{shell} ran a word");
        }
    }
}
