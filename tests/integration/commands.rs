//! The daemon's own commands: `ctl describe` and `ctl call` against the demo's `set-message`
//! and `stats`, the typed Rust client, and access levels with a real other uid.

use crate::sandbox_with_daemon;
use demo_daemon::{SetMessage, Stats};
use tests::{read_lines, wait_for, WAIT};

#[test]
fn describe_lists_both_commands_with_their_arguments() {
    let (sb, _d) = sandbox_with_daemon("cmds", 50, &[]);
    let run = sb.ctl(&["describe", "cmds"]).expect_code(0);
    let out = &run.stdout;
    assert!(
        out.contains("set-message") && out.contains("operate"),
        "{run}"
    );
    // With the field's doc comment, which `describe` carries in the schema.
    assert!(
        out.contains("text: string, required (The text later log lines carry)"),
        "{run}"
    );
    assert!(
        out.contains("stats") && out.contains("lines and bytes written"),
        "{run}"
    );
    assert!(out.contains("log-level") && out.contains("admin"), "{run}");

    let doc = sb
        .ctl(&["--json", "describe", "cmds"])
        .expect_code(0)
        .json();
    let ops = doc["result"]["operations"].as_array().unwrap();
    let set = ops.iter().find(|op| op["name"] == "set-message").unwrap();
    assert_eq!(set["kind"], "command");
    assert_eq!(set["args"]["properties"]["text"]["type"], "string");
    let stats = ops.iter().find(|op| op["name"] == "stats").unwrap();
    assert_eq!(stats["access"], "read");
}

#[test]
fn set_message_changes_later_log_lines_and_status() {
    let (sb, _d) = sandbox_with_daemon("setmsg", 20, &[]);
    let run = sb
        .ctl(&["call", "setmsg", "set-message", "text=hi"])
        .expect_code(0);
    assert!(
        run.stdout.contains("message") && run.stdout.contains("hi"),
        "{run}"
    );
    let log = sb.path("setmsg.log");
    wait_for("a log line carrying `hi`", WAIT, || {
        read_lines(&log)
            .iter()
            .any(|l| l.message == "hi")
            .then_some(())
    });
    let status = sb
        .ctl(&["--json", "status", "setmsg"])
        .expect_code(0)
        .json();
    assert_eq!(status["result"]["values"]["message"], "hi");
}

#[test]
fn a_command_says_whether_it_changed_anything_and_ctl_shows_it() {
    let (sb, _d) = sandbox_with_daemon("changed", 50, &[]);
    let set = |text: &str| {
        sb.ctl(&["--json", "call", "changed", "set-message", text])
            .expect_code(0)
            .json()
    };
    // The default config's message is "hello": setting it is still a change (a reload no
    // longer changes the lines' text); setting it again is none.
    for (text, changed) in [
        ("text=hello", true),
        ("text=hello", false),
        ("text=other", true),
    ] {
        let doc = set(text);
        assert_eq!(doc["changed"], changed, "{text}: {doc}");
        assert_eq!(doc["result"]["unchanged"], !changed, "{text}: {doc}");
    }
    let run = sb
        .ctl(&["call", "changed", "set-message", "text=other"])
        .expect_code(0);
    assert!(
        run.stdout
            .ends_with("(nothing changed: it was so already)\n"),
        "{run}"
    );
    // A command that does not say: `null`, and nothing said in the text.
    let doc = sb
        .ctl(&["--json", "call", "changed", "stats"])
        .expect_code(0)
        .json();
    assert!(doc["changed"].is_null(), "{doc}");
    assert!(doc.as_object().unwrap().contains_key("changed"), "{doc}");
    let run = sb.ctl(&["call", "changed", "stats"]).expect_code(0);
    assert!(!run.stdout.contains("nothing changed"), "{run}");
    // Only `call` has it.
    let doc = sb
        .ctl(&["--json", "status", "changed"])
        .expect_code(0)
        .json();
    assert!(!doc.as_object().unwrap().contains_key("changed"), "{doc}");
}

#[test]
fn arguments_that_do_not_fit_exit_2_naming_the_field() {
    let (sb, _d) = sandbox_with_daemon("badargs", 50, &[]);
    let run = sb
        .ctl(&["call", "badargs", "set-message", "colour=red"])
        .expect_code(2);
    assert!(
        run.stderr.contains("colour") && run.stderr.contains("unknown argument"),
        "{run}"
    );
    let run = sb
        .ctl(&["call", "badargs", "set-message", "--args", r#"{"text": 5}"#])
        .expect_code(2);
    assert!(
        run.stderr.contains("`text`") && run.stderr.contains("a string"),
        "{run}"
    );
    let run = sb.ctl(&["call", "badargs", "set-message"]).expect_code(2);
    assert!(
        run.stderr.contains("`text`") && run.stderr.contains("missing"),
        "{run}"
    );
    let doc = sb
        .ctl(&["--json", "call", "badargs", "set-message", "colour=red"])
        .expect_code(2)
        .json();
    assert_eq!(doc["error"]["kind"], "bad_arguments", "{doc}");
}

#[test]
fn an_unknown_command_exits_3_with_the_list() {
    let (sb, _d) = sandbox_with_daemon("unknown", 50, &[]);
    let run = sb.ctl(&["call", "unknown", "flush"]).expect_code(3);
    assert!(
        run.stderr.contains("set-message") && run.stderr.contains("stats"),
        "{run}"
    );
}

#[test]
fn the_daemon_itself_refuses_arguments_that_do_not_fit_and_unknown_commands() {
    // Past ctl's own checks: a client that sends whatever it likes.
    let (sb, _d) = sandbox_with_daemon("direct", 50, &[]);
    let socket = sb.socket_dir().join("direct.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
        let client = control_api::ControlClient::new(
            Default::default(),
            control_api::wire::transport(stream),
        )
        .spawn();
        let mut ctx = tarpc::context::current();
        ctx.deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let call = |command: &str, args: serde_json::Value| control_api::CallRequest {
            command: command.into(),
            args,
        };
        let err = client
            .call(ctx, call("set-message", serde_json::json!({"text": 1})))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, control_api::OpError::BadArguments { field, .. } if field == "text"),
            "{err:?}"
        );
        let err = client
            .call(ctx, call("status", serde_json::Value::Null))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, control_api::OpError::Unsupported { supported, .. } if supported == &["ping", "history", "set-message", "stats"]),
            "{err:?}"
        );
    });
}

#[test]
fn a_rust_client_calls_stats_with_the_shared_type() {
    let (sb, _d) = sandbox_with_daemon("typed", 20, &[]);
    let socket = sb.socket_dir().join("typed.sock");
    let log = sb.path("typed.log");
    wait_for("two log lines", WAIT, || {
        (read_lines(&log).len() >= 2).then_some(())
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = control_api::Client::connect(&socket).await.unwrap();
        let counters = client.call(&Stats {}).await.unwrap();
        assert!(counters.lines >= 2, "{counters:?}");
        assert!(counters.bytes > counters.lines * 10, "{counters:?}");
        assert_eq!(counters.reloads, 0);
        let set = client
            .call(&SetMessage {
                text: "typed".into(),
            })
            .await
            .unwrap();
        assert_eq!(set.message, "typed");
        // The same type tells a Rust caller what the daemon sends beside the reply.
        assert_eq!(
            <SetMessage as control_api::Command>::changed(&set),
            Some(true)
        );
        let again = control_api::codec::Invocation::of(&SetMessage {
            text: "typed".into(),
        })
        .unwrap();
        let replied = client.invoke_reply(again).await.unwrap();
        assert_eq!(replied.changed, Some(false), "{replied:?}");
        assert_eq!(replied.reply["unchanged"], true, "{replied:?}");
    });
}

#[test]
fn a_caller_granted_read_runs_stats_but_not_set_message() {
    if !tests::require_root() {
        return;
    }
    let (sb, _d) = {
        let sb = tests::Sandbox::new();
        sb.open_to_other_users();
        let open = ["--socket-mode", "666", "--allow-read-only-uid", "65534"];
        let d = crate::start_demo(&sb, "levels", 50, &open);
        (sb, d)
    };
    let run = sb
        .ctl_as_nobody(&["call", "levels", "stats"])
        .expect_code(0);
    assert!(run.stdout.contains("lines"), "{run}");
    let run = sb
        .ctl_as_nobody(&["call", "levels", "set-message", "text=no"])
        .expect_code(77);
    assert!(run.stderr.contains("`operate`"), "names the level: {run}");
    let run = sb
        .ctl_as_nobody(&["log-level", "levels", "debug"])
        .expect_code(77);
    assert!(run.stderr.contains("`admin`"), "names the level: {run}");
}
