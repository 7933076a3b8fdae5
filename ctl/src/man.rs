//! `ctl man`: the man page. clap_mangen's `render` points to a `ctl-OP(1)` page per operation
//! (pages that do not exist), puts the exit codes under "EXTRA" and shows `<subcommands>` as
//! the synopsis; so its sections are composed here, in the usual order, with the ones an
//! operator looks for (SYNOPSIS with every form, EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES,
//! SEE ALSO) written out.

use crate::exit::EXIT_CODES_HELP;
use std::io;

/// The pages SEE ALSO refers to. Only real ones, from packages a machine running `ctl`'s jobs
/// has (logrotate, systemd, openssh-client, man-pages); the man page test checks each with
/// `man -w`.
pub const SEE_ALSO: &[&str] = &[
    "logrotate(8)",
    "systemd.service(5)",
    "systemd.exec(5)",
    "unix(7)",
    "signal(7)",
    "proc(5)",
    "ssh(1)",
];

/// Renders the whole page.
pub fn render(cmd: clap::Command) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    page.extend_from_slice(synopsis(&cmd).as_bytes());
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut text = String::new();
    commands(&cmd, &mut text);
    text.push_str(TARGETS);
    exit_status(&mut text);
    text.push_str(JSON);
    text.push_str(ENVIRONMENT);
    text.push_str(FILES);
    text.push_str(EXAMPLES);
    text.push_str(".SH \"SEE ALSO\"\n");
    text.push_str(&escape(&SEE_ALSO.join(", ")));
    text.push('\n');
    page.extend_from_slice(text.as_bytes());
    Ok(page)
}

/// Escapes text for roff: backslashes, hyphens meant as such, and a leading dot or quote,
/// which would make the line a request.
fn escape(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The operations in the order of `ctl --help`, without the hidden ones and clap's `help`.
fn operations(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    subs.sort_by_key(|s| s.get_display_order());
    subs
}

/// An operation's arguments as the synopsis and COMMANDS show them: positionals (`[OPT]` when
/// optional, `...` when repeated), then its own options, each with its value.
fn arguments(sub: &clap::Command) -> Vec<String> {
    let value = |a: &clap::Arg| {
        a.get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| a.get_id().to_string().to_uppercase())
    };
    let positionals = sub.get_positionals().map(|a| {
        let repeated = a.get_num_args().is_some_and(|n| n.max_values() > 1);
        let name = format!(
            "\\fI{}\\fR{}",
            escape(&value(a)),
            if repeated { "..." } else { "" }
        );
        if a.is_required_set() {
            name
        } else {
            format!("[{name}]")
        }
    });
    let options = sub
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set() && !a.is_global_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            let takes_value = a.get_action().takes_values();
            Some(if takes_value {
                format!(
                    "[\\fB\\-\\-{}\\fR \\fI{}\\fR]",
                    escape(long),
                    escape(&value(a))
                )
            } else {
                format!("[\\fB\\-\\-{}\\fR]", escape(long))
            })
        });
    positionals.chain(options).collect()
}

/// SYNOPSIS: every form ctl is called in, one per line. `[OPTIONS]` (the global options) where
/// the operation uses any of them.
fn synopsis(cmd: &clap::Command) -> String {
    let globals: Vec<&str> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().as_str())
        .collect();
    let mut out = String::from(".SH SYNOPSIS\n");
    for (i, sub) in operations(cmd).into_iter().enumerate() {
        // `cli::command` gives each operation a hidden copy of the globals it does not use.
        let unused = sub
            .get_arguments()
            .filter(|a| a.is_hide_set() && globals.contains(&a.get_id().as_str()))
            .count();
        let options = if unused < globals.len() {
            " [\\fIOPTIONS\\fR]"
        } else {
            ""
        };
        if i > 0 {
            out.push_str(".br\n");
        }
        out.push_str(&format!(
            "\\fBctl\\fR{options} \\fB{}\\fR {}\n",
            escape(sub.get_name()),
            arguments(sub).join(" ")
        ));
    }
    out
}

/// COMMANDS: each operation with its arguments and its full description, in this page (there
/// is no page per operation).
fn commands(cmd: &clap::Command, out: &mut String) {
    out.push_str(".SH COMMANDS\n");
    // In the order of `ctl --help`; clap's own `help` is left out, the page is the help.
    for sub in operations(cmd) {
        out.push_str(&format!(
            ".TP\n\\fBctl {}\\fR {}\n",
            escape(sub.get_name()),
            arguments(sub).join(" ")
        ));
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        for (i, p) in about.split("\n\n").enumerate() {
            if i > 0 {
                out.push_str(".IP\n");
            }
            out.push_str(&escape(p.trim()));
            out.push('\n');
        }
    }
}

/// EXIT STATUS: the table `ctl --help` shows, one tagged paragraph per code.
fn exit_status(out: &mut String) {
    out.push_str(".SH \"EXIT STATUS\"\n");
    let mut entries: Vec<(&str, String)> = Vec::new();
    for line in EXIT_CODES_HELP.lines().skip(1) {
        let trimmed = line.trim_start();
        match (trimmed.split_once("  "), entries.last_mut()) {
            // Kept with two spaces as in --help, so the same text can be looked for.
            (Some((code, what)), _) if code.parse::<u8>().is_ok() => {
                entries.push((code, what.trim().to_owned()))
            }
            // A continuation line of the previous code.
            (_, Some((_, what))) => {
                what.push(' ');
                what.push_str(trimmed);
            }
            _ => {}
        }
    }
    for (code, what) in entries {
        out.push_str(&format!(".TP\n.B {code}\n{}\n", escape(&what)));
    }
}

const TARGETS: &str = r#".SH TARGETS
A TARGET containing a slash is a socket path, used as given. Any other is a daemon name, looked
up where a daemon of that name listens: /run/ctl/NAME.sock (a daemon run as root), then
/run/NAME/ctl.sock (a daemon run as its own user, in its RuntimeDirectory), and for a caller
other than root $XDG_RUNTIME_DIR/ctl/NAME.sock. A socket found by name is used only if no other
user could have put it there: its directory is root's or NAME's owner's and not writable by
others, it is not a symbolic link, and the daemon that answers is root or that owner and says
it is NAME; else exit 77.
.PP
When no socket answers, what the daemon left tells what became of it: nothing (it was stopped:
exit 69, or 0 with \-\-missing\-ok); a socket nobody accepts on or a lock file nobody holds
(it died: exit 69 even with \-\-missing\-ok); a lock file (NAME.sock.lock) that a process holds
(it runs, but listens somewhere else, or is binding its socket again: exit 69 naming its pid
and socket, even with \-\-missing\-ok).
.PP
A TARGET ssh://[USER@]HOST[:PORT]/NAME, or \fB\-\-host\fR [USER@]HOST[:PORT] with a NAME, is the
daemon NAME on another host. ctl runs ssh(1) with an argument vector (\-T, BatchMode=yes,
ConnectTimeout from \-\-timeout, \-l USER, \-p PORT) and, on that host, ctl \-\-json with the
operation, every word single\-quoted for the remote shell; the ctl there does it as the user
ssh logged in as, whose credentials the daemon there judges. Its one JSON document (at most
1 MiB) is shown as a local reply is, with the same exit code; anything else is exit 76. NAME
follows the name rule; USER, HOST and PORT are checked as strictly, and a socket path is not
taken. At the deadline ssh is stopped: exit 75. ssh that cannot reach the host: 69
(unreachable); no ctl there: 69 (no_ctl); another failure of ssh: 69 (ssh); a login or host key
ssh refused: 77 (ssh_denied, host_key).
"#;

pub const JSON: &str = r#".SH "JSON OUTPUT"
With \fB\-\-json\fR every operation prints one document, on one line:
.PP
.RS
.nf
{"ok": true, "exit_code": 0, "operation": "reload", "target": "web",
 "socket": "/run/ctl/web.sock",
 "daemon": {"name": "web", "version": "2.1.0", "pid": 812, "protocol": 1},
 "result": {...the reply...}}
.fi
.RE
.PP
On failure "ok" is false and "error" stands instead of "result":
{"kind": K, "message": "...", "detail": the daemon's typed error or null}, where K is one of
usage, no_daemon, died, not_listening, wrong_daemon, too_large, untrusted, denied, timeout,
incompatible, protocol, unsupported, failed, busy, shutting_down, bad_arguments, output,
unrecognized, from \fBctl signal\fR not_sent, killed, not_reopened, bad_pid_file,
no_process, too_many, and for a target on another host unreachable, ssh_denied, host_key, no_ctl, ssh
(a remote ctl's own failure keeps its kind). A command line ctl does not understand is such a document too (kind usage, exit
2), wherever \-\-json is on it. With \-\-missing\-ok and no daemon, "ok" is true and
"skipped" says what was not there. \fBctl list\fR prints {"socket_dir", "socket_dirs",
"daemons": [{"name", "socket", "state", "status" or "error"}]}, each "status" as \fBctl status\fR
gives it. \fBctl doctor\fR puts {"root", "findings": [{"file", "line", "text", "command",
"signal", "target", "pids", "verdict", "message", "advice", ...}], "read", "skipped",
"stopped": [{"file", "line", "why"}] (where a bound on what one run judges was reached)} in
"result", with "ok" false and exit code 1 when a finding's verdict is would_kill or
would_stop. \fBctl top\fR, piped or with \-\-json, prints one document per refresh, one line
each: {"time_unix_ms", "interval_ms", "daemons": [{"name", "socket", "state", "generation",
"in_flight", "calls_per_second", "errors_per_second", "last": {"operation", "ok", "message",
"ago_ms"}, "error"}]}, a value not known being null. Fields may be added, never removed.
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
.B CTL_SOCKET_DIR
Look a daemon name up as $CTL_SOCKET_DIR/NAME.sock only, and list only that directory.
.TP
.B CTL_RUN_DIR
The directory that holds the system\-wide places (/run by default): names are looked up in
$CTL_RUN_DIR/ctl/ and $CTL_RUN_DIR/NAME/ instead.
.TP
.B XDG_RUNTIME_DIR
For a user other than root, names are also looked up in $XDG_RUNTIME_DIR/ctl/, where a daemon
run by that user puts its socket.
.TP
.B CTL_SSH
The ssh command for ssh:// targets, split into words at spaces (not by a shell); ssh by
default, e.g. "ssh \-F /etc/ctl/ssh_config".
.TP
.B CTL_REMOTE_CTL
The ctl command run on the other host, split the same way; ctl (on the remote PATH) by
default.
.TP
.B NO_COLOR
When set and not empty, no colour.
.TP
.B CLICOLOR
0: no colour.
.TP
.B CLICOLOR_FORCE
Set and not 0: colour even when stdout is not a terminal (unless NO_COLOR is set).
.TP
.B TERM
Colour only on a terminal whose TERM is set and not \fBdumb\fR.
"#;

const FILES: &str = r#".SH FILES
.TP
.I /usr/share/doc/ctl/operators.md
The operators' guide: all of this at length, with logrotate, systemd and fleets.
.TP
.I /run/ctl/NAME.sock
The socket of a daemon running as root.
.TP
.I /run/NAME/ctl.sock
The socket of a daemon running as its own user, in the runtime directory systemd creates with
RuntimeDirectory=NAME.
.TP
.I $XDG_RUNTIME_DIR/ctl/NAME.sock
The socket of a daemon run by an ordinary user.
.TP
.I NAME.sock.lock
Next to each socket: held by the daemon while it runs, so a second one with the same name
refuses to start, and a stale socket is told from a live one.
"#;

const EXAMPLES: &str = r#".SH EXAMPLES
Reopen the logs after logrotate(8) renamed them, in /etc/logrotate.d/mydaemon (the stanza
shipped as /usr/share/doc/ctl/examples/mydaemon.logrotate); a daemon that was stopped is no
failure, one that died is:
.PP
.RS
.nf
/var/log/mydaemon/*.log {
    daily
    rotate 14
    missingok
    sharedscripts
    create 0640 mydaemon adm
    postrotate
        /usr/bin/ctl \-\-timeout 20s \-\-quiet \-\-missing\-ok rotate mydaemon
    endscript
}
.fi
.RE
.PP
Reload from systemd (systemctl reload), in the unit's [Service] section; a refused
configuration makes the reload fail and the old one stays active. ExecReload= runs as the
unit's User=, whom the daemon lets reload (its own uid may do everything):
.PP
.RS
.nf
ExecReload=/usr/bin/ctl \-\-timeout 60s reload mydaemon
.fi
.RE
.PP
Validate an edited configuration, and apply it only if it is valid (check prints what the
reload will change):
.PP
.RS
.nf
ctl check mydaemon && ctl reload mydaemon
.fi
.RE
.PP
See who reloaded or rotated the daemon lately, and who was refused (the system's log has the
same calls, tagged ctl\-control):
.PP
.RS
.nf
ctl history mydaemon \-\-limit 20
journalctl \-t ctl\-control \-\-since today
.fi
.RE
.PP
Hand the daemon's counters to node_exporter's textfile collector, renamed into place so it never
reads half a file:
.PP
.RS
.nf
ctl counters \-\-prometheus mydaemon > "$DIR/mydaemon.prom.$$" &&
    mv "$DIR/mydaemon.prom.$$" "$DIR/mydaemon.prom"
.fi
.RE
.PP
Signal a daemon that has no control socket, only if it handles SIGHUP, and wait until it has
reopened its log, in place of kill \-HUP $(cat /run/nginx.pid):
.PP
.RS
.nf
postrotate
    ctl signal HUP \-\-pidfile /run/nginx.pid \-\-verify\-reopen /var/log/nginx/access.log
endscript
.fi
.RE
.PP
Before a release, find the lines in logrotate, cron and systemd units that would kill a daemon
(exit 1 if one would; nothing is sent or run); on a container's tree, read its files instead:
.PP
.RS
.nf
ctl doctor
ctl \-\-json doctor \-\-root /var/lib/machines/web
.fi
.RE
.PP
Reload a daemon on another host, as the user deploy there, whom its policy judges:
.PP
.RS
.nf
ctl \-\-timeout 20s reload ssh://deploy@web1/web
.fi
.RE
.PP
Watch every daemon live, refreshed every second (q quits), or only two of them, half a
second apart; or take ten readings of every daemon as JSON lines:
.PP
.RS
.nf
ctl top
ctl top \-\-interval 500ms web db
ctl top \-\-count 10 > readings.jsonl
.fi
.RE
.PP
Drain before a stop, giving in\-flight work two minutes:
.PP
.RS
.nf
ExecStop=/usr/bin/ctl \-\-timeout 2m drain mydaemon
.fi
.RE
"#;
