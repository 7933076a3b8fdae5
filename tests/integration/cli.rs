//! `ctl`'s own behaviour: usage errors, missing daemons, `--missing-ok`, help.

use tests::Sandbox;

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        &["frobnicate", "x"][..],
        &["status"],
        &["--timeout", "soon", "status", "x"],
        &["status", "bad name"],
        &[],
    ] {
        let run = sb.ctl(args).expect_code(2);
        assert!(
            !run.stderr.is_empty(),
            "a usage error says what is wrong: {run}"
        );
    }
}

#[test]
fn help_documents_the_exit_codes() {
    let run = Sandbox::new().ctl(&["--help"]).expect_code(0);
    for line in [
        "69  no daemon there",
        "75  the deadline passed",
        "77  permission denied",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing: {run}");
    }
}

#[test]
fn missing_socket_exits_69_unless_missing_ok() {
    let sb = Sandbox::new();
    let run = sb.ctl(&["rotate", "ghost"]).expect_code(69);
    assert!(run.stderr.contains("ghost.sock"), "{run}");
    assert!(
        run.stderr.contains("--missing-ok"),
        "says how to accept this: {run}"
    );

    let run = sb.ctl(&["--missing-ok", "rotate", "ghost"]).expect_code(0);
    assert!(run.stdout.contains("nothing to do"), "{run}");
    let run = sb
        .ctl(&["--missing-ok", "--quiet", "rotate", "ghost"])
        .expect_code(0);
    assert_eq!(run.stdout, "", "{run}");
    let doc = sb
        .ctl(&["--missing-ok", "--json", "rotate", "ghost"])
        .expect_code(0)
        .json();
    assert_eq!(doc["ok"], true);
    assert!(doc["skipped"].as_str().unwrap().contains("no socket"));
}

#[test]
fn stale_socket_exits_69_unless_missing_ok() {
    let sb = Sandbox::new();
    tests::make_stale_socket(&sb.socket_dir().join("crashed.sock"));

    let run = sb.ctl(&["reload", "crashed"]).expect_code(69);
    assert!(run.stderr.contains("stale"), "{run}");
    sb.ctl(&["--missing-ok", "reload", "crashed"])
        .expect_code(0);
}

#[test]
fn a_socket_path_that_is_not_a_socket_exits_69() {
    let sb = Sandbox::new();
    let file = sb.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    sb.ctl(&["status", file.to_str().unwrap()]).expect_code(69);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let (sb, _daemon) = crate::sandbox_with_daemon("pipe", 50, &[]);
    for args in [&["status", "pipe"][..], &["man"], &["completions", "bash"]] {
        // stdout's reading end is closed before ctl writes: what `ctl status | head -0` does.
        let mut child = std::process::Command::new(&tests::bins().ctl)
            .args(args)
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
