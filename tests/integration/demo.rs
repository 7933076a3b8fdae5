//! The demo daemon as a new user meets it, and its life cycle.

use crate::sandbox_with_daemon;
use rustix::process::Signal;
use std::path::Path;
use tests::{read_lines, wait_for, Sandbox, WAIT};

#[test]
fn with_no_arguments_it_runs_and_says_what_to_try() {
    let sb = Sandbox::new();
    let tmp = sb.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut daemon = sb.spawn_daemon("demo", &[], &[("TMPDIR", &tmp)]);
    daemon.wait_ready();

    let banner = wait_for("the banner", WAIT, || {
        let out = std::fs::read_to_string(&daemon.stdout).unwrap_or_default();
        out.contains("Stop with Ctrl-C").then_some(out)
    });
    let uid = rustix::process::geteuid().as_raw();
    let config = tmp.join(format!("ctl-demo-{uid}/demo.toml"));
    let log = tmp.join(format!("ctl-demo-{uid}/demo.log"));
    for expected in [
        daemon.socket.display().to_string(),
        config.display().to_string(),
        log.display().to_string(),
        "status demo".into(),
        "reload demo".into(),
        "rotate demo".into(),
    ] {
        assert!(
            banner.contains(&expected),
            "banner lacks {expected:?}:\n{banner}"
        );
    }
    // The commands it suggests work.
    sb.ctl(&["status", "demo"]).expect_code(0);
    sb.ctl(&["reload", "demo"]).expect_code(0);
    wait_for("a line in the default log", WAIT, || {
        (!read_lines(&log).is_empty()).then_some(())
    });

    // SIGTERM: a clean exit that removes the socket.
    daemon.signal(Signal::TERM);
    let status = daemon.wait_exit();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        daemon.log()
    );
    assert!(!Path::new(&daemon.socket).exists(), "socket left behind");
    sb.ctl(&["status", "demo"]).expect_code(69);
}

#[test]
fn a_second_instance_on_a_live_socket_fails_and_the_first_keeps_serving() {
    let (sb, first) = sandbox_with_daemon("twin", 50, &[]);
    let cfg = sb.path("twin.toml");
    let mut second = sb.spawn_daemon(
        "twin",
        &[
            "--name".into(),
            "twin".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        &[],
    );
    let status = second.wait_exit();
    assert!(!status.success());
    let log = second.log();
    assert!(
        log.contains(&format!(
            "another instance is serving on {}",
            first.socket.display()
        )),
        "{log}"
    );
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    let doc = sb.ctl(&["--json", "status", "twin"]).expect_code(0).json();
    assert_eq!(doc["result"]["pid"], first.pid());
}
