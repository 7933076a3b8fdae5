//! `ctl` against a daemon that answers what it should not: another operation's reply, a reply
//! missing its fields, garbage, text full of terminal escapes; and against a stdout that cannot
//! be written. Whatever comes, `ctl` never panics and its exit code tells the truth.
//!
//! The broken daemons are real Unix sockets served by a thread of the test, which reads each
//! request frame and writes back crafted bytes.

use control_api::{
    ControlRequest, ControlResponse, Hello, OpError, Operation, ReloadReply, Status,
    PROTOCOL_VERSION,
};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{bins, frame, read_frame, run, wait_for, Sandbox, WAIT};

/// What a fake daemon answers to one request: the payload of the reply frame.
type Answer = fn(&ControlRequest, u64) -> Vec<u8>;

/// Serves `connections` connections at `<socket dir>/<name>.sock`, each answered by `answer`.
/// The thread ends after them, or after `WAIT` without a connection.
fn fake_daemon(sb: &Sandbox, name: &str, connections: usize, answer: Answer) {
    // The first test to want ctl builds it, which can take longer than the wait below.
    bins();
    std::fs::create_dir_all(sb.socket_dir()).unwrap();
    let listener = UnixListener::bind(sb.socket_dir().join(format!("{name}.sock"))).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let started = Instant::now();
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if started.elapsed() > WAIT {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            // A ctl call is a hello and an operation (plus status polls during a drain).
            for _ in 0..100 {
                let Some(payload) = read_frame(&mut stream) else {
                    break;
                };
                let Ok(tarpc::ClientMessage::Request(request)) =
                    control_api::wire::decode_request(&payload)
                else {
                    continue;
                };
                let reply = answer(&request.message, request.id);
                if stream.write_all(&frame(&reply)).is_err() {
                    break;
                }
            }
        }
    });
}

/// The reply frame's payload for `message`, exactly as tarpc encodes it.
fn encode(request_id: u64, message: ControlResponse) -> Vec<u8> {
    serde_json::to_vec(&tarpc::Response {
        request_id,
        message: Ok(message),
    })
    .unwrap()
}

/// A correct `hello` from a daemon that supports everything.
fn hello(request_id: u64) -> Vec<u8> {
    encode(
        request_id,
        ControlResponse::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            name: "fake".into(),
            version: "6.6.6".into(),
            pid: 4242,
            operations: Operation::ALL.iter().map(|op| op.to_string()).collect(),
        }),
    )
}

/// Answers hello correctly and every other request with a `reload` reply.
fn answers_reload(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => encode(
            id,
            ControlResponse::Reload(Ok(ReloadReply {
                generation: 9,
                summary: "not what you asked".into(),
                joined: false,
                unchanged: false,
            })),
        ),
    }
}

/// Answers hello correctly and every other request with a successful status of no fields.
fn answers_empty_status(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => format!(r#"{{"request_id":{id},"message":{{"Ok":{{"Status":{{"Ok":{{}}}}}}}}}}"#)
            .into_bytes(),
    }
}

/// Answers hello with a hello of no fields.
fn answers_empty_hello(_: &ControlRequest, id: u64) -> Vec<u8> {
    format!(r#"{{"request_id":{id},"message":{{"Ok":{{"Hello":{{}}}}}}}}"#).into_bytes()
}

/// Answers hello with a status.
fn answers_hello_with_status(_: &ControlRequest, id: u64) -> Vec<u8> {
    encode(id, ControlResponse::Status(Err(OpError::ShuttingDown)))
}

/// Answers hello correctly and everything else with bytes that are not JSON.
fn answers_garbage(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => b"\x00\xffnot json at all".to_vec(),
    }
}

/// Answers hello correctly and every other request with a failure whose reason is escapes.
fn fails_with_escapes(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => encode(
            id,
            ControlResponse::Status(Err(OpError::failed("\x1b]0;owned\x07\x1b[2Jbroken"))),
        ),
    }
}

/// The hand-written replies above must have the shape tarpc really sends, or the tests using
/// them would prove nothing.
#[test]
fn the_crafted_replies_have_the_wire_shape() {
    let status: Status = serde_json::from_str(
        r#"{"name":"d","version":"1","pid":1,"uptime_ms":0,"config_generation":1,
            "draining":false,"in_flight":0,"log_files":[],"fields":{}}"#,
    )
    .unwrap();
    let real: serde_json::Value =
        serde_json::from_slice(&encode(3, ControlResponse::Status(Ok(status)))).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&answers_empty_status(
        &ControlRequest::Status {
            req: Default::default(),
        },
        3,
    ))
    .unwrap();
    assert_eq!(ours["request_id"], real["request_id"]);
    assert!(real["message"]["Ok"]["Status"]["Ok"].is_object(), "{real}");
    assert_eq!(ours["message"]["Ok"]["Status"]["Ok"], serde_json::json!({}));
    let real_hello: serde_json::Value = serde_json::from_slice(&hello(5)).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&answers_empty_hello(
        &ControlRequest::Hello {
            req: Default::default(),
        },
        5,
    ))
    .unwrap();
    assert!(
        real_hello["message"]["Ok"]["Hello"]["pid"].is_number(),
        "{real_hello}"
    );
    assert_eq!(ours["message"]["Ok"]["Hello"], serde_json::json!({}));
}

#[track_caller]
fn assert_no_panic(run: &tests::Run) {
    assert!(!run.stderr.contains("panicked"), "ctl panicked: {run}");
}

#[test]
fn a_reply_to_another_operation_exits_76_and_never_panics() {
    let sb = Sandbox::new();
    fake_daemon(&sb, "liar", 2, answers_reload);
    let run = sb.ctl(&["status", "liar"]).expect_code(76);
    assert_no_panic(&run);
    assert!(
        run.stderr
            .contains("answered a `status` request with a `reload` reply"),
        "{run}"
    );

    let run = sb.ctl(&["--json", "status", "liar"]).expect_code(76);
    assert_no_panic(&run);
    let doc = run.json();
    assert_eq!(doc["ok"], false, "{run}");
    assert_eq!(doc["exit_code"], 76, "{run}");
    assert_eq!(doc["error"]["kind"], "protocol", "{run}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`reload`"),
        "{run}"
    );

    // The first call of all, hello, answered with another operation's reply.
    fake_daemon(&sb, "liar-hello", 1, answers_hello_with_status);
    let run = sb.ctl(&["hello", "liar-hello"]).expect_code(76);
    assert_no_panic(&run);
    assert!(run.stderr.contains("with a `status` reply"), "{run}");
}

#[test]
fn a_reply_missing_its_fields_exits_76_not_0_with_zeros() {
    let sb = Sandbox::new();
    fake_daemon(&sb, "hollow", 2, answers_empty_status);
    let run = sb.ctl(&["status", "hollow"]).expect_code(76);
    assert_no_panic(&run);
    assert!(run.stderr.contains("reply could not be read"), "{run}");
    assert!(run.stderr.contains("missing field"), "{run}");
    let doc = sb
        .ctl(&["--json", "status", "hollow"])
        .expect_code(76)
        .json();
    assert_eq!(doc["error"]["kind"], "protocol");

    fake_daemon(&sb, "hollow-hello", 1, answers_empty_hello);
    let run = sb.ctl(&["hello", "hollow-hello"]).expect_code(76);
    assert!(run.stderr.contains("missing field"), "{run}");
}

#[test]
fn list_shows_broken_daemons_as_broken_and_the_others_as_usual() {
    let sb = Sandbox::new();
    let good = crate::start_demo(&sb, "good", 50, &[]);
    fake_daemon(&sb, "liar", 2, answers_reload);
    fake_daemon(&sb, "noise", 2, answers_garbage);

    // Broken daemons are not serving: the health check fails, after listing all.
    let run = sb.ctl(&["--json", "list"]).expect_code(1);
    assert_no_panic(&run);
    let doc = run.json();
    let states = tests::list_states(&doc);
    assert_eq!(
        states,
        [("good", "serving"), ("liar", "broken"), ("noise", "broken")],
        "{run}"
    );
    assert_eq!(doc["daemons"][0]["status"]["pid"], good.pid(), "{run}");
    assert!(
        doc["daemons"][2]["error"]
            .as_str()
            .unwrap()
            .contains("could not be read"),
        "{run}"
    );

    let run = sb.ctl(&["list"]).expect_code(1);
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {run}"))
            .to_owned()
    };
    assert!(line("good").contains("serving"), "{run}");
    assert!(line("liar").contains("broken"), "{run}");
    assert!(line("noise").contains("broken"), "{run}");
}

/// Runs `ctl ARGS` with stdout on `/dev/full`, where every write fails with ENOSPC.
fn ctl_into_dev_full(sb: &Sandbox, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = Command::new(&bins().ctl)
        .args(args)
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("ctl to exit", WAIT, || child.try_wait().unwrap());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unwritable_stdout_exits_74_with_a_message() {
    let (sb, _daemon) = crate::sandbox_with_daemon("full", 50, &[]);
    for args in [
        &["--json", "status", "full"][..],
        &["status", "full"],
        &["list"],
        &["man"],
    ] {
        let (code, stderr) = ctl_into_dev_full(&sb, args);
        assert_eq!(code, Some(74), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write the output"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The call itself worked, and ctl says so.
    let (_, stderr) = ctl_into_dev_full(&sb, &["status", "full"]);
    assert!(stderr.contains("succeeded"), "{stderr}");
    // A failed call keeps its own code: the output is lost, the failure is not hidden.
    let (code, stderr) = ctl_into_dev_full(&sb, &["--json", "status", "ghost"]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(
        stderr.contains("ghost.sock"),
        "the error is told on stderr: {stderr}"
    );
}

/// A demo config whose `message` (shown by `ctl status`) is terminal escapes: set the window
/// title, clear the screen, ring the bell.
fn escapes_config(sb: &Sandbox, log: &Path) -> std::path::PathBuf {
    sb.write_config(
        "evil.toml",
        &format!(
            "log_file = {:?}\ninterval_ms = 50\nmessage = \"\\u001b]0;owned\\u0007\\u001b[2Jevil\"\n",
            log.display().to_string()
        ),
    )
}

const EVIL: &str = "\x1b]0;owned\x07\x1b[2Jevil";

#[test]
fn daemon_text_never_reaches_the_output_as_terminal_escapes() {
    let sb = Sandbox::new();
    let cfg = escapes_config(&sb, &sb.path("evil.log"));
    let _daemon = sb.start_daemon("evil", &cfg, &[]);

    // On a terminal (`script` gives ctl one), with ctl's own colours off.
    let on_tty = run(Command::new("script")
        .args(["-qec"])
        .arg(format!("{} status evil", bins().ctl.display()))
        .arg("/dev/null")
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .env("NO_COLOR", "1"))
    .expect_code(0);
    assert!(on_tty.stdout.contains("]0;owned[2Jevil"), "{on_tty}");
    assert!(!on_tty.stdout.contains(['\x1b', '\x07']), "{on_tty}");

    // Through a pipe too: human output saved to a file ends up on a terminal later.
    let piped = sb.ctl(&["status", "evil"]).expect_code(0);
    assert!(piped.stdout.contains("]0;owned[2Jevil"), "{piped}");
    assert!(!piped.stdout.contains(['\x1b', '\x07']), "{piped}");

    // --json keeps the daemon's text exact, escaped as JSON escapes it.
    let json = sb.ctl(&["--json", "status", "evil"]).expect_code(0);
    assert!(!json.stdout.contains(['\x1b', '\x07']), "{json}");
    assert_eq!(json.json()["result"]["fields"]["message"], EVIL, "{json}");

    // Error text from a daemon, on stderr.
    fake_daemon(&sb, "evil-errors", 2, fails_with_escapes);
    let failed = sb.ctl(&["status", "evil-errors"]).expect_code(1);
    assert!(failed.stderr.contains("]0;owned[2Jbroken"), "{failed}");
    assert!(!failed.stderr.contains(['\x1b', '\x07']), "{failed}");
    let doc = sb
        .ctl(&["--json", "status", "evil-errors"])
        .expect_code(1)
        .json();
    assert_eq!(
        doc["error"]["detail"]["reason"],
        "\x1b]0;owned\x07\x1b[2Jbroken"
    );
}
