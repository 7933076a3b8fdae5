//! `ctl doctor --root DIR`: a tree of real logrotate, cron and systemd configuration made by
//! each test, pointed at real processes (the C program of `signal.rs`, the real demo daemon),
//! is read as logrotate, cron and systemd read it; nothing is sent, nothing is run.

use crate::signal::Sigd;
use std::path::PathBuf;
use tests::Sandbox;

/// A root directory for `--root`, inside the sandbox.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(sb: &Sandbox) -> Root {
        let dir = sb.path("root");
        std::fs::create_dir_all(dir.join("run")).unwrap();
        Root { dir }
    }

    /// Writes `text` at `path` (absolute, as a configuration names it), mode 0644.
    fn write(&self, path: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let at = self.at(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, text).unwrap();
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644)).unwrap();
        at
    }

    fn at(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    fn arg(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

/// The 1-based number of the line of `text` that contains `part`.
fn line_of(text: &str, part: &str) -> usize {
    text.lines().position(|l| l.contains(part)).expect(part) + 1
}

/// The findings of a `--json` document whose `text` contains `part`.
fn findings<'a>(doc: &'a serde_json::Value, part: &str) -> Vec<&'a serde_json::Value> {
    doc["result"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["text"].as_str().unwrap().contains(part))
        .collect()
}

const ARTICLE: &str = "\
weekly
rotate 4

/var/log/logdevice/*.log {
    daily
    missingok
    sharedscripts
    postrotate
        pkill -HUP logdeviced
    endscript
}
";

#[test]
fn the_articles_stanza_is_found_with_file_and_line_and_nothing_is_sent() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let mut d = Sigd::start_at(&sb, "none", "logdeviced", &root.at("/run/l.pid"), false);
    let conf = root.write("/etc/logrotate.conf", ARTICLE);
    let run = sb.ctl(&["doctor", "--root", root.arg()]).expect_code(1);
    let line = line_of(ARTICLE, "pkill -HUP logdeviced");
    let expected = format!(
        "{}:{line}: would kill logdeviced (pid {}): SIGHUP not caught (its default action is \
         to terminate)",
        conf.display(),
        d.pid
    );
    assert!(run.stdout.contains(&expected), "{expected:?}: {run}");
    assert!(
        run.stdout.contains("ctl signal HUP --name logdeviced"),
        "{run}"
    );

    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(1)
        .json();
    assert_eq!(doc["operation"], "doctor", "{doc}");
    assert_eq!((&doc["ok"], &doc["exit_code"]), (&false.into(), &1.into()));
    let found = findings(&doc, "pkill -HUP logdeviced");
    assert_eq!(found.len(), 1, "{doc}");
    let f = found[0];
    assert_eq!(f["file"], conf.display().to_string());
    assert_eq!(f["line"], line);
    assert_eq!(f["source"], "logrotate");
    assert_eq!(f["signal"], "SIGHUP");
    assert_eq!(f["verdict"], "would_kill");
    assert_eq!(f["target"]["kind"], "pattern");
    assert!(f["pids"].as_array().unwrap().contains(&d.pid.into()), "{f}");
    assert_eq!(f["processes"][0]["refusal"], "would_kill", "{f}");

    // Judged, never signalled: alive, and no SIGHUP pending.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(d.alive(), "ctl doctor must send nothing");
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid)).unwrap();
    let pending = status.lines().find(|l| l.starts_with("ShdPnd:")).unwrap();
    assert!(pending.ends_with("0000000000000000"), "{pending}");
}

#[test]
fn an_included_directory_is_read_as_logrotate_reads_it_and_no_script_is_run() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let d = Sigd::start_at(&sb, "catch", "doctor-hup", &root.at("/run/x.pid"), false);
    root.write("/etc/logrotate.conf", "weekly\ninclude /etc/logrotate.d\n");
    let pwned = sb.path("PWNED");
    let stanza = format!(
        "/var/log/x/*.log {{\n    sharedscripts\n    postrotate\n        \
         [ -f /run/x.pid ] && kill -HUP $(cat /run/x.pid)\n        \
         kill -TERM $(cat /run/x.pid); kill -9 `cat /run/x.pid`; pkill -INT doctor-hup\n        \
         pkill -HUP doctor-nobody; touch {}\n    endscript\n}}\n",
        pwned.display()
    );
    let file = root.write("/etc/logrotate.d/x", &stanza);
    // What logrotate leaves out: a taboo name, and a file others may write.
    let taboo = "/var/log/y.log {\n postrotate\n  kill -USR2 $(cat /run/x.pid)\n endscript\n}\n";
    let old = root.write("/etc/logrotate.d/x.dpkg-old", taboo);
    let writable = root.write("/etc/logrotate.d/w", taboo);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();

    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let all = doc["result"]["findings"].as_array().unwrap();
    assert_eq!(all.len(), 2, "TERM, KILL and INT are not reported: {doc}");
    let handled = findings(&doc, "kill -HUP $(cat /run/x.pid)");
    assert_eq!(handled[0]["verdict"], "handled", "{doc}");
    assert_eq!(handled[0]["file"], file.display().to_string());
    assert_eq!(handled[0]["line"], line_of(&stanza, "[ -f /run/x.pid ]"));
    assert_eq!(handled[0]["pids"], serde_json::json!([d.pid]));
    assert_eq!(handled[0]["target"]["value"], "/run/x.pid");
    // The name the pid file's process has now, so that a pid reused later is not signalled.
    assert_eq!(
        handled[0]["advice"],
        "`ctl signal HUP --pidfile /run/x.pid --name doctor-hup --verify-reopen LOG...` sends \
         it only while the process handles it, and proves the reopen",
        "{doc}"
    );
    assert_eq!(findings(&doc, "doctor-nobody")[0]["verdict"], "not_running");
    let skipped = doc["result"]["skipped"].to_string();
    for part in [
        &old.display().to_string()[..],
        "taboo: *.dpkg-old",
        &writable.display().to_string(),
        "writable by its group or others",
    ] {
        assert!(skipped.contains(part), "{part:?}: {skipped}");
    }
    assert!(!pwned.exists(), "a script line was run");

    let run = sb.ctl(&["doctor", "--root", root.arg()]).expect_code(0);
    assert!(
        run.stdout.contains(&format!(
            "handled: doctor-hup (pid {}) catches SIGHUP",
            d.pid
        )),
        "{run}"
    );
    assert!(run.stdout.contains("none would kill its target"), "{run}");
    assert!(!pwned.exists(), "a script line was run");
}

#[test]
fn a_pid_file_another_user_could_write_is_untrusted_and_not_followed() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let _d = Sigd::start_at(&sb, "none", "doctor-plant", &root.at("/run/p.pid"), false);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.at("/run/p.pid"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    root.write(
        "/etc/logrotate.conf",
        "/var/log/p.log {\n postrotate\n  kill -HUP $(cat /run/p.pid)\n endscript\n}\n",
    );
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let f = findings(&doc, "/run/p.pid")[0];
    assert_eq!(f["verdict"], "untrusted", "{doc}");
    assert!(f["message"].as_str().unwrap().contains("mode 0666"), "{f}");
}

#[test]
fn cron_lines_are_read_and_a_name_not_running_is_target_not_running() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let table = "SHELL=/bin/sh\n# killall -HUP commented\n\n30 2 * * * root /usr/bin/killall -USR1 doctor-ghost\n";
    let file = root.write("/etc/cron.d/ghost", table);
    // cron reads no name with a dot.
    root.write("/etc/cron.d/ghost.dpkg-old", "* * * * * root kill -HUP 1\n");
    root.write(
        "/etc/crontab",
        "@daily root start-stop-daemon --stop --signal HUP --pidfile /run/none.pid\n",
    );
    root.write(
        "/var/spool/cron/crontabs/alice",
        "0 * * * * pkill -USR2 -x doctor-ghost2\n",
    );
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let f = findings(&doc, "killall -USR1 doctor-ghost")[0];
    assert_eq!(f["file"], file.display().to_string());
    assert_eq!(f["line"], 4);
    assert_eq!(f["source"], "cron");
    assert_eq!(f["signal"], "SIGUSR1");
    assert_eq!(f["verdict"], "not_running", "{f}");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .starts_with("target not running"));
    let ssd = findings(&doc, "start-stop-daemon")[0];
    assert_eq!(ssd["verdict"], "not_running", "{ssd}");
    assert!(ssd["message"].as_str().unwrap().contains("no pid file at"));
    assert_eq!(findings(&doc, "doctor-ghost2")[0]["signal"], "SIGUSR2");
    assert!(findings(&doc, "kill -HUP 1").is_empty(), "{doc}");
    assert!(doc["result"]["skipped"]
        .to_string()
        .contains("ghost.dpkg-old"));
}

#[test]
fn a_units_exec_reload_with_mainpid_is_cannot_tell_under_a_root_and_drop_ins_count() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    root.write(
        "/lib/systemd/system/web.service",
        "[Unit]\nDescription=web\n\n[Service]\nExecStart=/usr/bin/web\nExecReload=/bin/kill -USR2 $MAINPID\nExecStop=/bin/kill -TERM $MAINPID\n",
    );
    let drop_in = root.write(
        "/etc/systemd/system/web.service.d/override.conf",
        "[Service]\nExecReload=\nExecReload=-/bin/kill -s HUP $MAINPID\n",
    );
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let all = doc["result"]["findings"].as_array().unwrap();
    assert_eq!(
        all.len(),
        1,
        "the drop-in cleared USR2; TERM is on purpose: {doc}"
    );
    let f = &all[0];
    assert_eq!(f["file"], drop_in.display().to_string());
    assert_eq!(f["line"], 3);
    assert_eq!(f["unit"], "web.service");
    assert_eq!(f["signal"], "SIGHUP");
    assert_eq!(f["target"]["kind"], "mainpid");
    assert_eq!(f["verdict"], "cannot_tell", "{f}");
    assert_eq!(f["text"], "ExecReload=-/bin/kill -s HUP $MAINPID");
}

#[test]
fn the_demo_daemon_is_a_control_socket_daemon_whose_bridge_handles_hup() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let daemon = crate::start_demo(&sb, "doctordemo", 50, &[]);
    root.write("/run/doctordemo.pid", &format!("{}\n", daemon.pid()));
    let conf = "/var/log/demo.log {\n    postrotate\n        kill -HUP `cat /run/doctordemo.pid`\n    endscript\n}\n";
    root.write("/etc/logrotate.conf", conf);
    let run = sb.ctl(&["doctor", "--root", root.arg()]).expect_code(0);
    for part in [
        "handled (by the control server's SIGHUP bridge, or the daemon's own handler)",
        &format!("(pid {})", daemon.pid()),
        "advice: replace with `ctl rotate doctordemo`",
    ] {
        assert!(run.stdout.contains(part), "{part:?}: {run}");
    }
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let f = findings(&doc, "doctordemo.pid")[0];
    assert_eq!(f["verdict"], "bridged", "{f}");
    assert_eq!(f["processes"][0]["daemon"], "doctordemo");
    assert_eq!(f["advice"], "replace with `ctl rotate doctordemo`");
    daemon.assert_alive();
    // Nothing was sent: the bridge logs every SIGHUP it gets.
    assert!(
        !daemon.log().contains("SIGHUP received"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_root_that_is_no_directory_is_a_usage_error() {
    let sb = Sandbox::new();
    let missing = sb.path("none");
    let doc = sb
        .ctl(&["--json", "doctor", "--root", missing.to_str().unwrap()])
        .expect_code(2)
        .json();
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
}

/// Runs `ctl ARGS` with at most 1 GB of address space (`prlimit --as`), at most `limit` long.
fn ctl_bounded(sb: &Sandbox, args: &[&str], limit: std::time::Duration) -> tests::Run {
    tests::run_within(
        std::process::Command::new("prlimit")
            .arg("--as=1000000000")
            .arg("--")
            .arg(&tests::bins().ctl)
            .args(args)
            .env("CTL_SOCKET_DIR", sb.socket_dir()),
        limit,
    )
}

#[test]
fn a_megabyte_line_of_targets_is_read_within_bounds_and_says_where_it_stopped() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let d = Sigd::start_at(&sb, "catch", "doctor-many", &root.at("/run/m.pid"), false);
    let each = format!(" {}", d.pid);
    let line = format!(
        "* * * * * kill -HUP{}\n",
        each.repeat(1_000_000 / each.len())
    );
    let file = root.write("/var/spool/cron/crontabs/alice", &line);
    let limit = std::time::Duration::from_secs(60);
    let run = ctl_bounded(&sb, &["--json", "doctor", "--root", root.arg()], limit);
    // Bounded by the address-space limit and `limit`, not by a time of its own: without the
    // budget it runs out of memory.
    let doc = run.expect_code(0).json();
    let all = doc["result"]["findings"].as_array().unwrap();
    assert_eq!(all.len(), 64, "at most 64 targets of one line");
    assert!(all.iter().all(|f| f["verdict"] == "handled"), "{}", all[0]);
    let shown = all[0]["text"].as_str().unwrap();
    assert!(
        shown.len() < 2000 && shown.ends_with(" bytes in all)"),
        "{shown}"
    );
    let stopped = doc["result"]["stopped"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "said once: {stopped:?}");
    assert_eq!(stopped[0]["file"], file.display().to_string());
    assert_eq!(stopped[0]["line"], 1);
    assert!(
        stopped[0]["why"]
            .as_str()
            .unwrap()
            .contains("more than 64 targets"),
        "{stopped:?}"
    );

    let run = ctl_bounded(&sb, &["doctor", "--root", root.arg()], limit).expect_code(0);
    let said = format!(
        "stopped reading {}:1: the line has more than 64",
        file.display()
    );
    assert!(
        run.stdout.contains(&said),
        "{said:?}: {}",
        &run.stdout[run.stdout.len().saturating_sub(2000)..]
    );
}

#[test]
fn a_process_named_on_many_lines_is_judged_once_and_a_file_has_a_budget() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    // It blocks SIGHUP: each judgement of it looks for 100 ms.
    let d = Sigd::start_at(&sb, "block", "doctor-blocks", &root.at("/run/b.pid"), false);
    let table = format!("* * * * * kill -HUP {}\n", d.pid).repeat(300);
    let file = root.write("/var/spool/cron/crontabs/bob", &table);
    let started = std::time::Instant::now();
    let doc = ctl_bounded(
        &sb,
        &["--json", "doctor", "--root", root.arg()],
        std::time::Duration::from_secs(60),
    )
    .expect_code(0)
    .json();
    assert!(
        // 300 judgements of a blocked signal take 30 s: one, cached, well under 20 s.
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let all = doc["result"]["findings"].as_array().unwrap();
    assert_eq!(all.len(), 256, "at most 256 targets of one file");
    assert!(all.iter().all(|f| f["verdict"] == "blocked"), "{}", all[0]);
    let stopped = doc["result"]["stopped"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "said once: {stopped:?}");
    assert_eq!(stopped[0]["file"], file.display().to_string());
    assert_eq!(stopped[0]["line"], 257);
    assert!(
        stopped[0]["why"]
            .as_str()
            .unwrap()
            .contains("256 targets in one file"),
        "{stopped:?}"
    );
}

/// A FIFO at `path`, and a child blocked opening it for writing: an open for reading would
/// release it, and it would then create `path.released`.
struct BlockedWriter {
    child: std::process::Child,
    released: PathBuf,
}

impl BlockedWriter {
    fn new(path: &std::path::Path) -> BlockedWriter {
        let status = std::process::Command::new("mkfifo")
            .args(["-m", "0600"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
        let released = path.with_extension("released");
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3>"$1"; touch "$2""#)
            .arg("sh")
            .arg(path)
            .arg(&released)
            .spawn()
            .unwrap();
        let mut writer = BlockedWriter { child, released };
        // It is blocked in open by now (or released already, and the test fails).
        writer.assert_still_blocked();
        writer
    }

    #[track_caller]
    fn assert_still_blocked(&mut self) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            self.child.try_wait().unwrap().is_none() && !self.released.exists(),
            "the FIFO was opened for reading: its writer was released"
        );
    }
}

impl Drop for BlockedWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_fifo_named_as_a_pid_file_or_included_is_never_opened_for_reading() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let mut pid_fifo = BlockedWriter::new(&root.at("/run/f.pid"));
    root.write(
        "/etc/logrotate.conf",
        "include /etc/logrotate.d\n/var/log/f.log {\n postrotate\n  kill -HUP $(cat /run/f.pid)\n endscript\n}\n",
    );
    std::fs::create_dir_all(root.at("/etc/logrotate.d")).unwrap();
    let mut include_fifo = BlockedWriter::new(&root.at("/etc/logrotate.d/f"));
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let f = findings(&doc, "/run/f.pid")[0];
    assert_eq!(f["verdict"], "untrusted", "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("is not a regular file"),
        "{f}"
    );
    assert!(
        doc["result"]["skipped"]
            .to_string()
            .contains("not a regular file"),
        "{doc}"
    );
    pid_fifo.assert_still_blocked();
    include_fifo.assert_still_blocked();

    let doc = sb
        .ctl(&[
            "--json",
            "signal",
            "HUP",
            "--pidfile",
            root.at("/run/f.pid").to_str().unwrap(),
        ])
        .expect_code(77)
        .json();
    assert_eq!(doc["error"]["kind"], "untrusted", "{doc}");
    pid_fifo.assert_still_blocked();
}

#[test]
fn a_pid_files_content_is_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let secret = root.write("/etc/wireguard/privatekey", "SECRET+wg/key=\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    root.write(
        "/var/spool/cron/crontabs/carol",
        "* * * * * kill -HUP $(cat /etc/wireguard/privatekey)\n",
    );
    root.write(
        "/etc/logrotate.conf",
        "/var/log/s.log {\n postrotate\n  kill -USR1 `cat /etc/wireguard/privatekey`\n endscript\n}\n",
    );
    let human = sb.ctl(&["doctor", "--root", root.arg()]).expect_code(0);
    let json = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0);
    let path = secret.to_str().unwrap();
    let signal = sb.ctl(&["signal", "HUP", "--pidfile", path]).expect_code(1);
    let signal_json = sb
        .ctl(&["--json", "signal", "HUP", "--pidfile", path])
        .expect_code(1);
    for run in [&human, &json, &signal, &signal_json] {
        assert!(!run.to_string().contains("SECRET"), "{run}");
        assert!(
            run.to_string()
                .contains("it is 15 bytes, not a positive decimal pid"),
            "{run}"
        );
    }
    let doc = json.json();
    for f in doc["result"]["findings"].as_array().unwrap() {
        assert_eq!(f["verdict"], "cannot_tell", "{f}");
    }
    assert_eq!(signal_json.json()["error"]["kind"], "bad_pid_file");
}

#[test]
fn a_users_crontab_line_aimed_at_roots_process_is_not_permitted() {
    if !tests::require_root() {
        return;
    }
    let sb = Sandbox::new();
    // nobody may reach the pid file: what stops the line is the signal, not the path.
    sb.open_to_other_users();
    let root = Root::new(&sb);
    root.write("/etc/passwd", PASSWD);
    let d = Sigd::start_at(&sb, "none", "doctor-roots", &root.at("/run/r.pid"), false);
    let line = "* * * * * kill -USR2 $(cat /run/r.pid)\n";
    let users = root.write("/var/spool/cron/crontabs/nobody", line);
    std::os::unix::fs::chown(&users, Some(tests::NOBODY), Some(tests::NOBODY)).unwrap();
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(0)
        .json();
    let f = findings(&doc, "kill -USR2")[0];
    assert_eq!(f["verdict"], "not_permitted", "{f}");
    assert_eq!(f["pids"], serde_json::json!([d.pid]));
    let message = f["message"].as_str().unwrap();
    let expected = format!(
        "the line runs as uid {}, who may not signal doctor-roots (pid {}) (uid 0)",
        tests::NOBODY,
        d.pid
    );
    assert!(message.contains(&expected), "{expected:?}: {f}");

    // root's own crontab may signal it: that line would kill it.
    std::os::unix::fs::chown(&users, Some(0), Some(0)).unwrap();
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(1)
        .json();
    assert_eq!(findings(&doc, "kill -USR2")[0]["verdict"], "would_kill");
}

/// The users of the roots of the tests that need them: root and nobody (tests::NOBODY).
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

#[test]
fn a_cron_lines_user_reads_its_pid_files_with_their_own_rights() {
    use std::os::unix::fs::{chown, PermissionsExt};
    if !tests::require_root() {
        return;
    }
    let sb = Sandbox::new();
    sb.open_to_other_users();
    let root = Root::new(&sb);
    root.write("/etc/passwd", PASSWD);
    root.write("/etc/group", "root:x:0:\nnogroup:x:65534:\n");
    // Root's daemon, its pid file in a directory only root may enter.
    let secret = root.at("/run/secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let roots = Sigd::start_at(&sb, "none", "doctor-secret", &secret.join("r.pid"), false);
    // nobody's own daemon, its pid file nobody's.
    let home = root.at("/home/nobody");
    std::fs::create_dir_all(&home).unwrap();
    chown(&home, Some(tests::NOBODY), Some(tests::NOBODY)).unwrap();
    let own = home.join("n.pid");
    let nobodys = Sigd::start_with(&sb, "none", "doctor-own", &own, false, Some(tests::NOBODY));

    let users = root.write(
        "/var/spool/cron/crontabs/nobody",
        "* * * * * kill -USR2 $(cat /run/secret/r.pid)\n\
         * * * * * kill -USR2 $(cat /home/nobody/n.pid)\n",
    );
    chown(&users, Some(tests::NOBODY), Some(tests::NOBODY)).unwrap();
    let orphan = root.write("/var/spool/cron/crontabs/gone", "* * * * * kill -HUP 1\n");
    chown(&orphan, Some(4242), Some(4242)).unwrap();
    root.write(
        "/etc/crontab",
        "* * * * * nobody kill -USR2 $(cat /home/nobody/n.pid)\n\
         * * * * * nobody kill -USR1 $(cat /run/secret/r.pid)\n\
         * * * * * root kill -HUP $(cat /home/nobody/n.pid)\n\
         * * * * * ghost kill -HUP 1\n",
    );
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(1)
        .json();
    let verdict = |part: &str| {
        let found = findings(&doc, part);
        assert_eq!(found.len(), 1, "{part:?}: {doc}");
        found[0].clone()
    };

    // The user may not read root's pid file: their `cat` fails, nothing is sent.
    for part in [
        "kill -USR2 $(cat /run/secret",
        "kill -USR1 $(cat /run/secret",
    ] {
        let f = verdict(part);
        assert_eq!(f["verdict"], "not_permitted", "{f}");
        assert_eq!(f["pids"], serde_json::json!([]), "{f}");
        let expected = format!(
            "the line runs as uid {}, who may not read the pid file {}",
            tests::NOBODY,
            secret.join("r.pid").display()
        );
        assert!(
            f["message"].as_str().unwrap().contains(&expected),
            "{expected:?}: {f}"
        );
    }
    // Their own pid file is theirs to trust, and their own process theirs to kill, from
    // their crontab and from a system table's line that names them.
    for part in ["* kill -USR2 $(cat /home", "nobody kill -USR2 $(cat /home"] {
        let f = verdict(part);
        assert_eq!(f["verdict"], "would_kill", "{f}");
        assert_eq!(f["pids"], serde_json::json!([nobodys.pid]), "{f}");
    }
    // Root's line does not trust nobody's pid file.
    assert_eq!(
        verdict("root kill -HUP $(cat /home")["verdict"],
        "untrusted"
    );
    // cron runs neither a table whose owner is no user nor a line naming no user.
    let skipped = doc["result"]["skipped"].to_string();
    for part in [
        "its owner, uid 4242, has no entry in /etc/passwd",
        "it names the user \\\"ghost\\\", who has no entry in /etc/passwd",
    ] {
        assert!(skipped.contains(part), "{part:?}: {skipped}");
    }
    assert!(findings(&doc, "kill -HUP 1").is_empty(), "{doc}");
    drop(roots);
}

#[test]
fn start_stop_daemon_with_a_pid_file_and_a_name_aims_only_at_a_process_with_both() {
    let sb = Sandbox::new();
    let root = Root::new(&sb);
    let d = Sigd::start_at(&sb, "none", "doctor-ssd", &root.at("/run/s.pid"), false);
    root.write(
        "/etc/logrotate.conf",
        "/var/log/s.log {\n postrotate\n  \
         start-stop-daemon --stop --signal USR2 --pidfile /run/s.pid --name other\n  \
         start-stop-daemon --stop --signal USR2 --pidfile /run/s.pid --name doctor-ssd\n \
         endscript\n}\n",
    );
    let doc = sb
        .ctl(&["--json", "doctor", "--root", root.arg()])
        .expect_code(1)
        .json();
    let other = findings(&doc, "--name other")[0];
    assert_eq!(other["verdict"], "not_running", "{other}");
    assert_eq!(other["target"]["name"], "other", "{other}");
    let expected = format!(
        "names pid {}, which is now \"doctor-ssd\", not \"other\": the daemon died",
        d.pid
    );
    assert!(
        other["message"].as_str().unwrap().contains(&expected),
        "{expected:?}: {other}"
    );
    let named = findings(&doc, "--name doctor-ssd")[0];
    assert_eq!(named["verdict"], "would_kill", "{named}");
    assert_eq!(named["pids"], serde_json::json!([d.pid]), "{named}");
}
