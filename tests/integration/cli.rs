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
        "74  the output could not be written",
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
fn a_stale_socket_is_a_daemon_that_died_even_with_missing_ok() {
    // What a daemon that crashed leaves; one that stopped removes it. --missing-ok is for the
    // second.
    let sb = Sandbox::new();
    tests::make_stale_socket(&sb.socket_dir().join("crashed.sock"));

    let run = sb.ctl(&["reload", "crashed"]).expect_code(69);
    assert!(
        run.stderr
            .contains("crashed died: a socket that nobody accepts on"),
        "{run}"
    );
    assert!(!run.stderr.contains("makes this exit 0"), "{run}");
    let run = sb
        .ctl(&["--missing-ok", "reload", "crashed"])
        .expect_code(69);
    assert!(run.stderr.contains("died"), "{run}");
    let doc = sb
        .ctl(&["--missing-ok", "--json", "rotate", "crashed"])
        .expect_code(69)
        .json();
    assert_eq!(doc["error"]["kind"], "died", "{doc}");
}

#[test]
fn a_socket_path_that_is_not_a_socket_exits_69() {
    let sb = Sandbox::new();
    let file = sb.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let run = sb.ctl(&["status", file.to_str().unwrap()]).expect_code(69);
    assert!(run.stderr.contains("not a socket"), "{run}");
    // A misconfigured path is not "the daemon is stopped": --missing-ok does not hide it.
    sb.ctl(&["--missing-ok", "rotate", file.to_str().unwrap()])
        .expect_code(69);
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

#[test]
fn a_daemon_that_stopped_accepting_is_a_timeout_not_a_missing_daemon() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let path = sb.socket_dir().join("hung.sock");
    // A listener that never accepts, with the smallest queue: what a hung daemon looks like.
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    // Fill the queue until the kernel refuses more (bounded).
    let mut queued = Vec::new();
    for _ in 0..64 {
        let s = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        match rustix::net::connect(&s, &SocketAddrUnix::new(&path).unwrap()) {
            Ok(()) => queued.push(s),
            Err(_) => break,
        }
    }
    assert!(queued.len() < 64, "the queue never filled");

    let run = sb
        .ctl(&["--timeout", "500ms", "status", "hung"])
        .expect_code(75);
    assert!(run.stderr.contains("not accepting connections"), "{run}");
    // --missing-ok does not hide a daemon that is there but stuck.
    sb.ctl(&["--missing-ok", "--timeout", "300ms", "rotate", "hung"])
        .expect_code(75);
}

/// Under `--json`, a command line ctl does not understand is one document like every other
/// failure's, wherever `--json` was given; help stays text.
#[test]
fn under_json_a_usage_error_is_a_json_document_of_kind_usage() {
    let sb = Sandbox::new();
    for (args, says) in [
        (&["--json", "frobnicate", "x"][..], "frobnicate"),
        (&["--json", "status"], "TARGET"),
        (&["status", "--json", "--bogus", "x"], "--bogus"),
        (&["--json", "--timeout", "soon", "status", "x"], "soon"),
        (&["--json"], "subcommand"),
    ] {
        let run = sb.ctl(args).expect_code(2);
        let doc = run.json();
        assert_eq!(doc["ok"], false, "{run}");
        assert_eq!(doc["exit_code"], 2, "{run}");
        assert_eq!(doc["error"]["kind"], "usage", "{run}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says:?} not in {message:?}");
        assert!(!message.starts_with("error:"), "{message:?}");
    }
    // Without --json, or after `--`, clap's own text on stderr.
    let run = sb.ctl(&["frobnicate", "x"]).expect_code(2);
    assert!(
        run.stdout.is_empty() && run.stderr.contains("frobnicate"),
        "{run}"
    );
    let run = sb.ctl(&["--help", "--json"]).expect_code(0);
    assert!(run.stdout.contains("Usage:"), "{run}");
}

/// `ctl --json list` shows each daemon's status in the shape `ctl --json status` gives it.
#[test]
fn list_and_status_show_a_status_in_one_json_shape() {
    let sb = Sandbox::new();
    let _demo = crate::start_demo(&sb, "alpha", 50, &[]);
    let status = sb.ctl(&["--json", "status", "alpha"]).expect_code(0).json();
    let list = sb.ctl(&["--json", "list"]).expect_code(0).json();
    let listed = &list["daemons"][0]["status"];
    assert!(status["result"]["values"].is_object(), "{status}");
    assert!(listed["values"].is_object(), "{list}");
    let keys = |doc: &serde_json::Value| -> Vec<String> {
        doc["values"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(listed), keys(&status["result"]));
    let fields = |doc: &serde_json::Value| -> Vec<String> {
        doc.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(fields(listed), fields(&status["result"]));
}
