//! What arrives on the socket besides well-behaved `ctl` calls: requests for operations the
//! daemon does not know, and direct calls that skip `hello`. The daemon keeps serving.

use crate::sandbox_with_daemon;
use control_api::{ControlClient, ControlRequest, HelloRequest, OpError, RotateRequest};
use serde_json::json;
use tests::{frame, read_frame, send_raw};

fn request_json(id: u64, message: serde_json::Value) -> Vec<u8> {
    // Build a genuine request with tarpc's own types, then swap in the message, so the test
    // exercises exactly the daemon's decoding of an unknown operation and nothing else.
    let hello = tarpc::ClientMessage::Request(tarpc::Request {
        context: tarpc::context::current(),
        id,
        message: ControlRequest::Hello {
            req: HelloRequest::default(),
        },
    });
    let mut doc = serde_json::to_value(&hello).unwrap();
    doc["Request"]["message"] = message;
    frame(doc.to_string().as_bytes())
}

#[test]
fn unknown_operation_sent_raw_closes_that_connection_only() {
    let (sb, daemon) = sandbox_with_daemon("raw", 50, &[]);

    // First, prove the raw framing is right: a hello sent this way is answered.
    let mut conn = send_raw(
        &daemon.socket,
        &request_json(1, json!({"Hello": {"req": {}}})),
    );
    let reply = read_frame(&mut conn).expect("the daemon answers a raw hello");
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["request_id"], 1, "{reply}");
    assert_eq!(reply["message"]["Ok"]["Hello"]["name"], "raw", "{reply}");

    // An operation from a newer protocol: the daemon cannot decode it and closes this
    // connection (tarpc cannot report a decode error back).
    conn = send_raw(
        &daemon.socket,
        &request_json(2, json!({"Teleport": {"req": {"to": "mars"}}})),
    );
    assert!(
        read_frame(&mut conn).is_none(),
        "expected the connection to be closed"
    );

    // Everyone else is still served.
    sb.ctl(&["status", "raw"]).expect_code(0);
    daemon.assert_alive();
}

#[test]
fn a_direct_call_to_a_disabled_operation_gets_a_typed_unsupported() {
    let (sb, daemon) = sandbox_with_daemon("direct", 50, &["--disable", "rotate"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .unwrap();
        let client =
            ControlClient::new(Default::default(), control_api::wire::transport(stream)).spawn();
        // An old client that skips hello and calls rotate anyway.
        let reply = client
            .rotate(tarpc::context::current(), RotateRequest::default())
            .await
            .expect("the call is answered, not dropped");
        reply.expect_err("rotate is disabled")
    });
    match err {
        OpError::Unsupported {
            operation,
            supported,
        } => {
            assert_eq!(operation, "rotate");
            assert_eq!(
                supported,
                [
                    "hello",
                    "status",
                    "reload",
                    "drain",
                    "log-level",
                    "resume",
                    "describe",
                    "check",
                    "counters",
                    "ping",
                    "history",
                    "set-message",
                    "stats"
                ]
            );
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    sb.ctl(&["status", "direct"]).expect_code(0);
    daemon.assert_alive();
}

#[test]
fn a_built_in_request_with_fields_of_the_wrong_type_gets_bad_arguments_and_the_connection_serves_on(
) {
    let (sb, daemon) = sandbox_with_daemon("badreq", 50, &[]);
    let filter = |sb: &tests::Sandbox| {
        let run = sb.ctl(&["--json", "log-level", "badreq"]).expect_code(0);
        run.json()["result"]["filter"].clone()
    };
    let before = filter(&sb);
    let mut conn = send_raw(
        &daemon.socket,
        &request_json(1, json!({"LogLevel": {"req": {"filter": 5}}})),
    );
    let reply = read_frame(&mut conn).expect("the daemon answers, not closes");
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let err = &reply["message"]["Ok"]["LogLevel"]["Err"];
    assert_eq!(err["kind"], "bad_arguments", "{reply}");
    assert_eq!(err["command"], "log-level", "{reply}");

    // The same connection still serves, and so does the daemon; the filter is unchanged.
    use std::io::Write as _;
    conn.write_all(&request_json(2, json!({"Status": {"req": {}}})))
        .unwrap();
    let reply = read_frame(&mut conn).expect("status on the same connection");
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        reply["message"]["Ok"]["Status"]["Ok"]["name"], "badreq",
        "{reply}"
    );
    assert_eq!(filter(&sb), before);
}
