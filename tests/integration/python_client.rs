//! clients/python: the Python client (written from docs/protocol.md alone) runs its unittest
//! suite with the system `python3` against a real demo daemon; the suite must pass with its
//! tests actually run, not skipped.

use std::process::Command;
use std::time::Duration;
use tests::{bins, run, run_within, Sandbox};

/// The workspace root, where `clients/python` lives.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The longest the Python suite may take before it is killed and the test fails.
const LIMIT: Duration = Duration::from_secs(120);

/// Skip reasons the suite may give, and when: anything else skipped fails the test.
fn skip_allowed(reason: &str, python_minor: u32) -> bool {
    (reason.contains("needs root") && !tests::is_root())
        || (reason.contains("needs Python 3.11") && python_minor < 11)
        || (reason.contains("needs Python 3.10") && python_minor < 10)
}

#[test]
fn python_client_suite_passes_against_the_demo() {
    if !tests::have_program("python3") {
        return;
    }
    let version = run(Command::new("python3").args([
        "-c",
        "import sys; print(sys.version_info[0], sys.version_info[1])",
    ]))
    .expect_code(0);
    let minor: u32 = match version.stdout.split_whitespace().collect::<Vec<_>>()[..] {
        ["3", minor] => minor.parse().unwrap(),
        _ => panic!("not a Python 3: {version}"),
    };
    assert!(minor >= 9, "the client needs Python >= 3.9: {version}");

    // A socket other users may reach (mode 666 in a directory they may enter), so that the
    // suite's `test_denied`, as uid nobody, meets the daemon's policy rather than EACCES.
    let sb = Sandbox::new();
    sb.open_to_other_users();
    let open = sb.path("open");
    std::fs::create_dir(&open).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = open.join("demo.sock");
    let socket_arg = socket.display().to_string();
    let daemon = crate::start_demo(
        &sb,
        "demo",
        50,
        &["--socket", &socket_arg, "--socket-mode", "666"],
    );
    let pycache = sb.path("pycache");

    // Every module compiles (bytecode kept out of the source tree).
    run(Command::new("python3")
        .args([
            "-m",
            "compileall",
            "-q",
            "clients/python/src",
            "clients/python/tests",
        ])
        .current_dir(ROOT)
        .env("PYTHONPYCACHEPREFIX", &pycache))
    .expect_code(0);

    let suite = run_within(
        Command::new("python3")
            .args([
                "-m",
                "unittest",
                "discover",
                "-s",
                "clients/python/tests",
                "-v",
            ])
            .current_dir(ROOT)
            .env("PYTHONPATH", "clients/python/src")
            .env("PYTHONPYCACHEPREFIX", &pycache)
            .env("CTL_TEST_SOCKET", &socket)
            .env("CTL_TEST_NAME", "demo")
            .env("CTL_TEST_CTL", &bins().ctl)
            .env("CTL_TEST_OPEN_TO_OTHERS", "1"),
        LIMIT,
    );
    let context = || format!("{suite}\n--- the daemon's log\n{}", daemon.log());
    assert_eq!(
        suite.code,
        Some(0),
        "the Python suite failed:\n{}",
        context()
    );

    // unittest reports on stderr: one "name (module.Class.name) ... ok|skipped 'why'" line per
    // test, then "Ran N tests in T", then "OK" or "OK (skipped=K)".
    let out = &suite.stderr;
    let ran: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no \"Ran N tests\" line:\n{}", context()));
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last == "OK" || last.starts_with("OK (skipped="),
        "the suite did not end with OK:\n{}",
        context()
    );
    let skipped: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(" ... skipped ").map(|(_, why)| why))
        .collect();
    for why in &skipped {
        assert!(
            skip_allowed(why, minor),
            "a test was skipped ({why}):\n{}",
            context()
        );
    }
    let passed = out.lines().filter(|l| l.ends_with(" ... ok")).count();
    assert_eq!(passed + skipped.len(), ran, "{}", context());
    assert!(ran >= 50, "only {ran} tests ran:\n{}", context());
    // The tests against the real daemon ran (they skip without CTL_TEST_SOCKET).
    for live in [
        "test_hello",
        "test_status_values_are_native",
        "test_call_set_message_and_stats",
        "test_bad_arguments",
        "test_unknown_command_is_not_sent",
        "test_deadline_while_the_daemon_is_stopped",
        "test_drain_and_resume",
    ] {
        let line = format!("{live} (test_client.LiveDaemon");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&line) && l.ends_with(" ... ok")),
            "{live} against the daemon did not pass:\n{}",
            context()
        );
    }
    daemon.assert_alive();
}
