//! The socket's lock and the socket's file: no lock another user can take keeps a daemon from
//! starting; a socket file removed while the daemon runs comes back; a second instance never
//! starts while the first is alive.

use crate::{sandbox_with_daemon, start_demo};
use rustix::process::Signal;
use std::path::Path;
use std::process::Command;
use tests::{require_root, wait_for, Daemon, Sandbox, NOBODY, WAIT};

/// The pid `ctl status NAME` reports, or `None` while nothing answers.
fn status_pid(sb: &Sandbox, name: &str) -> Option<u64> {
    let run = sb.ctl(&["--json", "status", name]);
    (run.code == Some(0)).then(|| run.json()["result"]["pid"].as_u64().expect("pid"))
}

/// Demo daemon arguments for `name`, with the config `start_demo` writes.
fn demo_args(sb: &Sandbox, name: &str) -> Vec<String> {
    let cfg = sb.path(&format!("{name}.toml"));
    if !cfg.exists() {
        let log = sb.path(&format!("{name}.log"));
        std::fs::write(&cfg, crate::config(&log, 50, "alpha")).unwrap();
    }
    ["--name", name, "--config", cfg.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

/// Waits until the daemon answers again on its socket, as itself.
fn wait_until_back(sb: &Sandbox, daemon: &Daemon, name: &str) {
    let pid = wait_for("the daemon to answer on its socket again", WAIT, || {
        daemon.assert_alive();
        status_pid(sb, name)
    });
    assert_eq!(pid, u64::from(daemon.pid()), "another process answers");
}

/// Waits for the daemon's ERROR line about its socket file, naming its path.
fn wait_for_error_line(daemon: &Daemon) {
    let path = daemon.socket.display().to_string();
    wait_for("an ERROR line about the removed socket", WAIT, || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("removed") && l.contains(&path))
            .then_some(())
    });
}

#[test]
fn a_lock_on_the_socket_directory_does_not_keep_a_daemon_from_starting() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    // What any user who can read /run/ctl could do.
    let held = std::fs::File::open(sb.socket_dir()).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();

    let daemon = start_demo(&sb, "unblocked", 50, &[]);
    assert_eq!(status_pid(&sb, "unblocked"), Some(u64::from(daemon.pid())));
}

#[test]
fn another_user_cannot_take_a_running_daemons_lock() {
    if !require_root() {
        return;
    }
    let (sb, daemon) = sandbox_with_daemon("guarded", 50, &[]);
    sb.open_to_other_users();
    let lock = sb.socket_dir().join("guarded.sock.lock");
    assert!(lock.exists(), "no lock file next to the socket");
    let out = Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .args(["flock", "--nonblock", "--exclusive"])
        .arg(&lock)
        .arg("true")
        .output()
        .expect("run flock as nobody");
    assert!(
        !out.status.success(),
        "nobody took the lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.assert_alive();
}

#[test]
fn a_lock_file_planted_by_another_user_fails_start_up_at_once_naming_it() {
    if !require_root() {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let lock = sb.socket_dir().join("planted.sock.lock");
    std::fs::write(&lock, "").unwrap();
    rustix::fs::chown(
        &lock,
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        Some(rustix::fs::Gid::from_raw(NOBODY)),
    )
    .unwrap();

    let mut daemon = sb.spawn_daemon("planted", &demo_args(&sb, "planted"), &[]);
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(
        !status.success(),
        "started despite the planted lock:\n{log}"
    );
    assert!(log.contains(&lock.display().to_string()), "{log}");
    assert!(log.contains(&format!("uid {NOBODY}")), "{log}");
    assert!(log.contains("remove it"), "{log}");
    assert!(!daemon.socket.exists(), "bound anyway");
    assert!(lock.exists(), "another user's file must be left alone");
}

#[test]
fn a_removed_socket_file_is_noticed_and_bound_again() {
    let (sb, daemon) = sandbox_with_daemon("phoenix", 50, &[]);
    std::fs::remove_file(&daemon.socket).unwrap();

    wait_until_back(&sb, &daemon, "phoenix");
    wait_for_error_line(&daemon);
    // What the README's postrotate line does: it reaches the daemon again.
    sb.ctl(&["--missing-ok", "rotate", "phoenix"])
        .expect_code(0);
    assert!(
        sb.ctl(&["--json", "rotate", "phoenix"])
            .expect_code(0)
            .json()["ok"]
            == true
    );
}

#[test]
fn a_removed_socket_directory_is_recreated_and_bound_again() {
    let (sb, daemon) = sandbox_with_daemon("phoenix", 50, &[]);
    // Stopped meanwhile, so that it cannot bind again into the directory half-way through its
    // removal (which would then fail, not empty): it finds out when it runs again.
    daemon.signal(Signal::STOP);
    std::fs::remove_dir_all(sb.socket_dir()).unwrap();
    daemon.signal(Signal::CONT);

    wait_until_back(&sb, &daemon, "phoenix");
    wait_for_error_line(&daemon);
    assert!(
        sb.socket_dir().join("phoenix.sock.lock").exists(),
        "the lock file was not taken again"
    );
    // The new directory is watched too.
    std::fs::remove_file(&daemon.socket).unwrap();
    wait_until_back(&sb, &daemon, "phoenix");
}

#[test]
fn a_second_instance_refuses_to_start_while_the_first_is_alive_without_its_socket() {
    let (sb, first) = sandbox_with_daemon("twin", 50, &[]);
    // Stopped, the first cannot put its socket back: the second finds the path free, and
    // only the first's lock stands in its way.
    first.signal(Signal::STOP);
    std::fs::remove_file(&first.socket).unwrap();
    // Its own log files ("twin-second.stderr"): sharing the first's would garble both.
    let mut second = sb.spawn_daemon("twin-second", &demo_args(&sb, "twin"), &[]);
    wait_for("the second instance to wait for the lock", WAIT, || {
        if let Some(status) = second.child.try_wait().unwrap() {
            panic!(
                "the second instance exited ({status}) early:\n{}",
                second.log()
            );
        }
        assert!(
            !Path::new(&first.socket).exists(),
            "the second instance bound the path:\n{}",
            second.log()
        );
        second.log().contains("lock is held").then_some(())
    });
    first.signal(Signal::CONT);

    let status = second.wait_exit();
    let log = second.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    wait_until_back(&sb, &first, "twin");
}

/// [`tests::squat`], or the test fails saying why.
#[track_caller]
fn squat(path: &Path) -> (rustix::fd::OwnedFd, rustix::fd::OwnedFd) {
    tests::squat(path).unwrap_or_else(|e| panic!("squat {}: {e}", path.display()))
}

#[test]
fn a_listener_with_a_full_queue_at_the_socket_path_fails_start_up_at_once_naming_it() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let _squatter = squat(&sb.socket_dir().join("squatted.sock"));

    let mut daemon = sb.spawn_daemon("squatted", &demo_args(&sb, "squatted"), &[]);
    // A connect that waits would hang start-up here, past `wait_exit`'s bound.
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("accepts no connections") && log.contains("squatted.sock"),
        "the failure names neither the cause nor the path:\n{log}"
    );
}

#[test]
fn a_squatter_at_a_replaced_sockets_path_neither_freezes_the_daemon_nor_keeps_it_from_stopping_and_the_daemon_binds_again_once_it_is_gone(
) {
    let (sb, mut daemon) = sandbox_with_daemon("frozen", 20, &[]);
    // Made next to the socket, then moved over it: the daemon finds it when it binds again,
    // as it would a squatter who won the path after a tmp cleaner removed the socket.
    let staged = sb.socket_dir().join("squat.sock");
    let squatter = squat(&staged);
    std::fs::rename(&staged, &daemon.socket).unwrap();

    wait_for("the daemon to say it cannot bind again", WAIT, || {
        daemon.assert_alive();
        let log = daemon.log();
        (log.contains("cannot bind the control socket again")
            && log.contains("accepts no connections"))
        .then_some(())
    });
    // Still at work: its log file keeps growing.
    let log_file = sb.path("frozen.log");
    let before = std::fs::metadata(&log_file).unwrap().len();
    wait_for("the daemon to keep writing its log", WAIT, || {
        (std::fs::metadata(&log_file).unwrap().len() > before).then_some(())
    });
    // The squatter gives up its file (or a cleaner removes it): the daemon binds again by
    // itself, without a restart.
    std::fs::remove_file(&daemon.socket).unwrap();
    drop(squatter);
    wait_until_back(&sb, &daemon, "frozen");
    assert!(
        daemon.log().contains("binds again by itself"),
        "{}",
        daemon.log()
    );
    daemon.signal(Signal::TERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}:\n{}", daemon.log());
}

#[test]
fn a_link_swapped_in_for_the_socket_directory_is_not_followed_by_the_rebind() {
    let (sb, daemon) = sandbox_with_daemon("steered", 50, &[]);
    // Somewhere only root may write, of the planter's choice.
    let elsewhere = sb.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    rustix::fs::chmod(&elsewhere, rustix::fs::Mode::from_raw_mode(0o700)).unwrap();
    let link = sb.path("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    // In one step, so that the daemon cannot make the directory again in between: the link
    // is at the directory's path, the directory at the link's.
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &link,
        rustix::fs::CWD,
        sb.socket_dir(),
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .expect("renameat2(RENAME_EXCHANGE)");

    wait_for("the daemon to refuse the link", WAIT, || {
        daemon.assert_alive();
        let log = daemon.log();
        (log.contains("cannot bind the control socket again") && log.contains("symbolic link"))
            .then_some(())
    });
    let made: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        made.is_empty(),
        "the rebind followed the link and made {made:?} in {}",
        elsewhere.display()
    );
}

#[test]
fn removing_the_socket_in_a_loop_logs_one_line_per_interval_not_two_per_removal() {
    use std::os::unix::fs::FileTypeExt;
    let (sb, daemon) = sandbox_with_daemon("pestered", 50, &[]);
    let rounds = 30;
    for round in 0..rounds {
        std::fs::remove_file(&daemon.socket).unwrap();
        wait_for(
            &format!("the socket back after removal {round}"),
            WAIT,
            || {
                daemon.assert_alive();
                std::fs::symlink_metadata(&daemon.socket)
                    .is_ok_and(|m| m.file_type().is_socket())
                    .then_some(())
            },
        );
    }
    wait_until_back(&sb, &daemon, "pestered");
    let log = daemon.log();
    let lines = log.lines().filter(|l| l.contains("removed")).count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines about {rounds} removals:\n{log}"
    );
}
