//! What an operator reaches for: `ctl list`, `log-level`, completions, the man page.

use crate::sandbox_with_daemon;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use tests::{bins, run, Sandbox};

fn stale_socket(sb: &Sandbox, name: &str) {
    let path = sb.socket_dir().join(format!("{name}.sock"));
    tests::make_stale_socket(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[test]
fn list_shows_live_daemons_and_dead_sockets_and_fails_for_the_dead() {
    let sb = Sandbox::new();
    let a = crate::start_demo(&sb, "alpha", 50, &[]);
    let b = crate::start_demo(&sb, "bravo", 50, &[]);
    stale_socket(&sb, "crashed");
    sb.ctl(&["drain", "bravo"]).expect_code(0);

    // Every daemon listed; the dead one fails the health check as `ctl status` would (69).
    let run = sb.ctl(&["list"]).expect_code(69);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert!(
        lines[0].starts_with("alpha") && lines[0].contains(&format!("pid {}", a.pid())),
        "{run}"
    );
    assert!(lines[0].contains("serving"), "{run}");
    assert!(
        lines[1].starts_with("bravo") && lines[1].contains("draining"),
        "{run}"
    );
    assert!(
        lines[2].starts_with("crashed") && lines[2].contains("died"),
        "{run}"
    );

    let doc = sb.ctl(&["--json", "list"]).expect_code(69).json();
    let daemons = doc["daemons"].as_array().unwrap();
    assert_eq!(daemons.len(), 3);
    assert_eq!(daemons[0]["state"], "serving");
    assert_eq!(daemons[0]["status"]["pid"], a.pid());
    assert_eq!(daemons[1]["status"]["pid"], b.pid());
    assert_eq!(daemons[2]["state"], "died");
    // Without the dead one, the same listing is healthy: draining is a state an operator chose.
    std::fs::remove_file(sb.socket_dir().join("crashed.sock")).unwrap();
    sb.ctl(&["list"]).expect_code(0);
}

/// Proof that `ctl list` asks the daemons at once, from what the daemons see rather than from
/// a stopwatch: five listeners that accept and never answer are all connected to at one
/// moment, none of them let go yet. Asked one after another, the first would be let go (at its
/// deadline) before the second is connected to.
#[test]
fn list_asks_every_daemon_at_once() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let listeners: Vec<std::os::unix::net::UnixListener> = (0..5)
        .map(|i| {
            let l = std::os::unix::net::UnixListener::bind(
                sb.socket_dir().join(format!("silent{i}.sock")),
            )
            .unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect();
    let mut list = Command::new(&bins().ctl)
        .args(["--timeout", "10s", "list"])
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut held: Vec<Option<std::os::unix::net::UnixStream>> = (0..5).map(|_| None).collect();
    let all_at_once = tests::wait_for("ctl list to connect to every daemon", tests::WAIT, || {
        for (slot, l) in held.iter_mut().zip(&listeners) {
            if slot.is_none() {
                *slot = l.accept().ok().map(|(s, _)| s);
            }
        }
        let let_go = held.iter().flatten().any(tests::peer_hung_up);
        if let_go || list.try_wait().unwrap().is_some() {
            return Some(false);
        }
        held.iter().all(Option::is_some).then_some(true)
    });
    let _ = list.kill();
    let _ = list.wait();
    let connected = held.iter().filter(|s| s.is_some()).count();
    assert!(
        all_at_once,
        "ctl list let a daemon go with {connected} of 5 connected: one after another"
    );
}

#[test]
fn list_is_a_health_check_bounded_for_a_stopped_daemon_among_three() {
    use rustix::process::Signal;
    let sb = Sandbox::new();
    let _a = crate::start_demo(&sb, "alpha", 50, &[]);
    let b = crate::start_demo(&sb, "bravo", 50, &[]);
    let _c = crate::start_demo(&sb, "charlie", 50, &[]);
    b.signal(Signal::STOP);
    // Each daemon has 2 s, all at once: far less than the 30 s an operation waits, which is
    // what a listing took before. The bound here only keeps a regression from hanging.
    let list = |args: &[&str]| {
        tests::run_within(
            Command::new(&bins().ctl)
                .args(args)
                .env("CTL_SOCKET_DIR", sb.socket_dir()),
            std::time::Duration::from_secs(20),
        )
    };
    let run = list(&["list"]).expect_code(75);
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {run}"))
            .to_owned()
    };
    assert!(line("alpha").contains("serving"), "{run}");
    assert!(line("bravo").contains("hung"), "{run}");
    assert!(line("charlie").contains("serving"), "{run}");
    let doc = list(&["--json", "--timeout", "500ms", "list"])
        .expect_code(75)
        .json();
    assert_eq!(
        tests::list_states(&doc),
        [
            ("alpha", "serving"),
            ("bravo", "hung"),
            ("charlie", "serving")
        ],
        "{doc}"
    );
    b.signal(Signal::CONT);
    list(&["list"]).expect_code(0);
}

#[test]
fn list_under_a_low_descriptor_limit_shows_every_daemon_as_it_is() {
    use std::os::unix::process::CommandExt;
    // Twenty sockets that accept and never answer (hung), and one live daemon listed last:
    // asked all at once, ctl would run out of descriptors and show the live one as gone.
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let _hung: Vec<_> = (0..20)
        .map(|i| {
            std::os::unix::net::UnixListener::bind(sb.socket_dir().join(format!("h{i:02}.sock")))
                .unwrap()
        })
        .collect();
    let zulu = crate::start_demo(&sb, "zulu", 50, &[]);
    let limit = rustix::process::Rlimit {
        current: Some(24),
        maximum: Some(24),
    };
    let mut cmd = Command::new(&bins().ctl);
    cmd.args(["--json", "--timeout", "1s", "list"])
        .env("CTL_SOCKET_DIR", sb.socket_dir());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    let run = tests::run_within(&mut cmd, std::time::Duration::from_secs(60)).expect_code(75);
    let doc = run.json();
    let states = tests::list_states(&doc);
    assert_eq!(states.len(), 21, "{run}");
    assert_eq!(states[20], ("zulu", "serving"), "{run}");
    assert_eq!(doc["daemons"][20]["status"]["pid"], zulu.pid(), "{run}");
    for (name, state) in &states[..20] {
        assert_eq!(*state, "hung", "{name}: {run}");
    }
}

#[test]
fn list_as_another_user_shows_refused_sockets_as_such() {
    if !tests::require_root() {
        return;
    }
    let sb = Sandbox::new();
    sb.open_to_other_users();
    let open = ["--socket-mode", "666", "--allow-read-only-uid", "65534"];
    let _a = crate::start_demo(&sb, "alpha", 50, &open);
    let _b = crate::start_demo(&sb, "bravo", 50, &open);
    let _c = crate::start_demo(&sb, "closed", 50, &[]); // 0600: the kernel refuses nobody
    let _d = crate::start_demo(&sb, "policy", 50, &["--socket-mode", "666"]); // the daemon refuses nobody
    stale_socket(&sb, "crashed");

    // Not serving nobody: the first one that is not, `closed`, gives the code (77).
    let run = sb.ctl_as_nobody(&["--json", "list"]).expect_code(77);
    let doc = run.json();
    let states = tests::list_states(&doc);
    assert_eq!(
        states,
        [
            ("alpha", "serving"),
            ("bravo", "serving"),
            ("closed", "denied"),
            ("crashed", "died"),
            ("policy", "denied"),
        ],
        "{run}"
    );
}

#[test]
fn status_shows_fields_the_daemon_adds() {
    let (sb, _daemon) = sandbox_with_daemon("fields", 50, &[]);
    let run = sb.ctl(&["status", "fields"]).expect_code(0);
    // Aligned `name value` rows, including the daemon's own fields (the longest name is
    // lines_per_second).
    assert!(run.stdout.contains("\n  message          alpha"), "{run}");
    assert!(run.stdout.contains("\n  reload_runs      0"), "{run}");
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal: {run}"
    );
    let doc = sb
        .ctl(&["--json", "status", "fields"])
        .expect_code(0)
        .json();
    assert_eq!(doc["result"]["fields"]["interval"], "50ms");
}

#[test]
fn log_level_reads_sets_and_refuses_bad_filters() {
    let (sb, daemon) = sandbox_with_daemon("lvl", 50, &[]);
    let run = sb.ctl(&["log-level", "lvl"]).expect_code(0);
    assert!(run.stdout.contains("log filter is `info`"), "{run}");

    let run = sb
        .ctl(&["log-level", "lvl", "debug,tarpc=warn"])
        .expect_code(0);
    assert!(
        run.stdout.contains("now `tarpc=warn,debug` (was `info`)"),
        "{run}"
    );
    // The new filter is live: debug lines appear in the daemon's log.
    sb.ctl(&["status", "lvl"]).expect_code(0);
    tests::wait_for("a debug line in the log", tests::WAIT, || {
        daemon.log().contains("DEBUG").then_some(())
    });

    let run = sb
        .ctl(&["log-level", "lvl", "my_daemon=loud"])
        .expect_code(1);
    assert!(run.stderr.contains("log filter refused"), "{run}");
    assert!(run.stderr.contains("my_daemon=loud"), "{run}");
    let doc = sb
        .ctl(&["--json", "log-level", "lvl"])
        .expect_code(0)
        .json();
    assert_eq!(
        doc["result"]["filter"], "tarpc=warn,debug",
        "the old filter is kept"
    );
    daemon.assert_alive();
}

#[test]
fn log_level_on_a_daemon_built_without_it_exits_3() {
    let (sb, daemon) = sandbox_with_daemon("nolvl", 50, &["--disable", "log-level"]);
    let run = sb.ctl(&["log-level", "nolvl", "debug"]).expect_code(3);
    assert!(run.stderr.contains("does not support `log-level`"), "{run}");
    sb.ctl(&["status", "nolvl"]).expect_code(0);
    daemon.assert_alive();
}

#[test]
fn bash_completions_are_valid_bash() {
    let sb = Sandbox::new();
    let script = sb.ctl(&["completions", "bash"]).expect_code(0).stdout;
    assert!(script.contains("log-level"), "completes the operations");
    let path = sb.path("ctl.bash");
    std::fs::write(&path, &script).unwrap();
    run(Command::new("bash").arg("-n").arg(&path)).expect_code(0);
    for shell in ["zsh", "fish"] {
        assert!(!sb
            .ctl(&["completions", shell])
            .expect_code(0)
            .stdout
            .is_empty());
    }
}

#[test]
fn the_man_page_has_the_usual_sections_and_refers_only_to_real_pages() {
    let sb = Sandbox::new();
    let page = sb.ctl(&["man"]).expect_code(0).stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH ctl"),
        "not roff: {}",
        &page[..80.min(page.len())]
    );
    // Every example block is closed before the next opens: an unclosed `.nf` sets the rest of
    // the page as written, an unclosed `.RS` indents it.
    let (mut filled, mut indent) = (true, 0);
    for (n, line) in page.lines().enumerate() {
        match line {
            ".nf" => assert!(
                std::mem::replace(&mut filled, false),
                "line {n}: .nf in .nf"
            ),
            ".fi" => assert!(!std::mem::replace(&mut filled, true), "line {n}: .fi alone"),
            ".RS" => indent += 1,
            ".RE" => indent -= 1,
            _ => {}
        }
        assert!((0..=1).contains(&indent), "line {n}: .RS depth {indent}");
    }
    assert!(filled && indent == 0, "a block is left open at the end");
    let path = sb.path("ctl.1");
    std::fs::write(&path, &page).unwrap();
    let rendered = run(Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat"))
    .expect_code(0)
    .stdout;
    // Section headings are the lines man prints at the left margin.
    let headings: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with("ctl("))
        .map(str::trim_end)
        .collect();
    let wanted = [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "TARGETS",
        "EXIT STATUS",
        "JSON OUTPUT",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ];
    assert_eq!(headings, wanted, "{rendered}");
    // A section's text: its lines up to the next heading.
    let section = |name: &str| -> String {
        rendered
            .lines()
            .skip_while(|l| l.trim_end() != name)
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        section("COMMANDS").contains("ctl log-level TARGET [FILTER]"),
        "{rendered}"
    );
    // Every form ctl is called in, not clap's `<subcommands>`: one line per operation, global
    // options only where the operation uses them.
    let synopsis = section("SYNOPSIS");
    let forms: Vec<&str> = synopsis
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for form in [
        "ctl [OPTIONS] status TARGET",
        "ctl [OPTIONS] check TARGET",
        "ctl [OPTIONS] counters TARGET [PREFIX] [--prometheus]",
        "ctl [OPTIONS] log-level TARGET [FILTER]",
        "ctl [OPTIONS] call TARGET COMMAND [KEY=VALUE...] [--args JSON]",
        "ctl [OPTIONS] list",
        "ctl [OPTIONS] top [NAME...] [--interval DURATION] [--count N]",
        "ctl [OPTIONS] signal SIGNAL [--pidfile PATH] [--name NAME] [--force] [--verify-reopen LOG]",
        "ctl completions SHELL",
        "ctl man",
    ] {
        assert!(forms.contains(&form), "{form:?} missing:\n{synopsis}");
    }
    assert!(!synopsis.contains("subcommands"), "{synopsis}");
    assert!(!synopsis.contains("__complete"), "hidden: {synopsis}");
    assert_eq!(
        forms.iter().filter(|f| f.starts_with("ctl ")).count(),
        forms.len(),
        "one form per line: {synopsis}"
    );
    // What each code and state means, in words that survive man's line filling.
    let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let exit = words(section("EXIT STATUS"));
    assert!(
        exit.contains(
            "69 no daemon there: stopped (no socket), or died (a stale socket or lock file \
             left), or running but not where ctl looks"
        ),
        "{rendered}"
    );
    assert!(
        words(section("OPTIONS")).contains(
            "--missing-ok Exit 0 when the daemon was stopped (it left no socket or lock file); \
             one that died (a stale socket or lock file left), runs elsewhere, or fails still fails"
        ),
        "{rendered}"
    );
    let commands = words(section("COMMANDS"));
    for state in [
        "serving;",
        "draining (",
        "stopping (",
        "died (",
        "hung (",
        "denied (",
        "untrusted (",
        "misnamed (",
        "no-status (",
        "incompatible (",
        "broken (",
        "error (",
    ] {
        assert!(commands.contains(state), "list state {state:?}: {rendered}");
    }
    // The logrotate example is the stanza the package ships, line for line.
    let stanza = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contrib/mydaemon.logrotate"
    ))
    .unwrap();
    let examples = section("EXAMPLES");
    for line in stanza
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        assert!(
            examples.contains(line.trim()),
            "{line:?} not in EXAMPLES: {examples}"
        );
    }
    // What an installed system has instead of the source tree's docs.
    assert!(
        section("FILES").contains("/usr/share/doc/ctl/operators.md"),
        "{rendered}"
    );
    assert!(!rendered.contains("docs/"), "{rendered}");
    for part in [
        "/run/ctl/NAME.sock",
        "exit 77",
        "listens somewhere else",
        "ssh://[USER@]HOST[:PORT]/NAME",
        "--host",
        "BatchMode=yes",
    ] {
        assert!(section("TARGETS").contains(part), "{part}: {rendered}");
    }
    for part in [
        "\"kind\"",
        "usage",
        "not_listening",
        "bad_arguments",
        "skipped",
    ] {
        assert!(section("JSON OUTPUT").contains(part), "{part}: {rendered}");
    }
    for var in [
        "CTL_SOCKET_DIR",
        "CTL_RUN_DIR",
        "CTL_SSH",
        "CTL_REMOTE_CTL",
        "XDG_RUNTIME_DIR",
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "TERM",
    ] {
        assert!(section("ENVIRONMENT").contains(var), "{var}: {rendered}");
    }
    for file in [
        "/run/ctl/NAME.sock",
        "/run/NAME/ctl.sock",
        "$XDG_RUNTIME_DIR/ctl/NAME.sock",
        "NAME.sock.lock",
    ] {
        assert!(section("FILES").contains(file), "{file}: {rendered}");
    }
    let examples = section("EXAMPLES");
    assert!(examples.contains("postrotate"), "{rendered}");
    assert!(examples.contains("ExecReload="), "{rendered}");
    assert!(
        examples.contains("ctl check mydaemon && ctl reload mydaemon"),
        "{rendered}"
    );
    assert!(
        examples.contains("ctl counters --prometheus mydaemon"),
        "{rendered}"
    );
    assert!(examples.contains("ctl doctor"), "{rendered}");
    assert!(
        examples.contains("ctl --timeout 20s reload ssh://deploy@web1/web"),
        "{rendered}"
    );
    // No page per operation exists: none may be referred to.
    assert!(!rendered.contains("ctl-status"), "{rendered}");

    // Every page SEE ALSO names is installed here. A hard check, not skipped when missing:
    // a reference the reader cannot open is the very fault this guards against, and the
    // pages named come with what ctl is used with (logrotate, systemd, ssh, man-pages).
    // Its first paragraph: the page's footer follows, indented too.
    let see_also = section("SEE ALSO");
    let see_also = see_also.trim_start().split("\n\n").next().unwrap();
    let refs: Vec<(&str, &str)> = see_also
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (name, sec) = r
                .strip_suffix(')')
                .and_then(|r| r.split_once('('))
                .unwrap_or_else(|| panic!("not a page reference: {r:?}"));
            (name, sec)
        })
        .collect();
    assert!(refs.len() >= 2, "{see_also}");
    for (name, sec) in refs {
        run(Command::new("man").args(["-w", sec, name])).expect_code(0);
    }
}

#[test]
fn each_operation_help_shows_the_exit_codes_and_only_its_options() {
    let sb = Sandbox::new();
    let status = sb.ctl(&["status", "--help"]).expect_code(0).stdout;
    assert!(status.contains("75  the deadline passed"), "{status}");
    assert!(status.contains("--timeout"), "{status}");
    for op in ["man", "completions"] {
        let help = sb.ctl(&[op, "--help"]).expect_code(0).stdout;
        assert!(help.contains("75  the deadline passed"), "{help}");
        assert!(!help.contains("--timeout"), "{op}: {help}");
    }
    let list = sb.ctl(&["list", "--help"]).expect_code(0).stdout;
    assert!(!list.contains("--missing-ok"), "{list}");
}

#[test]
fn a_stopped_daemon_times_out_naming_its_pid_socket_and_what_to_do() {
    use rustix::process::Signal;
    let (sb, daemon) = sandbox_with_daemon("frozen", 50, &[]);
    daemon.signal(Signal::STOP);
    // The kernel still queues the connection of a stopped process, so ctl connects, learns
    // the pid from the peer credentials, and waits for a hello that does not come.
    let frozen = sb.ctl(&["--timeout", "1s", "status", "frozen"]);
    // Continued before any assertion, so that a failure still leaves it killable.
    daemon.signal(Signal::CONT);
    let frozen = frozen.expect_code(75);
    let pid = daemon.pid();
    let msg = &frozen.stderr;
    assert!(
        msg.contains(&format!(
            "no answer from pid {pid} at {} within 1s",
            daemon.socket.display()
        )),
        "{frozen}"
    );
    assert!(msg.contains(&format!("ps -o stat= -p {pid}")), "{frozen}");
    assert!(
        msg.contains("ctl status") && msg.contains("--timeout"),
        "{frozen}"
    );
    sb.ctl(&["status", "frozen"]).expect_code(0);
}

#[test]
fn list_does_not_offer_missing_ok_for_a_stale_socket() {
    let sb = Sandbox::new();
    stale_socket(&sb, "crashed");
    let listed = sb.ctl(&["list"]).expect_code(69);
    assert!(listed.stdout.contains("died"), "{listed}");
    assert!(!listed.stdout.contains("--missing-ok"), "{listed}");
    let json = sb.ctl(&["list", "--json"]).expect_code(69);
    assert!(!json.stdout.contains("--missing-ok"), "{json}");
    // Where it does mean something (a daemon that was stopped), it is still offered.
    let status = sb.ctl(&["status", "notthere"]).expect_code(69);
    assert!(
        status.stderr.contains("(--missing-ok makes this exit 0)"),
        "{status}"
    );
}

/// Colour follows the conventions clap and most tools follow: on a terminal whose TERM can show
/// it, unless NO_COLOR or CLICOLOR=0 says no; CLICOLOR_FORCE even into a pipe.
#[test]
fn status_is_coloured_on_a_terminal_unless_no_color_clicolor_or_a_dumb_term_say_no() {
    let (sb, _daemon) = sandbox_with_daemon("tty", 50, &[]);
    // `script` runs ctl with a pseudo-terminal as its stdout.
    let on_tty = |env: &[(&str, &str)]| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec"])
            .arg(format!("{} status tty", bins().ctl.display()))
            .arg("/dev/null")
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd).expect_code(0)
    };
    let green = "\x1b[32mserving\x1b[0m";
    let coloured = on_tty(&[]);
    assert!(coloured.stdout.contains(green), "{coloured}");
    for env in [
        &[("NO_COLOR", "1")][..],
        &[("CLICOLOR", "0")],
        &[("TERM", "dumb")],
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
    ] {
        let plain = on_tty(env);
        assert!(plain.stdout.contains("serving"), "{plain}");
        assert!(
            !plain.stdout.contains('\x1b'),
            "{env:?} is honoured: {plain}"
        );
    }
    // Into a pipe, only when forced.
    let piped = |force: Option<&str>| {
        let mut cmd = Command::new(&bins().ctl);
        cmd.args(["status", "tty"])
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR");
        match force {
            Some(v) => cmd.env("CLICOLOR_FORCE", v),
            None => cmd.env_remove("CLICOLOR_FORCE"),
        };
        run(&mut cmd).expect_code(0)
    };
    assert!(!piped(None).stdout.contains('\x1b'));
    assert!(piped(Some("1")).stdout.contains(green));
}

/// What bash completes for the command line `line` (the cursor at its end), with the script
/// `ctl completions bash` prints sourced into a clean bash, and ctl on its PATH.
fn bash_complete(sb: &Sandbox, line: &str) -> Vec<String> {
    bash_complete_in(sb, line, |cmd| {
        cmd.env("CTL_SOCKET_DIR", sb.socket_dir());
    })
}

/// [`bash_complete`] with the environment `env` sets for ctl (where it looks for sockets).
fn bash_complete_in(sb: &Sandbox, line: &str, env: impl FnOnce(&mut Command)) -> Vec<String> {
    bash_complete_and_enter(sb, line, env).0
}

/// What bash completes for `line`, as [`bash_complete_in`], and the words bash reads from
/// each completion once it is inserted and the line is run (Enter), each completion run as
/// `printf` arguments by a bash whose working directory is the sandbox: whatever a completion
/// would make the shell do, it does there.
pub(crate) fn bash_complete_and_enter(
    sb: &Sandbox,
    line: &str,
    env: impl FnOnce(&mut Command),
) -> (Vec<String>, Vec<String>) {
    let script = sb.path("ctl.bash");
    if !script.exists() {
        let text = sb.ctl(&["completions", "bash"]).expect_code(0).stdout;
        std::fs::write(&script, text).unwrap();
    }
    // Words as bash splits them; a line ending in a space completes an empty word.
    let mut words: Vec<&str> = line.split_whitespace().collect();
    if line.ends_with(' ') {
        words.push("");
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let driver = format!(
        r#"source "$SCRIPT"
fn=$(complete -p ctl | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE={line:?}
COMP_POINT=${{#COMP_LINE}}
"$fn" ctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
for inserted in "${{COMPREPLY[@]}}"; do
    eval "printf 'entered:%s\\n' $inserted"
done
"#,
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let ctl_dir = bins().ctl.parent().unwrap().to_owned();
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", &driver])
        .current_dir(sb.dir.path())
        .env("SCRIPT", &script)
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        );
    env(&mut cmd);
    let done = run(&mut cmd).expect_code(0);
    let (entered, offered): (Vec<&str>, Vec<&str>) = done
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|l| l.starts_with("entered:"));
    (
        offered.into_iter().map(str::to_owned).collect(),
        entered
            .into_iter()
            .map(|l| l["entered:".len()..].to_owned())
            .collect(),
    )
}

#[test]
fn bash_completes_daemon_names_socket_paths_and_a_daemons_commands() {
    let sb = Sandbox::new();
    let _alpha = crate::start_demo(&sb, "alpha", 50, &[]);
    let _bravo = crate::start_demo(&sb, "bravo", 50, &[]);
    assert_eq!(bash_complete(&sb, "ctl status "), ["alpha", "bravo"]);
    assert_eq!(bash_complete(&sb, "ctl --json reload al"), ["alpha"]);
    // The daemon's own commands, as its `describe` lists them.
    assert_eq!(
        bash_complete(&sb, "ctl call bravo "),
        ["set-message", "stats"]
    );
    assert_eq!(bash_complete(&sb, "ctl call bravo st"), ["stats"]);
    // A word with '/' is a socket path.
    let dir = sb.socket_dir().display().to_string();
    assert_eq!(
        bash_complete(&sb, &format!("ctl status {dir}/al")),
        [format!("{dir}/alpha.sock")]
    );
    // Elsewhere clap's completion of operations and options is untouched.
    let ops = bash_complete(&sb, "ctl ch");
    assert_eq!(ops, ["check"], "{ops:?}");
    assert!(bash_complete(&sb, "ctl status alpha --ti").contains(&"--timeout".to_owned()));
}

/// After a `call`'s COMMAND, TAB offers its arguments as `KEY=` (those not given yet), as the
/// daemon's `describe` lists them, and after `--timeout` durations: never file names.
#[test]
fn completion_offers_a_commands_arguments_and_durations_not_file_names() {
    let sb = Sandbox::new();
    let _alpha = crate::start_demo(&sb, "alpha", 50, &[]);
    // A file in the working directory that file-name completion would offer.
    std::fs::write(sb.dir.path().join("text=file"), "").unwrap();
    assert_eq!(bash_complete(&sb, "ctl call alpha set-message "), ["text="]);
    assert_eq!(
        bash_complete(&sb, "ctl call alpha set-message te"),
        ["text="]
    );
    let none: [&str; 0] = [];
    assert_eq!(
        bash_complete(&sb, "ctl call alpha set-message text=hi "),
        none,
        "every argument is given"
    );
    assert_eq!(bash_complete(&sb, "ctl call alpha stats "), none);
    assert_eq!(
        bash_complete(&sb, "ctl --timeout "),
        ["10m", "1s", "2m", "30s", "500ms", "5s"]
    );
    assert_eq!(
        bash_complete(&sb, "ctl status alpha --timeout 5"),
        ["500ms", "5s"]
    );

    // zsh inserts a `KEY=` with no space after it, so that the value follows.
    if !tests::have_program("zsh") {
        return;
    }
    let script = sb.path("_ctl");
    std::fs::write(
        &script,
        sb.ctl(&["completions", "zsh"]).expect_code(0).stdout,
    )
    .unwrap();
    let ctl_dir = bins().ctl.parent().unwrap().to_owned();
    let driver = r#"source "$SCRIPT" 2>/dev/null
compadd() { print -r -- "compadd $*" }
words=(ctl call alpha set-message "")
CURRENT=5
_ctl"#;
    let zsh = run(Command::new("zsh")
        .args(["-f", "-c", driver])
        .current_dir(sb.dir.path())
        .env("SCRIPT", &script)
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        ));
    assert!(
        zsh.stdout.lines().any(|l| l == "compadd -S  -- text="),
        "{zsh}"
    );
}

/// Without `CTL_SOCKET_DIR`, names come from the convention's places, where the trust rule
/// applies: a daemon whose socket directory others can write to is one `ctl status NAME`
/// refuses, and TAB does not offer it.
#[test]
fn bash_completion_offers_no_name_the_trust_rule_refuses() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    // The convention's root in the sandbox (CTL_RUN_DIR), mode 0755 like /run.
    let run_dir = sb.path("run");
    for dir in ["", "trusted", "planted"] {
        std::fs::create_dir_all(run_dir.join(dir)).unwrap();
        std::fs::set_permissions(run_dir.join(dir), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let start = |name: &str| {
        let log = sb.path(&format!("{name}.log"));
        let cfg = sb.write_config(&format!("{name}.toml"), &crate::config(&log, 50, "a"));
        let socket = run_dir.join(name).join("ctl.sock");
        let args: Vec<String> = [
            "--name",
            name,
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec();
        let daemon = sb.spawn_daemon(name, &args, &[]);
        daemon.wait_ready();
        daemon
    };
    let _trusted = start("trusted");
    let _planted = start("planted");
    // Anyone may now create entries next to planted's socket: it could be a plant.
    std::fs::set_permissions(
        run_dir.join("planted"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let env = |cmd: &mut Command| {
        cmd.env_remove("CTL_SOCKET_DIR")
            .env_remove("XDG_RUNTIME_DIR")
            .env("CTL_RUN_DIR", &run_dir);
    };
    let ctl = |args: &[&str]| {
        let mut cmd = Command::new(&bins().ctl);
        cmd.args(args);
        env(&mut cmd);
        run(&mut cmd)
    };
    // ctl sees both, and refuses the planted one.
    let listed = ctl(&["--json", "list"]).expect_code(77);
    assert_eq!(
        tests::list_states(&listed.json()).len(),
        2,
        "both listed: {listed}"
    );
    ctl(&["status", "planted"]).expect_code(77);
    assert_eq!(bash_complete_in(&sb, "ctl status ", env), ["trusted"]);
    assert!(bash_complete_in(&sb, "ctl status pl", env).is_empty());
}

/// A stale socket another user named `w;touch PWNED;x.sock` in a sticky directory anyone may
/// write to: TAB offers it as one quoted path (never as a daemon name, which it is not), and
/// the line with it runs nothing.
#[test]
fn bash_completion_inserts_a_planted_socket_name_as_one_quoted_word() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let sticky = sb.path("tmp");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = sticky.join("w;touch PWNED;x.sock");
    tests::make_stale_socket(&planted);
    let _alpha = crate::start_demo(&sb, "alpha", 50, &[]);
    let pwned = sb.path("PWNED");

    // As a socket path: offered quoted, read back as exactly that path.
    let (offered, entered) =
        bash_complete_and_enter(&sb, &format!("ctl status {}/w", sticky.display()), |cmd| {
            cmd.env("CTL_SOCKET_DIR", sb.socket_dir());
        });
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert_eq!(entered, [planted.to_str().unwrap()], "{offered:?}");
    assert!(!pwned.exists(), "the completion ran code: {offered:?}");

    // As a daemon name from that directory: not a name ctl accepts, so not offered.
    let (offered, entered) = bash_complete_and_enter(&sb, "ctl status ", |cmd| {
        cmd.env("CTL_SOCKET_DIR", &sticky);
    });
    assert_eq!(offered, Vec::<String>::new(), "{entered:?}");
    assert!(!pwned.exists(), "the completion ran code: {offered:?}");
    // The valid names are still there.
    assert_eq!(bash_complete(&sb, "ctl status "), ["alpha"]);

    // zsh: the wrapper hands the path to `compadd` without -Q, so zsh quotes it when it
    // inserts it. (compadd itself only runs inside a completion widget: here it reports its
    // arguments.)
    if !tests::have_program("zsh") {
        return;
    }
    let script = sb.path("_ctl");
    std::fs::write(
        &script,
        sb.ctl(&["completions", "zsh"]).expect_code(0).stdout,
    )
    .unwrap();
    let ctl_dir = bins().ctl.parent().unwrap().to_owned();
    let driver = format!(
        r#"source "$SCRIPT" 2>/dev/null
compadd() {{ print -r -- "compadd $*" }}
words=(ctl status {dir}/w)
CURRENT=3
_ctl"#,
        dir = sticky.display()
    );
    let zsh = run(Command::new("zsh")
        .args(["-f", "-c", &driver])
        .current_dir(sb.dir.path())
        .env("SCRIPT", &script)
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        ));
    let added = format!("compadd -- {}", planted.display());
    assert!(zsh.stdout.lines().any(|l| l == added), "{zsh}");
    // As a flag: the sandbox's random name may hold "-Q" itself.
    assert!(
        !zsh.stdout
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == "-Q")),
        "zsh would insert it unquoted: {zsh}"
    );
    assert!(!pwned.exists(), "the completion ran code: {zsh}");
}

#[test]
fn completing_the_commands_of_a_daemon_that_does_not_answer_gives_up_within_a_second() {
    use rustix::process::Signal;
    let (sb, daemon) = sandbox_with_daemon("stuck", 50, &[]);
    daemon.signal(Signal::STOP);
    let started = std::time::Instant::now();
    let offered = bash_complete(&sb, "ctl call stuck ");
    let took = started.elapsed();
    daemon.signal(Signal::CONT);
    assert!(offered.is_empty(), "{offered:?}");
    // 1 s for the daemon, the rest for bash and ctl to start (generously, on a busy machine).
    assert!(
        took < std::time::Duration::from_secs(5),
        "TAB took {took:?} with a stopped daemon"
    );
    eprintln!("completing against a stopped daemon took {took:?}");
    assert_eq!(
        bash_complete(&sb, "ctl call stuck "),
        ["set-message", "stats"]
    );
}

/// Arguments larger than a daemon reads in one request are refused by ctl before sending,
/// naming the limit and the size: not a "connection reset" from the daemon closing on them.
#[test]
fn a_request_over_the_frame_limit_exits_2_naming_the_limit_and_its_size() {
    let (sb, daemon) = sandbox_with_daemon("big", 50, &[]);
    let text = format!("text={}", "a".repeat(70 * 1024));
    let refused = sb
        .ctl(&["call", "big", "set-message", &text])
        .expect_code(2);
    let limit = control_api::wire::MAX_FRAME_LEN.to_string();
    for part in [
        limit.as_str(),
        "bytes encoded",
        "`set-message`",
        "nothing was sent",
    ] {
        assert!(refused.stderr.contains(part), "{part:?} missing: {refused}");
    }
    let size: usize = refused
        .stderr
        .split("request is ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {refused}"));
    assert!(size > 70 * 1024, "{refused}");
    let json = sb
        .ctl(&["--json", "call", "big", "set-message", &text])
        .expect_code(2);
    assert_eq!(json.json()["error"]["kind"], "too_large", "{json}");
    // Nothing reached the daemon, which serves on.
    daemon.assert_alive();
    let status = sb.ctl(&["--json", "status", "big"]).expect_code(0);
    assert_eq!(
        status.json()["result"]["fields"]["message"],
        "alpha",
        "{status}"
    );
}
