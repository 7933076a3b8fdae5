//! Hostile and careless callers: other users, bad bytes, silent connections, stray signals,
//! a panicking handler. Each test ends with an operator's `ctl status` succeeding against the
//! same daemon process.

use crate::{config, sandbox_with_daemon};
use rustix::process::Signal;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use tests::{frame, send_raw, wait_for, Daemon, Sandbox, NOBODY, WAIT};

/// `ctl status` works and the daemon is the same process as before.
fn assert_still_serving(sb: &Sandbox, daemon: &Daemon, name: &str) {
    daemon.assert_alive();
    let doc = sb.ctl(&["--json", "status", name]).expect_code(0).json();
    assert_eq!(
        doc["result"]["pid"],
        daemon.pid(),
        "a different process answers"
    );
}

/// Reads until the daemon closes the connection; fails if it does not within `WAIT`.
fn assert_closed_by_daemon(mut stream: UnixStream) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the daemon did not close the connection: {e}"),
        }
    }
}

#[test]
fn socket_is_owner_only_by_default_and_as_configured_when_set() {
    // Giving the socket to group 65534 needs root (or membership of that group).
    if !tests::require_root() {
        return;
    }
    let (sb, daemon) = sandbox_with_daemon("mode", 50, &[]);
    let meta = std::fs::symlink_metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_still_serving(&sb, &daemon, "mode");

    let (sb, daemon) = sandbox_with_daemon(
        "group",
        50,
        &[
            "--socket-mode",
            "660",
            "--socket-group",
            &NOBODY.to_string(),
        ],
    );
    let meta = std::fs::symlink_metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), NOBODY);
    assert_still_serving(&sb, &daemon, "group");
}

#[test]
fn another_user_is_refused_by_file_mode_and_by_peer_policy() {
    if !tests::require_root() {
        return;
    }
    // File mode 0600: the kernel refuses the connection.
    let (sb, daemon) = sandbox_with_daemon("fm", 50, &[]);
    sb.open_to_other_users();
    let run = sb.ctl_as_nobody(&["status", "fm"]).expect_code(77);
    assert!(run.stderr.contains("file mode"), "{run}");
    assert_still_serving(&sb, &daemon, "fm");

    // File mode 0666 lets anyone connect; the default policy still refuses, per call.
    let (sb, daemon) = sandbox_with_daemon("pp", 50, &["--socket-mode", "666"]);
    sb.open_to_other_users();
    let run = sb.ctl_as_nobody(&["status", "pp"]).expect_code(77);
    assert!(
        run.stderr.contains("uid 65534 may not call `status`"),
        "{run}"
    );
    let run = sb.ctl_as_nobody(&["reload", "pp"]).expect_code(77);
    assert!(run.stderr.contains("`reload`"), "{run}");
    let log = wait_for("the refusal in the daemon's log", WAIT, || {
        let log = daemon.log();
        log.contains("refused").then_some(log)
    });
    assert!(log.contains("peer_uid=65534"), "{log}");
    assert_still_serving(&sb, &daemon, "pp");
}

#[test]
fn read_only_operations_can_be_opened_to_more_callers_than_mutating_ones() {
    if !tests::require_root() {
        return;
    }
    let (sb, daemon) = sandbox_with_daemon(
        "ro",
        50,
        &[
            "--socket-mode",
            "666",
            "--allow-read-only-uid",
            &NOBODY.to_string(),
        ],
    );
    sb.open_to_other_users();
    sb.ctl_as_nobody(&["status", "ro"]).expect_code(0);
    sb.ctl_as_nobody(&["hello", "ro"]).expect_code(0);
    for op in ["reload", "rotate", "drain"] {
        let run = sb.ctl_as_nobody(&[op, "ro"]).expect_code(77);
        assert!(run.stderr.contains(&format!("`{op}`")), "{run}");
    }
    let doc = sb.ctl(&["--json", "status", "ro"]).expect_code(0).json();
    assert_eq!(
        doc["result"]["draining"], false,
        "the refused drain did not run"
    );
    assert_still_serving(&sb, &daemon, "ro");
}

#[test]
fn garbage_bytes_close_that_connection_only() {
    let (sb, daemon) = sandbox_with_daemon("junk", 50, &[]);
    // An HTTP request: its first four bytes read as a 1.2 GB length.
    assert_closed_by_daemon(send_raw(
        &daemon.socket,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    // A well-sized frame of bytes that are not JSON.
    assert_closed_by_daemon(send_raw(
        &daemon.socket,
        &frame(&[0xff, 0xfe, 0x00, 0x17, 0x80]),
    ));
    // JSON that is not a request.
    assert_closed_by_daemon(send_raw(&daemon.socket, &frame(br#"{"hello": [1, 2, 3]}"#)));
    assert_still_serving(&sb, &daemon, "junk");
}

fn vm_size_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_4_gib_length_prefix_is_refused_before_anything_is_allocated() {
    let (sb, daemon) = sandbox_with_daemon("huge", 50, &[]);
    assert_still_serving(&sb, &daemon, "huge");
    let before = vm_size_kib(daemon.pid());
    for _ in 0..50 {
        assert_closed_by_daemon(send_raw(&daemon.socket, &[0xff, 0xff, 0xff, 0xff, b'{']));
    }
    let grown_mib = vm_size_kib(daemon.pid()).saturating_sub(before) / 1024;
    // Reserving the announced length even once would add 4096 MiB.
    assert!(grown_mib < 256, "virtual size grew by {grown_mib} MiB");
    assert_still_serving(&sb, &daemon, "huge");
}

#[test]
fn a_truncated_frame_is_closed_at_eof_or_after_the_idle_timeout() {
    let (sb, daemon) = sandbox_with_daemon("trunc", 50, &["--idle-timeout", "300ms"]);
    let partial = &frame(br#"{"Request": {"id": 1, "message": "#)[..20];

    // The client sends half a frame and closes its side.
    let stream = send_raw(&daemon.socket, partial);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed_by_daemon(stream);

    // The client sends half a frame and stalls: the idle timeout closes it.
    let stream = send_raw(&daemon.socket, partial);
    assert_closed_by_daemon(stream);
    wait_for("the idle close in the daemon's log", WAIT, || {
        daemon
            .log()
            .contains("nothing received for 300ms")
            .then_some(())
    });
    assert_still_serving(&sb, &daemon, "trunc");
}

#[test]
fn five_hundred_silent_connections_do_not_lock_out_the_operator() {
    let (sb, daemon) = sandbox_with_daemon("crowd", 50, &[]);
    let silent: Vec<UnixStream> = (0..500)
        .map(|i| {
            UnixStream::connect(&daemon.socket)
                .unwrap_or_else(|e| panic!("connection {i} refused by the kernel: {e}"))
        })
        .collect();
    // All 500 are open (or were evicted), and the operator still gets an answer.
    assert_still_serving(&sb, &daemon, "crowd");
    sb.ctl(&["reload", "crowd"]).expect_code(0);
    wait_for("evictions in the daemon's log", WAIT, || {
        daemon
            .log()
            .contains("closing idle connection")
            .then_some(())
    });
    drop(silent);
    assert_still_serving(&sb, &daemon, "crowd");
}

#[test]
fn a_stale_socket_is_replaced_at_start() {
    let sb = Sandbox::new();
    tests::make_stale_socket(&sb.socket_dir().join("phoenix.sock"));

    let daemon = crate::start_demo(&sb, "phoenix", 50, &[]);
    assert_still_serving(&sb, &daemon, "phoenix");
}

#[test]
fn stray_signals_do_not_kill_and_sighup_becomes_a_logged_reload() {
    let (sb, daemon) = sandbox_with_daemon("sig", 20, &[]);
    for signal in [Signal::USR1, Signal::USR2, Signal::QUIT] {
        daemon.signal(signal);
        assert_still_serving(&sb, &daemon, "sig");
    }
    let doc = sb.ctl(&["--json", "status", "sig"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 1, "only SIGHUP reloads");

    let log = sb.path("sig.log");
    std::fs::write(sb.path("sig.toml"), config(&log, 20, "after-hup")).unwrap();
    daemon.signal(Signal::HUP);
    wait_for("the reload caused by SIGHUP", WAIT, || {
        let doc = sb.ctl(&["--json", "status", "sig"]).expect_code(0).json();
        (doc["result"]["config_generation"] == 2).then_some(())
    });
    let doc = sb.ctl(&["--json", "status", "sig"]).expect_code(0).json();
    assert_eq!(doc["result"]["fields"]["message"], "after-hup");
    let log = daemon.log();
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(
        log.contains("use `ctl reload sig`"),
        "the warning names the command: {log}"
    );
    assert_still_serving(&sb, &daemon, "sig");
}

#[test]
fn a_panicking_handler_answers_failed_and_the_daemon_keeps_serving() {
    let (sb, daemon) = sandbox_with_daemon("boom", 20, &[]);
    let log = sb.path("boom.log");
    let mut cfg = config(&log, 20, "alpha");
    cfg.push_str("reload_panics = true\n");
    std::fs::write(sb.path("boom.toml"), cfg).unwrap();

    for _ in 0..3 {
        let run = sb.ctl(&["reload", "boom"]).expect_code(1);
        assert!(
            run.stderr
                .contains("the daemon's handler panicked: reload_panics is set"),
            "{run}"
        );
    }
    let doc = sb.ctl(&["--json", "status", "boom"]).expect_code(0).json();
    assert_eq!(doc["result"]["config_generation"], 1);
    assert_eq!(doc["result"]["last_reload"]["ok"], false);
    // The server's reload lock survived the panics: a good config reloads.
    std::fs::write(sb.path("boom.toml"), config(&log, 20, "beta")).unwrap();
    sb.ctl(&["reload", "boom"]).expect_code(0);
    assert_still_serving(&sb, &daemon, "boom");
}

#[test]
fn a_connection_that_sends_a_request_and_leaves_does_not_hurt() {
    // At a cap of 4, a slot leaked by each of these would lock everyone out after four.
    let (sb, daemon) = sandbox_with_daemon("leave", 20, &["--max-connections", "4"]);
    // A valid-looking frame header, then the client vanishes mid-frame, many times.
    for _ in 0..100 {
        let mut s = UnixStream::connect(&daemon.socket).unwrap();
        let _ = s.write_all(&[0, 0, 1, 0, b'{', b'"']);
    }
    assert_still_serving(&sb, &daemon, "leave");
}

#[test]
fn a_deadline_too_far_away_is_clamped_and_answered() {
    // tarpc's own decoding panics on such a deadline; the daemon's decoding clamps it to 24 h
    // before tarpc sees it. With a cap of 4, twenty of these would lock everyone out if each
    // cost its connection's slot for good.
    let (sb, daemon) = sandbox_with_daemon("far", 50, &["--max-connections", "4"]);
    let request = tarpc::ClientMessage::Request(tarpc::Request {
        context: tarpc::context::current(),
        id: 1,
        message: control_api::ControlRequest::Hello {
            req: control_api::HelloRequest::default(),
        },
    });
    let mut doc = serde_json::to_value(&request).unwrap();
    doc["Request"]["context"]["deadline"] = serde_json::json!({"secs": u64::MAX, "nanos": 0});
    let bytes = frame(doc.to_string().as_bytes());
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = send_raw(&daemon.socket, &bytes);
        let reply = tests::read_frame(&mut stream).expect("a reply to hello");
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["message"]["Ok"]["Hello"]["name"], "far", "{reply}");
        held.push(stream);
    }
    assert_still_serving(&sb, &daemon, "far");
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}
