//! Who did what: `ctl history` shows the calls that changed something, with the caller's uid,
//! user name, pid and command line, refusals as `denied`, within a bound; each such call also
//! reaches syslog as one escaped line, without a stalled syslog ever holding the daemon up.

use crate::{config, start_demo};
use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tests::{bins, require_root, wait_for, Run, Sandbox, NOBODY, WAIT};

/// A uid no grant names and no test switches to otherwise: the policy refuses it everything.
const STRANGER: u32 = 65533;

/// Runs `ctl ARGS` as `uid` (gid the same, no groups) in `sb`.
fn ctl_as(sb: &Sandbox, uid: u32, args: &[&str]) -> Run {
    tests::run(
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(&bins().ctl)
            .args(args)
            .env("CTL_SOCKET_DIR", sb.socket_dir()),
    )
}

/// `ctl --json history NAME`'s result.
fn history(sb: &Sandbox, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "history", name];
    args.extend(extra);
    let run = sb.ctl(&args).expect_code(0);
    let doc = run.json();
    assert_eq!(doc["operation"], "history", "{run}");
    doc["result"].clone()
}

fn entries(result: &Value) -> &Vec<Value> {
    result["entries"].as_array().expect("entries")
}

/// A daemon anyone may connect to: nobody with every level, [`STRANGER`] with none.
fn open_demo(sb: &Sandbox, name: &str, extra: &[&str]) -> tests::Daemon {
    sb.open_to_other_users();
    let nobody = NOBODY.to_string();
    let mut args = vec!["--socket-mode", "666", "--allow-uid", &nobody];
    args.extend(extra);
    start_demo(sb, name, 50, &args)
}

#[test]
fn history_names_each_caller_with_user_pid_and_command_line_and_refusals_as_denied() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let daemon = open_demo(&sb, "hist", &[]);
    sb.write_config(
        "hist.toml",
        &config(&sb.path("hist.log"), 50, "changed by the test"),
    );
    sb.ctl(&["reload", "hist"]).expect_code(0);
    sb.ctl(&["rotate", "hist"]).expect_code(0);
    sb.ctl(&["call", "hist", "set-message", "text=two\nlines"])
        .expect_code(0);
    ctl_as(&sb, NOBODY, &["reload", "hist"]).expect_code(0);
    // Reads are not history.
    ctl_as(&sb, NOBODY, &["status", "hist"]).expect_code(0);
    sb.ctl(&["counters", "hist"]).expect_code(0);
    let refused = ctl_as(&sb, STRANGER, &["reload", "hist"]).expect_code(77);
    assert!(refused.stderr.contains("operate"), "{refused}");

    // The refusal is recorded after it is answered.
    let result = wait_for("the refusal in the history", WAIT, || {
        let result = history(&sb, "hist", &[]);
        (entries(&result).len() >= 5).then_some(result)
    });
    let list = entries(&result);
    let column = |key: &str| -> Vec<Value> { list.iter().map(|e| e[key].clone()).collect() };
    assert_eq!(
        column("operation"),
        ["reload", "rotate", "set-message", "reload", "reload"],
        "{result:#}"
    );
    assert_eq!(column("result"), ["ok", "ok", "ok", "ok", "denied"]);
    assert_eq!(column("uid"), [0, 0, 0, NOBODY, STRANGER]);
    assert_eq!(column("user")[..4], ["root", "root", "root", "nobody"]);
    assert_eq!(column("generation"), [2, 2, 2, 2, 2], "the reload moved it");
    let lines: Vec<&str> = list
        .iter()
        .map(|e| {
            e["command_line"]
                .as_str()
                .unwrap_or_else(|| panic!("read from /proc: {e}"))
        })
        .collect();
    assert!(lines[0].ends_with("ctl reload hist"), "{lines:?}");
    assert!(lines[1].ends_with("ctl rotate hist"), "{lines:?}");
    assert!(
        lines[2].ends_with("ctl call hist set-message text=two\nlines"),
        "the caller's argv, exact in JSON: {lines:?}"
    );
    assert!(lines[4].ends_with("ctl reload hist"), "{lines:?}");
    for e in list {
        let pid = e["pid"].as_u64().expect("a pid");
        assert!(pid > 0 && pid != u64::from(daemon.pid()), "{e}");
        assert!(e["signal"].is_null(), "{e}");
        // ctl's parent is this test; its own parents go on up.
        let ancestors = e["ancestors"].as_array().expect("ancestors");
        assert!(!ancestors.is_empty() && ancestors.len() <= 4, "{e}");
    }
    assert!(
        list[0]["message"]
            .as_str()
            .unwrap()
            .contains("changed by the test"),
        "a reload says what changed: {}",
        list[0]
    );
    assert!(
        list[4]["message"].as_str().unwrap().contains("permission"),
        "{}",
        list[4]
    );
    let times = column("unix_ms");
    assert!(
        times.windows(2).all(|w| w[0].as_u64() <= w[1].as_u64()),
        "oldest first: {times:?}"
    );
    assert_eq!(result["dropped"], 0);
    assert_eq!(result["capacity"], 100);

    // For people: one line per call, the newline of the argument escaped, user names shown.
    let run = sb.ctl(&["history", "hist"]).expect_code(0);
    let text: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(text.len(), 6, "{run}");
    assert!(
        text[0].starts_with("hist: 5 calls, oldest first, times UTC"),
        "{run}"
    );
    assert!(
        text[3].contains("ok") && text[3].contains("text=two\\nlines\""),
        "{run}"
    );
    assert!(text[4].contains(" uid 65534 (nobody) pid "), "{run}");
    assert!(
        text[5].contains("denied") && text[5].contains(" uid 65533 "),
        "{run}"
    );
    // nobody, granted read, may read it too; --limit keeps the newest.
    let run = ctl_as(&sb, NOBODY, &["--json", "history", "hist", "--limit", "2"]).expect_code(0);
    let doc = run.json();
    let kept = entries(&doc["result"]);
    assert_eq!(kept.len(), 2, "{run}");
    assert_eq!(kept[1]["result"], "denied", "{run}");
}

#[test]
fn the_bound_keeps_the_newest_and_a_flood_of_refusals_evicts_only_refusals() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let _daemon = open_demo(&sb, "bound", &["--history-len", "8"]);
    for _ in 0..6 {
        sb.ctl(&["rotate", "bound"]).expect_code(0);
    }
    for _ in 0..12 {
        ctl_as(&sb, STRANGER, &["rotate", "bound"]).expect_code(77);
    }
    // 6 rotations and 12 refusals: the refusals keep a quarter of 8, the rotations all stay.
    let result = wait_for("the refusals recorded", WAIT, || {
        let result = history(&sb, "bound", &[]);
        (result["dropped"] == 10).then_some(result)
    });
    let results: Vec<&str> = entries(&result)
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["ok", "ok", "ok", "ok", "ok", "ok", "denied", "denied"],
        "{result:#}"
    );
    assert_eq!(result["capacity"], 8);
    // Calls that ran push the oldest out, whatever it was.
    for _ in 0..5 {
        sb.ctl(&["drain", "bound"]).expect_code(0);
        sb.ctl(&["resume", "bound"]).expect_code(0);
    }
    let result = history(&sb, "bound", &[]);
    let ops: Vec<&str> = entries(&result)
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops.len(), 8);
    assert!(
        ops.iter().all(|op| *op == "drain" || *op == "resume"),
        "{ops:?}"
    );
    assert_eq!(result["dropped"], 20);
    let run = sb.ctl(&["history", "bound"]).expect_code(0);
    assert!(run.stdout.contains("20 older dropped"), "{run}");
}

#[test]
fn a_sighup_is_recorded_as_signal_sighup() {
    let (sb, daemon) = crate::sandbox_with_daemon("hup", 50, &[]);
    daemon.signal(rustix::process::Signal::HUP);
    let result = wait_for("the SIGHUP's reload in the history", WAIT, || {
        let result = history(&sb, "hup", &[]);
        (entries(&result).len() >= 2).then_some(result)
    });
    let list = entries(&result);
    assert_eq!(list[0]["operation"], "rotate", "{result:#}");
    assert_eq!(list[1]["operation"], "reload", "{result:#}");
    for e in list {
        assert_eq!(e["signal"], "SIGHUP", "{e}");
        assert!(e["uid"].is_null() && e["pid"].is_null(), "{e}");
        assert_eq!(e["result"], "ok", "{e}");
    }
    let run = sb.ctl(&["history", "hup"]).expect_code(0);
    assert!(run.stdout.contains("signal SIGHUP"), "{run}");
}

/// Reads the datagrams `reader` holds, waiting up to `wait` for each.
fn datagrams(reader: &UnixDatagram, wait: Duration) -> Vec<String> {
    reader.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16384];
    while let Ok(n) = reader.recv(&mut buf) {
        out.push(String::from_utf8(buf[..n].to_vec()).expect("UTF-8"));
    }
    out
}

/// Starts `name`, open as [`open_demo`] makes it, sending its audit lines to `syslog`.
fn demo_with_syslog(sb: &Sandbox, name: &str, syslog: &Path, extra: &[&str]) -> tests::Daemon {
    sb.open_to_other_users();
    let log = sb.path(&format!("{name}.log"));
    let cfg = sb.write_config(&format!("{name}.toml"), &config(&log, 50, "alpha"));
    let nobody = NOBODY.to_string();
    let mut args: Vec<String> = [
        "--name",
        name,
        "--config",
        &cfg.display().to_string(),
        "--socket-mode",
        "666",
        "--allow-uid",
        &nobody,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    let daemon = sb.spawn_daemon(name, &args, &[("CTL_SYSLOG_SOCKET", syslog)]);
    daemon.wait_ready();
    daemon
}

#[test]
fn each_change_is_one_escaped_syslog_line_and_reads_are_none() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    let socket = sb.path("log.sock");
    let reader = UnixDatagram::bind(&socket).unwrap();
    let daemon = demo_with_syslog(&sb, "sl", &socket, &[]);
    sb.ctl(&["status", "sl"]).expect_code(0);
    sb.ctl(&["reload", "sl"]).expect_code(0);
    sb.ctl(&["call", "sl", "set-message", "text=x\nforged: reload ok"])
        .expect_code(0);
    ctl_as(&sb, NOBODY, &["rotate", "sl"]).expect_code(0);
    ctl_as(&sb, STRANGER, &["reload", "sl"]).expect_code(77);
    sb.ctl(&["history", "sl"]).expect_code(0);
    let lines = datagrams(&reader, Duration::from_secs(2));
    assert_eq!(lines.len(), 4, "one per change, none per read: {lines:#?}");
    let tag = format!("ctl-control[{}]: sl: ", daemon.pid());
    for line in &lines {
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert!(line.contains(&tag), "{line}");
    }
    // <PRI> is authpriv (10) * 8 + notice (5), or warning (4) for the refusal.
    assert!(lines[0].starts_with("<85>"), "{}", lines[0]);
    assert!(
        lines[0].contains(r#"sl: reload by uid 0 (root) pid "#)
            && lines[0].contains(r#"ctl reload sl" under "#)
            && lines[0].contains(": ok (generation 1) in "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#"set-message text=x\nforged: reload ok" under "#),
        "the argument's newline escaped: {}",
        lines[1]
    );
    assert!(
        lines[2].contains("sl: rotate by uid 65534 (nobody) pid "),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("<84>"), "{}", lines[3]);
    assert!(
        lines[3].contains("sl: reload by uid 65533 pid ") && lines[3].contains(": denied ("),
        "{}",
        lines[3]
    );
    let run = sb.ctl(&["counters", "sl", "ctl.audit."]).expect_code(0);
    assert!(run.stdout.contains("ctl.audit.syslog.sent"), "{run}");
    let sent = run
        .stdout
        .lines()
        .find(|l| l.starts_with("ctl.audit.syslog.sent"))
        .unwrap();
    assert!(sent.ends_with(" 4"), "{run}");
}

#[test]
fn a_syslog_that_never_reads_never_holds_a_call_up() {
    let sb = Sandbox::new();
    let socket = sb.path("stalled.sock");
    // Bound and never read: its queue fills, and a blocking send would wait for ever.
    let _stalled = UnixDatagram::bind(&socket).unwrap();
    let daemon = demo_with_syslog(&sb, "stall", &socket, &[]);
    let calls = 1500;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slowest = rt.block_on(async {
        let client = control_api::Client::connect(&daemon.socket).await.unwrap();
        let mut slowest = Duration::ZERO;
        for i in 0..calls {
            let started = Instant::now();
            client
                .call(&demo_daemon::SetMessage {
                    text: format!("call {i}"),
                })
                .await
                .unwrap();
            slowest = slowest.max(started.elapsed());
        }
        slowest
    });
    // Generous for a loaded machine; a send that waited would never come back at all.
    assert!(slowest < Duration::from_secs(5), "slowest call {slowest:?}");
    let run = sb
        .ctl(&["--json", "counters", "stall", "ctl.audit."])
        .expect_code(0);
    let doc = run.json();
    let value = |name: &str| -> u64 {
        doc["result"]["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {run}"))["value"]
            .as_u64()
            .unwrap()
    };
    let (sent, dropped) = (
        value("ctl.audit.syslog.sent"),
        value("ctl.audit.syslog.dropped"),
    );
    assert_eq!(sent + dropped, calls, "{run}");
    assert!(dropped > 0, "the queue filled: {run}");
    // The history has them all (within its bound), and the daemon said so, once.
    let result = history(&sb, "stall", &[]);
    assert_eq!(result["dropped"], calls - 100);
    let warned = daemon.log().matches("not sent to syslog").count();
    assert!(
        (1..=3).contains(&warned),
        "rate-limited: {warned}\n{}",
        daemon.log()
    );
    daemon.assert_alive();
}

/// An `rsyslogd` of the test's own, listening on a socket in the sandbox and writing what it
/// receives to a file; stopped when dropped.
struct Rsyslog {
    child: std::process::Child,
    socket: std::path::PathBuf,
    file: std::path::PathBuf,
}

impl Rsyslog {
    fn start(sb: &Sandbox) -> Rsyslog {
        let (socket, file) = (sb.path("rsyslog.sock"), sb.path("auth.log"));
        let work = sb.path("rsyslog");
        std::fs::create_dir(&work).unwrap();
        // Only this socket: `SysSock.Use="off"` leaves the machine's /dev/log alone.
        let conf = format!(
            "global(workDirectory={work:?})\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket={socket:?})\n\
             template(name=\"audit\" type=\"string\" \
             string=\"%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n\")\n\
             authpriv.* action(type=\"omfile\" file={file:?} template=\"audit\")\n",
        );
        let conf_path = sb.write_config("rsyslog.conf", &conf);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(sb.path("rsyslog.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(sb.path("rsyslog.stderr")).unwrap())
            .spawn()
            .expect("start rsyslogd");
        wait_for("rsyslogd to listen", WAIT, || socket.exists().then_some(()));
        Rsyslog {
            child,
            socket,
            file,
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_rsyslogd_files_the_lines_under_authpriv_with_their_severity() {
    if !require_root() || !tests::have_program("rsyslogd") {
        return;
    }
    let sb = Sandbox::new();
    let rsyslog = Rsyslog::start(&sb);
    let daemon = demo_with_syslog(&sb, "rs", &rsyslog.socket, &[]);
    sb.ctl(&["reload", "rs"]).expect_code(0);
    ctl_as(&sb, STRANGER, &["rotate", "rs"]).expect_code(77);
    let text = wait_for("rsyslogd to write both lines", WAIT, || {
        let text = std::fs::read_to_string(&rsyslog.file).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    let lines: Vec<&str> = text.lines().collect();
    let tag = format!("ctl-control[{}]:", daemon.pid());
    assert!(
        lines[0].starts_with(&format!(
            "authpriv.notice {tag} rs: reload by uid 0 (root) pid "
        )),
        "{text}"
    );
    assert!(lines[0].contains(r#"ctl reload rs" under "#), "{text}");
    assert!(lines[0].contains(": ok (generation 1) in "), "{text}");
    assert!(
        lines[1].starts_with(&format!(
            "authpriv.warning {tag} rs: rotate by uid 65533 pid "
        )),
        "{text}"
    );
    assert!(lines[1].contains(": denied (generation 1)"), "{text}");
}
