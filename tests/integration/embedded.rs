//! control-server's `embedded` example, driven by the real `ctl`: the smallest whole embedding
//! (reload with validate-then-swap, its own tracing in a rotated file, a drain that closes its
//! listener and a resume that opens it, status fields) does what the guide says.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use tests::{bins, wait_for, Daemon, Sandbox, WAIT};

/// What the example's own service answers a new client, or `None` if it is not listening.
fn greeting(service: &Path) -> Option<String> {
    let mut client = UnixStream::connect(service).ok()?;
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut text = String::new();
    client.read_to_string(&mut text).ok()?;
    Some(text.trim().to_owned())
}

#[test]
fn the_smallest_embedding_reloads_rotates_drains_resumes_and_reports() {
    let sb = Sandbox::new();
    let config = sb.path("greeter.conf");
    let log = sb.path("greeter.log");
    let service = sb.path("greeter.service.sock");
    std::fs::write(&config, "hello\n").unwrap();
    let mut daemon = Daemon {
        child: Command::new(&bins().embedded)
            .args(["greeter"])
            .args([&config, &log, &service])
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sb.path("greeter.stderr")).unwrap())
            .spawn()
            .unwrap(),
        socket: sb.socket_dir().join("greeter.sock"),
        stdout: sb.path("greeter.stdout"),
        stderr: sb.path("greeter.stderr"),
    };
    daemon.wait_ready();
    assert_eq!(
        wait_for("the service to answer", WAIT, || greeting(&service)),
        "hello"
    );

    // reload: a valid greeting is swapped in; an empty one is refused and the old one stays.
    // check, from the same step, says so first and applies nothing.
    std::fs::write(&config, "bonjour\n").unwrap();
    let run = sb.ctl(&["check", "greeter"]).expect_code(0);
    assert!(
        run.stdout
            .contains(r#"would apply: greeting "hello" -> "bonjour""#),
        "{run}"
    );
    assert_eq!(greeting(&service).as_deref(), Some("hello"));
    let run = sb.ctl(&["reload", "greeter"]).expect_code(0);
    assert!(
        run.stdout.contains(r#"greeting "hello" -> "bonjour""#),
        "{run}"
    );
    assert_eq!(greeting(&service).as_deref(), Some("bonjour"));
    std::fs::write(&config, "\n").unwrap();
    let run = sb.ctl(&["check", "greeter"]).expect_code(1);
    assert!(run.stderr.contains("the greeting is empty"), "{run}");
    let run = sb.ctl(&["reload", "greeter"]).expect_code(1);
    assert!(run.stderr.contains("the greeting is empty"), "{run}");
    assert_eq!(greeting(&service).as_deref(), Some("bonjour"));

    // rotate: its tracing output moves to the new file.
    let old = sb.path("greeter.log.1");
    std::fs::rename(&log, &old).unwrap();
    sb.ctl(&["rotate", "greeter"]).expect_code(0);
    std::fs::write(&config, "hej\n").unwrap();
    sb.ctl(&["reload", "greeter"]).expect_code(0);
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(new.contains("reload ok"), "{new}");
    assert!(std::fs::read_to_string(&old)
        .unwrap()
        .contains("serving on"));

    // drain closes the listener; resume opens it again.
    sb.ctl(&["drain", "greeter"]).expect_code(0);
    wait_for("the listener to close", WAIT, || {
        (!service.exists()).then_some(())
    });
    assert_eq!(greeting(&service), None);
    sb.ctl(&["resume", "greeter"]).expect_code(0);
    assert_eq!(
        wait_for("the listener to open again", WAIT, || greeting(&service)),
        "hej"
    );

    // status: its own fields, typed.
    let doc = sb
        .ctl(&["--json", "status", "greeter"])
        .expect_code(0)
        .json();
    assert_eq!(doc["result"]["values"]["greeted"], 5, "{doc}");
    assert_eq!(doc["result"]["values"]["greeting"], "hej", "{doc}");

    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.wait_exit().code(), Some(0));
}

/// What the `blocking` example's TCP service answers at the port it wrote, or `None` if it is
/// not listening.
fn greeted_at(port_file: &Path) -> Option<String> {
    let port = std::fs::read_to_string(port_file).ok()?;
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port.trim().parse().ok()?)).ok()?;
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut text = String::new();
    client.read_to_string(&mut text).ok()?;
    Some(text.trim().to_owned())
}

/// A daemon with neither tokio nor a tracing subscriber: `ctl drain` closes its std listener,
/// `ctl resume` opens it again (threads blocked in the tracker learn of both), and the control
/// server's own lines reach its stderr, after one line saying why and how to route them.
#[test]
fn a_daemon_without_tokio_or_a_subscriber_drains_resumes_and_its_server_lines_reach_stderr() {
    let sb = Sandbox::new();
    let port_file = sb.path("blocking.port");
    let stderr = sb.path("blocking.stderr");
    let mut daemon = Daemon {
        child: Command::new(&bins().blocking)
            .arg("blocking")
            .arg(&port_file)
            .env("CTL_SOCKET_DIR", sb.socket_dir())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
        socket: sb.socket_dir().join("blocking.sock"),
        stdout: sb.path("blocking.stdout"),
        stderr: stderr.clone(),
    };
    daemon.wait_ready();
    let greeting = wait_for("the service", WAIT, || greeted_at(&port_file));
    assert_eq!(greeting, "hello blocking");

    sb.ctl(&["drain", "blocking"]).expect_code(0);
    // The listener is closed: nothing answers at its port any more.
    let closed_port = std::fs::read_to_string(&port_file).unwrap();
    wait_for("the listener to close", WAIT, || {
        greeted_at(&port_file).is_none().then_some(())
    });
    let status = sb
        .ctl(&["--json", "status", "blocking"])
        .expect_code(0)
        .json();
    assert_eq!(status["result"]["draining"], true, "{status}");

    sb.ctl(&["resume", "blocking"]).expect_code(0);
    wait_for("the listener to open again", WAIT, || {
        let port = std::fs::read_to_string(&port_file).ok()?;
        (port != closed_port).then_some(())
    });
    let greeting = wait_for("the service again", WAIT, || greeted_at(&port_file));
    assert_eq!(greeting, "hello blocking");

    // The server's lines, with no subscriber of the daemon's: said why once, then written.
    let log = wait_for("the resume's audit line", WAIT, || {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        log.contains("resume ok").then_some(log)
    });
    assert_eq!(
        log.matches("no tracing subscriber is set").count(),
        1,
        "said once: {log}"
    );
    for line in ["control server listening", "drain ok", "resume ok"] {
        assert!(log.contains(line), "{line:?} not in stderr: {log}");
    }
    daemon.child.kill().unwrap();
    daemon.wait_exit();
}
