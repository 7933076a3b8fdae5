//! `ctl top`: one JSON document per refresh, piped; rates from the calls made between two; a
//! hung daemon among live ones; a closed pipe; and the live view on a real terminal (tmux), as
//! a person sees it: the table, `q`, the terminal given back, a daemon's text escaped.

use crate::start_demo;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use tests::{bins, run, wait_for, Sandbox, WAIT};

/// A running `ctl top`, its documents read as they come; killed when dropped.
struct Top {
    child: Child,
    docs: mpsc::Receiver<Value>,
}

impl Top {
    fn start(sb: &Sandbox, args: &[&str]) -> Top {
        let mut child = Command::new(&bins().ctl)
            .arg("top")
            .args(args)
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ctl top");
        let stdout = child.stdout.take().unwrap();
        let (send, docs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let doc = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON document per line ({e}): {line}"));
                if send.send(doc).is_err() {
                    return;
                }
            }
        });
        Top { child, docs }
    }

    /// The next document, or `None` once ctl top has ended.
    fn next(&self) -> Option<Value> {
        match self.docs.recv_timeout(WAIT) {
            Ok(doc) => Some(doc),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no document from ctl top in {WAIT:?}"),
        }
    }

    /// Documents until one `until` accepts; panics after `limit` of them.
    fn until(&self, limit: usize, what: &str, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        while seen.len() < limit {
            let doc = self
                .next()
                .unwrap_or_else(|| panic!("ctl top ended before {what}"));
            let done = until(&doc);
            seen.push(doc);
            if done {
                return seen;
            }
        }
        panic!("{what}: not in {limit} documents: {seen:#?}");
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Daemon `name`'s object in a document.
fn daemon<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["daemons"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn state<'a>(doc: &'a Value, name: &str) -> &'a str {
    daemon(doc, name)["state"].as_str().unwrap_or_default()
}

#[test]
fn top_json_gives_one_document_per_refresh_with_rates_from_the_calls_between() {
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    let _b = start_demo(&sb, "beta", 50, &[]);
    // Connected first, so that between two refreshes there are only calls, each a round trip
    // on a Unix socket: they all fall between two of them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let socket = sb.socket_dir().join("alpha.sock");
    let client = rt.block_on(control_api::Client::connect(&socket)).unwrap();
    let top = Top::start(&sb, &["--json", "--count", "3", "--interval", "200ms"]);
    let first = top.next().expect("a first document");
    rt.block_on(async {
        for _ in 0..20 {
            client
                .call(&control_api::StatusRequest::default())
                .await
                .unwrap();
        }
    });
    let docs: Vec<Value> = std::iter::once(first)
        .chain(std::iter::from_fn(|| top.next()))
        .collect();
    assert_eq!(docs.len(), 3, "--count 3: {docs:#?}");
    let mut times = Vec::new();
    for doc in &docs {
        let names: Vec<&str> = doc["daemons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "beta"], "{doc}");
        for name in ["alpha", "beta"] {
            let d = daemon(doc, name);
            assert_eq!(d["state"], "serving", "{doc}");
            assert_eq!(d["generation"], 1, "{doc}");
            assert_eq!(d["in_flight"], 0, "{doc}");
            assert_eq!(d["error"], Value::Null, "{doc}");
            assert_eq!(d["last"], Value::Null, "no reload or rotate yet: {doc}");
            let socket = sb.socket_dir().join(format!("{name}.sock"));
            assert_eq!(d["socket"], socket.display().to_string(), "{doc}");
        }
        assert_eq!(doc["interval_ms"], 200);
        times.push(doc["time_unix_ms"].as_u64().unwrap());
    }
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // The first refresh has nothing to compare with.
    assert_eq!(daemon(&docs[0], "alpha")["calls_per_second"], Value::Null);
    let rate = |doc: &Value, name: &str, key: &str| daemon(doc, name)[key].as_f64().unwrap();
    let alpha: f64 = docs[1..]
        .iter()
        .map(|d| rate(d, "alpha", "calls_per_second"))
        .sum();
    assert!(alpha > 0.0, "the 20 status calls show: {docs:#?}");
    for doc in &docs[1..] {
        // Nobody but top calls beta, and top's own calls are not counted.
        assert_eq!(rate(doc, "beta", "calls_per_second"), 0.0, "{doc}");
        assert_eq!(rate(doc, "alpha", "errors_per_second"), 0.0, "{doc}");
    }
}

#[test]
fn daemons_are_shown_as_they_come_and_go() {
    let sb = Sandbox::new();
    let mut a = start_demo(&sb, "alpha", 50, &[]);
    let top = Top::start(&sb, &["--json", "--interval", "200ms"]);
    let names = |doc: &Value| -> Vec<String> {
        let all = doc["daemons"].as_array().unwrap();
        all.iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    top.until(50, "alpha alone", |d| {
        names(d) == ["alpha"] && state(d, "alpha") == "serving"
    });
    let _b = start_demo(&sb, "beta", 50, &[]);
    top.until(50, "beta too", |d| {
        names(d) == ["alpha", "beta"] && state(d, "beta") == "serving"
    });
    // Stopped: its socket goes, and so does its row.
    a.signal(rustix::process::Signal::TERM);
    a.wait_exit();
    top.until(50, "beta alone", |d| names(d) == ["beta"]);
}

#[test]
fn a_stopped_daemon_shows_hung_and_the_others_keep_refreshing() {
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    let b = start_demo(&sb, "beta", 50, &[]);
    let top = Top::start(&sb, &["--json", "--interval", "200ms"]);
    top.until(50, "both serving", |d| {
        state(d, "alpha") == "serving" && state(d, "beta") == "serving"
    });
    b.signal(rustix::process::Signal::STOP);
    let seen = top.until(50, "beta hung", |d| state(d, "beta") == "hung");
    let hung = seen.last().unwrap();
    let error = daemon(hung, "beta")["error"].as_str().unwrap();
    assert!(error.contains("within 1s"), "the default bound: {error}");
    assert!(error.contains(&b.pid().to_string()), "{error}");
    assert_eq!(daemon(hung, "beta")["generation"], Value::Null);
    // Refreshes go on, each bounded, and alpha is asked in every one.
    let mut last_time = hung["time_unix_ms"].as_u64().unwrap();
    for _ in 0..3 {
        let doc = top.next().expect("more documents");
        assert_eq!(state(&doc, "alpha"), "serving", "{doc}");
        assert_eq!(state(&doc, "beta"), "hung", "{doc}");
        let time = doc["time_unix_ms"].as_u64().unwrap();
        assert!(time > last_time, "{doc}");
        last_time = time;
    }
    b.signal(rustix::process::Signal::CONT);
    top.until(50, "beta serving again", |d| state(d, "beta") == "serving");
}

#[test]
fn piped_into_head_it_ends_quietly_once_the_reader_is_gone() {
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    // Not --json: piped is enough. No --count: only the closed pipe ends it.
    let out = run(Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$CTL\" top --interval 50ms | head -1",
        ])
        .env("CTL", &bins().ctl)
        .env("CTL_SOCKET_DIR", sb.socket_dir()))
    .expect_code(0);
    assert_eq!(out.stderr, "", "{out}");
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(state(&doc, "alpha"), "serving", "{doc}");
}

#[test]
fn a_named_daemon_that_is_not_running_is_stopped_and_a_bad_name_is_usage() {
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    let out = sb
        .ctl(&["--json", "top", "ghost", "alpha", "--count", "1"])
        .expect_code(0);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let names: Vec<&str> = doc["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ghost", "alpha"], "in the order named: {doc}");
    assert_eq!(state(&doc, "ghost"), "stopped", "{doc}");
    assert_eq!(state(&doc, "alpha"), "serving", "{doc}");
    // Killed, and its socket file gone too: the lock file it left says it died.
    let mut beta = start_demo(&sb, "beta", 50, &[]);
    let pid = rustix::process::Pid::from_raw(beta.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    beta.wait_exit();
    std::fs::remove_file(sb.socket_dir().join("beta.sock")).unwrap();
    let out = sb
        .ctl(&["--json", "top", "beta", "--count", "1"])
        .expect_code(0);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(state(&doc, "beta"), "died", "{doc}");
    let bad = sb.ctl(&["top", "no good", "--count", "1"]).expect_code(2);
    assert!(bad.stderr.contains("ctl: top:"), "{bad}");
    sb.ctl(&["top", "--interval", "0s"]).expect_code(2);
    sb.ctl(&["top", "--count", "0"]).expect_code(2);
}

/// A tmux server of the test's own (its own socket name), killed when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    /// A detached session of `width` x `height` running a plain bash with the prompt `$ `.
    fn start(sb: &Sandbox, width: u16, height: u16) -> Tmux {
        let found = Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "this test needs tmux: apt-get install -y tmux (`bash .ci/test` installs it)"
        );
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmux = Tmux {
            name: format!("ctl-top-test-{}-{n}", std::process::id()),
        };
        let (x, y) = (width.to_string(), height.to_string());
        let socket_dir = format!("CTL_SOCKET_DIR={}", sb.socket_dir().display());
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &x,
            "-y",
            &y,
            "-e",
            &socket_dir,
            "-e",
            "PS1=$ ",
            // A panic's message in a few lines, not scrolled off by a backtrace.
            "-e",
            "RUST_BACKTRACE=0",
            "bash --norc --noprofile",
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.name])
            .args(args)
            .env("TERM", "xterm-256color");
        let out = cmd.output().expect("run tmux");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-l", line]);
        self.run(&["send-keys", "Enter"]);
    }

    /// What the pane shows.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// The screen once `shows` accepts it.
    fn wait_for_screen(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(what, WAIT, || {
                last = self.screen();
                shows(&last).then(|| last.clone())
            })
        }));
        found.unwrap_or_else(|_| panic!("the screen never showed {what}:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .output();
    }
}

/// What the shell around `ctl top` prints: its exit code, and whether the terminal's modes
/// (`stty -g`: raw mode, echo, ...) are what they were before.
fn around_top(args: &str) -> String {
    format!(
        "echo before-top; s=$(stty -g); {} top {args}; e=$?; \
         [ \"$(stty -g)\" = \"$s\" ] && t=same || t=changed; echo \"top-exited=$e tty=$t\"",
        bins().ctl.display()
    )
}

/// Whether the shell printed ctl top's exit (`top-exited=` and a digit: the command line typed
/// has `top-exited=$e`).
fn exited(screen: &str) -> bool {
    screen
        .match_indices("top-exited=")
        .any(|(at, m)| screen[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn top_on_a_terminal_shows_the_table_quits_on_q_and_gives_the_terminal_back() {
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    let _b = start_demo(&sb, "beta", 50, &[]);
    // beta's last reload fails with text that would clear the screen and set the title if it
    // reached the terminal: its message names the log file it cannot write.
    let config = format!(
        "log_file = \"{}/missing/\\u001b[2J\\u001b]0;owned\\u0007x.log\"\ninterval_ms = 50\n",
        sb.dir.path().display()
    );
    std::fs::write(sb.path("beta.toml"), config).unwrap();
    sb.ctl(&["reload", "beta"]).expect_code(1);

    let tmux = Tmux::start(&sb, 250, 30);
    tmux.type_line(&around_top("--interval 200ms"));
    let screen = tmux.wait_for_screen("the table with both daemons serving", |s| {
        let row = |name: &str| {
            s.lines()
                .any(|l| l.starts_with(name) && l.contains("serving"))
        };
        row("alpha") && row("beta")
    });
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines[0].starts_with("ctl top  "), "{screen}");
    assert!(
        lines[0].contains("every 200ms  2 daemons  q: quit"),
        "{screen}"
    );
    assert!(
        !screen.contains("before-top"),
        "on the alternate screen: {screen}"
    );
    let heading = lines[2];
    let columns: Vec<&str> = heading
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "STATE",
            "GEN",
            "IN FLIGHT",
            "CALLS/S",
            "ERRORS/S",
            "LAST"
        ],
        "{screen}"
    );
    let beta = lines.iter().find(|l| l.starts_with("beta")).unwrap();
    let last_at = heading.find("LAST").unwrap();
    assert_eq!(beta.find("reload FAILED"), Some(last_at), "{screen}");
    assert!(
        beta.contains("missing/\\u{1b}[2J\\u{1b}]0;owned\\u{7}x.log"),
        "escaped: {screen}"
    );
    let title = tmux.run(&["display-message", "-p", "#{pane_title}"]);
    assert!(
        !title.contains("owned"),
        "the daemon set the title: {title}"
    );

    tmux.run(&["send-keys", "q"]);
    let screen = tmux.wait_for_screen("ctl top's exit", exited);
    assert!(screen.contains("top-exited=0 tty=same"), "{screen}");
    // The shell's own screen again, with what it showed before ctl top.
    assert!(screen.contains("before-top"), "{screen}");
    assert!(!screen.contains("IN FLIGHT"), "{screen}");
}

#[test]
fn top_on_a_terminal_gives_the_terminal_back_after_a_panic_and_a_signal() {
    // The panic is a debug build's test hook; a release ctl has none.
    if !cfg!(debug_assertions) {
        eprintln!("skipped: CTL_TOP_TEST_PANIC exists in debug builds only");
        return;
    }
    let sb = Sandbox::new();
    let _a = start_demo(&sb, "alpha", 50, &[]);
    let tmux = Tmux::start(&sb, 120, 30);
    tmux.type_line(&format!("export CTL_TOP_TEST_PANIC=1; {}", around_top("")));
    let screen = tmux.wait_for_screen("ctl top's exit", exited);
    assert!(screen.contains("top-exited=101 tty=same"), "{screen}");
    // The panic's message, printed after the terminal was restored, is there to read.
    assert!(screen.contains("CTL_TOP_TEST_PANIC is set"), "{screen}");
    assert!(screen.contains("before-top"), "{screen}");

    // SIGTERM ends the view as q does, and so does SIGQUIT, whose default would dump core and
    // leave the terminal raw.
    for sig in [rustix::process::Signal::TERM, rustix::process::Signal::QUIT] {
        tmux.type_line("unset CTL_TOP_TEST_PANIC; clear");
        tmux.type_line(&around_top("alpha"));
        tmux.wait_for_screen("the table", |s| s.lines().any(|l| l.starts_with("alpha")));
        // The shell's one child now is ctl top.
        let shell = tmux.run(&["list-panes", "-F", "#{pane_pid}"]);
        let children = run(Command::new("pgrep").args(["-P", shell.trim()])).expect_code(0);
        let pid: i32 = children.stdout.trim().parse().expect("one child: ctl top");
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let screen = tmux.wait_for_screen("ctl top's exit", exited);
        assert!(
            screen.contains("top-exited=0 tty=same"),
            "{sig:?}: {screen}"
        );
    }
}
