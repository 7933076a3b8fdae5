//! `ctl` against a daemon that answers what it should not: another operation's reply, a reply
//! missing its fields, garbage, text full of terminal escapes; and against a stdout that cannot
//! be written. Whatever comes, `ctl` never panics and its exit code tells the truth.
//!
//! The broken daemons are real Unix sockets served by a thread of the test, which reads each
//! request frame and writes back crafted bytes.

use control_api::{
    ControlRequest, ControlResponse, Hello, OpError, ReloadReply, Status, PROTOCOL_VERSION,
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
    let name = name.to_owned();
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
                let mut reply = answer(&request.message, request.id);
                if matches!(request.message, ControlRequest::Hello { .. }) {
                    reply = named(reply, &name);
                }
                if stream.write_all(&frame(&reply)).is_err() {
                    break;
                }
            }
        }
    });
}

/// `reply` with the name of [`hello`] replaced by `name`: `ctl` talks on to a daemon found by
/// name only if it answers as that name. Any other reply is kept as it is.
fn named(reply: Vec<u8>, name: &str) -> Vec<u8> {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&reply) else {
        return reply;
    };
    match doc.pointer_mut("/message/Ok/Hello/name") {
        Some(field) if field == "fake" => *field = name.into(),
        _ => return reply,
    }
    serde_json::to_vec(&doc).unwrap()
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
    hello_as(request_id, "fake")
}

/// A correct `hello` from a daemon named `name` that supports every method (`fake` is renamed
/// to the socket's name by [`named`]).
fn hello_as(request_id: u64, name: &str) -> Vec<u8> {
    encode(
        request_id,
        ControlResponse::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            name: name.into(),
            version: "6.6.6".into(),
            pid: 4242,
            operations: control_api::codec::METHODS
                .map(|(_, op)| op.to_owned())
                .into(),
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

/// Set when the impostor below is asked anything but `hello` and `status`.
static IMPOSTOR_ASKED_MORE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Answers hello as another daemon ("impostor"), status with a status, and records whether
/// anything else came.
fn impostor(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello_as(id, "impostor"),
        ControlRequest::Status { .. } => encode(
            id,
            ControlResponse::Status(Ok(Status {
                name: "impostor".into(),
                ..Status::default()
            })),
        ),
        other => {
            IMPOSTOR_ASKED_MORE.store(true, std::sync::atomic::Ordering::SeqCst);
            answers_reload(other, id)
        }
    }
}

#[test]
fn a_daemon_that_answers_as_another_name_is_never_asked_to_act_and_its_status_is_not_shown() {
    let sb = Sandbox::new();
    fake_daemon(&sb, "web", 2, impostor);
    // `status` goes along with `hello` (one round trip), but its reply is not used.
    let run = sb.ctl(&["status", "web"]).expect_code(77);
    assert!(run.stderr.contains("impostor"), "{run}");
    assert!(!run.stdout.contains("impostor"), "{run}");
    let run = sb.ctl(&["reload", "web"]).expect_code(77);
    assert!(run.stderr.contains("impostor"), "{run}");
    assert!(
        !IMPOSTOR_ASKED_MORE.load(std::sync::atomic::Ordering::SeqCst),
        "the impostor was asked to reload"
    );
}

#[test]
fn an_operation_added_later_is_not_sent_to_a_daemon_whose_hello_does_not_list_it() {
    let sb = Sandbox::new();
    // It would answer anything with a `reload` reply (76); it is never asked.
    fake_daemon(&sb, "older", 1, answers_reload);
    let run = sb.ctl(&["ping", "older"]).expect_code(3);
    assert_no_panic(&run);
    assert!(run.stderr.contains("ping"), "{run}");
    assert!(
        run.stderr.contains("counters"),
        "lists what it supports: {run}"
    );
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

    // A health check: a broken daemon makes it fail, as `ctl status` on it would (76).
    let run = sb.ctl(&["--json", "list"]).expect_code(76);
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

    let run = sb.ctl(&["list"]).expect_code(76);
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
    assert!(
        on_tty.stdout.contains(r"\u{1b}]0;owned\u{7}\u{1b}[2Jevil"),
        "{on_tty}"
    );
    assert!(!on_tty.stdout.contains(['\x1b', '\x07']), "{on_tty}");

    // Through a pipe too: human output saved to a file ends up on a terminal later.
    let piped = sb.ctl(&["status", "evil"]).expect_code(0);
    assert!(
        piped.stdout.contains(r"\u{1b}]0;owned\u{7}\u{1b}[2Jevil"),
        "{piped}"
    );
    assert!(!piped.stdout.contains(['\x1b', '\x07']), "{piped}");

    // --json keeps the daemon's text exact, escaped as JSON escapes it.
    let json = sb.ctl(&["--json", "status", "evil"]).expect_code(0);
    assert!(!json.stdout.contains(['\x1b', '\x07']), "{json}");
    assert_eq!(json.json()["result"]["fields"]["message"], EVIL, "{json}");

    // Error text from a daemon, on stderr.
    fake_daemon(&sb, "evil-errors", 2, fails_with_escapes);
    let failed = sb.ctl(&["status", "evil-errors"]).expect_code(1);
    assert!(
        failed
            .stderr
            .contains(r"\u{1b}]0;owned\u{7}\u{1b}[2Jbroken"),
        "{failed}"
    );
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

/// Answers hello correctly and `describe` with two commands: one whose name is shell code, one
/// valid.
fn describes_a_command_named_shell_code(request: &ControlRequest, id: u64) -> Vec<u8> {
    use control_api::{Access, Description, OperationInfo, OperationKind};
    let command = |name: &str| OperationInfo {
        name: name.into(),
        doc: "a command".into(),
        access: Access::Read,
        kind: OperationKind::Command,
        args: serde_json::json!({}),
        reply: serde_json::json!({}),
    };
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => encode(
            id,
            ControlResponse::Describe(Ok(Description {
                operations: vec![command("$(touch PWNED4)"), command("stats")],
            })),
        ),
    }
}

/// A daemon's reply names a command `$(touch PWNED4)`: TAB after `ctl call NAME` offers only
/// the names `ctl call` would take, in bash and (where installed) fish, and nothing runs.
#[test]
fn completion_never_offers_a_daemons_command_name_that_is_shell_code() {
    let sb = Sandbox::new();
    fake_daemon(&sb, "cmdnames", 1, describes_a_command_named_shell_code);
    let pwned = sb.path("PWNED4");
    let (offered, entered) =
        crate::operator::bash_complete_and_enter(&sb, "ctl call cmdnames ", |cmd| {
            cmd.env("CTL_SOCKET_DIR", sb.socket_dir());
        });
    assert_eq!(offered, ["stats"], "{entered:?}");
    assert!(!pwned.exists(), "the completion ran code: {offered:?}");

    if !tests::have_program("fish") {
        return;
    }
    // Asked twice: whether ctl adds anything there, then what.
    fake_daemon(
        &sb,
        "cmdnames-fish",
        2,
        describes_a_command_named_shell_code,
    );
    let script = sb.path("ctl.fish");
    std::fs::write(
        &script,
        sb.ctl(&["completions", "fish"]).expect_code(0).stdout,
    )
    .unwrap();
    let ctl_dir = bins().ctl.parent().unwrap().to_owned();
    let done = run(Command::new("fish")
        .args(["--no-config", "-c"])
        .arg("source $SCRIPT; complete -C 'ctl call cmdnames-fish '")
        .current_dir(sb.dir.path())
        .env("SCRIPT", &script)
        .env("CTL_SOCKET_DIR", sb.socket_dir())
        .env(
            "PATH",
            format!("{}:{}", ctl_dir.display(), std::env::var("PATH").unwrap()),
        ))
    .expect_code(0);
    let offered: Vec<&str> = done
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l))
        .collect();
    assert_eq!(offered, ["stats"], "{done}");
    assert!(!pwned.exists(), "the completion ran code: {done}");
}

/// Text that would forge a row of output and reverse what follows it.
const FORGER: &str = "x\nFORGED  row\u{202e}gnp.exe";

/// Answers every operation with its reply, every string in it [`FORGER`]: hello's name too.
fn forges_rows(request: &ControlRequest, id: u64) -> Vec<u8> {
    use control_api::{
        Access, CountersReply, Description, OperationInfo, OperationKind, ReloadOutcome,
        StatusField,
    };
    let text = || FORGER.to_owned();
    match request {
        ControlRequest::Hello { .. } => encode(
            id,
            ControlResponse::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                name: text(),
                version: text(),
                pid: 4242,
                operations: control_api::codec::METHODS
                    .map(|(_, op)| op.to_owned())
                    .into(),
            }),
        ),
        ControlRequest::Status { .. } => encode(
            id,
            ControlResponse::Status(Ok(Status {
                name: text(),
                version: text(),
                pid: 4242,
                config_generation: 1,
                last_reload: Some(ReloadOutcome {
                    ok: true,
                    generation: 1,
                    message: text(),
                    finished_unix_ms: 0,
                }),
                log_files: vec![text().into()],
                values: vec![StatusField::new(text(), text())],
                ..Status::default()
            })),
        ),
        ControlRequest::Counters { .. } => encode(
            id,
            ControlResponse::Counters(Ok(CountersReply {
                counters: vec![control_api::types::CounterValue {
                    name: text(),
                    kind: control_api::types::CounterKind::Counter,
                    value: 7,
                    help: text(),
                }],
            })),
        ),
        _ => encode(
            id,
            ControlResponse::Describe(Ok(Description {
                operations: [OperationKind::Builtin, OperationKind::Command]
                    .map(|kind| OperationInfo {
                        name: text(),
                        doc: text(),
                        access: Access::Read,
                        kind,
                        args: serde_json::json!({
                            "type": "object",
                            "properties": {FORGER: {"type": "string"}},
                        }),
                        reply: serde_json::json!({}),
                    })
                    .to_vec(),
            })),
        ),
    }
}

/// Answers hello correctly and `status` with a failure whose reason forges a row.
fn fails_forging_a_row(request: &ControlRequest, id: u64) -> Vec<u8> {
    match request {
        ControlRequest::Hello { .. } => hello(id),
        _ => encode(id, ControlResponse::Status(Err(OpError::failed(FORGER)))),
    }
}

/// A daemon's strings hold newlines and U+202E: `ctl`'s human output shows them escaped, each
/// on the row it belongs to, in `status`, `counters`, `describe`, `list` and errors; `--json`
/// keeps them exact.
#[test]
fn daemon_text_never_forges_rows_or_reorders_them() {
    let sb = Sandbox::new();
    fake_daemon(&sb, "forger", 5, forges_rows);
    fake_daemon(&sb, "forger-err", 2, fails_forging_a_row);
    let socket = sb.socket_dir().join("forger.sock");
    let socket = socket.to_str().unwrap();
    let shown = "x\\nFORGED  row\\u{202e}gnp.exe";
    let check = |run: &tests::Run, text: &str| {
        assert_no_panic(run);
        assert!(!text.contains('\u{202e}'), "{run}");
        assert!(
            !text.lines().any(|l| l.starts_with("FORGED")),
            "a forged row: {run}"
        );
        assert!(text.contains(shown), "the text is shown, escaped: {run}");
    };
    for args in [
        &["status", socket][..],
        &["counters", socket],
        &["describe", socket],
    ] {
        let run = sb.ctl(args).expect_code(0);
        check(&run, &run.stdout);
    }
    // Both answer as another name than their socket's: refused (77), the name shown escaped.
    let listed = sb.ctl(&["list"]).expect_code(77);
    assert!(listed.stdout.contains("misnamed"), "{listed}");
    check(&listed, &listed.stdout);
    assert_eq!(listed.stdout.lines().count(), 2, "one row each: {listed}");
    let failed = sb.ctl(&["status", "forger-err"]).expect_code(1);
    check(&failed, &failed.stderr);
    assert_eq!(failed.stderr.lines().count(), 1, "{failed}");

    let json = sb.ctl(&["--json", "status", socket]).expect_code(0);
    assert_eq!(json.json()["daemon"]["name"], FORGER, "{json}");
}
