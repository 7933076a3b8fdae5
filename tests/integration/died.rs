//! A daemon that no socket answers for: stopped, died, or running where ctl does not look, told
//! apart from what the daemon leaves (its socket and lock file), never from a process name.

use crate::sandbox_with_daemon;
use rustix::process::Signal;
use std::process::{Command, Stdio};
// Each test uses a daemon name of its own: a root daemon of that name that another test runs
// is found by its lock wherever it listens, and rightly makes the name "running".
use tests::{bins, require_root, wait_for, Sandbox, NOBODY, WAIT};

#[test]
fn a_daemon_killed_with_sigkill_died_and_missing_ok_does_not_hide_it() {
    let (sb, mut daemon) = sandbox_with_daemon("killed1", 50, &[]);
    daemon.signal(Signal::KILL);
    daemon.wait_exit();
    assert!(daemon.socket.exists(), "SIGKILL leaves the socket");

    for args in [
        &["rotate", "killed1"][..],
        &["--missing-ok", "rotate", "killed1"],
    ] {
        let run = sb.ctl(args).expect_code(69);
        assert!(
            run.stderr
                .contains("killed1 died: a socket that nobody accepts on is left at"),
            "{args:?}: {run}"
        );
        assert!(!run.stderr.contains("makes this exit 0"), "{run}");
    }
    let doc = sb
        .ctl(&["--missing-ok", "--json", "rotate", "killed1"])
        .expect_code(69)
        .json();
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(doc["error"]["kind"], "died", "{doc}");

    // Its lock file alone (the socket removed by a cleaner) says the same.
    std::fs::remove_file(&daemon.socket).unwrap();
    let run = sb
        .ctl(&["--missing-ok", "rotate", "killed1"])
        .expect_code(69);
    assert!(
        run.stderr
            .contains("killed1 died: a lock file that no process holds is left at"),
        "{run}"
    );
}

#[test]
fn a_daemon_that_stopped_is_what_missing_ok_is_for() {
    let (sb, mut daemon) = sandbox_with_daemon("stopped1", 50, &[]);
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
    let run = sb
        .ctl(&["--missing-ok", "rotate", "stopped1"])
        .expect_code(0);
    assert!(run.stdout.contains("nothing to do"), "{run}");
    let doc = sb
        .ctl(&["--json", "rotate", "stopped1"])
        .expect_code(69)
        .json();
    assert_eq!(doc["error"]["kind"], "no_daemon", "{doc}");

    // Started again over what a kill left, it is found and the next stop is clean again.
    let (sb, mut daemon) = sandbox_with_daemon("reborn1", 50, &[]);
    daemon.signal(Signal::KILL);
    daemon.wait_exit();
    let mut again = crate::start_demo(&sb, "reborn1", 50, &[]);
    sb.ctl(&["--missing-ok", "rotate", "reborn1"])
        .expect_code(0);
    again.signal(Signal::TERM);
    again.wait_exit();
    sb.ctl(&["--missing-ok", "rotate", "reborn1"])
        .expect_code(0);
}

/// Runs `program ARGS` as nobody, its output discarded.
fn as_nobody(program: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(program)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv")
}

#[test]
fn another_users_process_named_like_the_daemon_or_holding_a_lock_for_it_changes_nothing() {
    if !require_root() {
        return;
    }
    use std::os::unix::fs::{chown, PermissionsExt};
    let sb = Sandbox::new();
    sb.open_to_other_users();
    std::fs::create_dir_all(sb.path("run")).unwrap();
    let name = "mimic";
    // A program called like the daemon, run by another user: any user can start one.
    let named = sb.path(name);
    std::fs::copy("/bin/sleep", &named).unwrap();
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut impostor = as_nobody(&named, &["60"]);

    // And a real demo daemon of that user, named like it, with its socket and lock file in a
    // directory of its own: the daemon root means is not that user's.
    let theirs = sb.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let log = theirs.join("mimic.log");
    let cfg = theirs.join("mimic.toml");
    std::fs::write(&cfg, crate::config(&log, 50, "theirs")).unwrap();
    let socket = theirs.join(format!("{name}.sock"));
    let mut planted = as_nobody(
        &bins().demo,
        &[
            "--name",
            name,
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    wait_for("the other user's daemon to listen", WAIT, || {
        std::os::unix::net::UnixStream::connect(&socket)
            .ok()
            .map(|_| ())
    });

    // Looked up by the convention (no CTL_SOCKET_DIR), where locks held elsewhere count.
    let ctl = |args: &[&str]| {
        tests::run(
            Command::new(&bins().ctl)
                .args(args)
                .env_remove("CTL_SOCKET_DIR")
                .env_remove("XDG_RUNTIME_DIR")
                .env("CTL_RUN_DIR", sb.path("run")),
        )
    };
    let skipped = ctl(&["--missing-ok", "rotate", name]).expect_code(0);
    assert!(skipped.stdout.contains("nothing to do"), "{skipped}");
    let failed = ctl(&["rotate", name]).expect_code(69);
    assert!(
        !failed.stderr.contains(socket.to_str().unwrap()),
        "root is told to use another user's socket: {failed}"
    );
    let _ = impostor.kill();
    let _ = impostor.wait();
    let _ = planted.kill();
    let _ = planted.wait();
}
