//! docs/protocol.md's examples, sent byte for byte to the real demo daemon on one connection,
//! its replies compared with the ones written there: the document a client in another language
//! is written from stays true.

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use tests::Sandbox;

/// Keys whose values differ from run to run: compared by type only.
const VOLATILE: &[&str] = &[
    "pid",
    "uptime_ms",
    "dev",
    "ino",
    "bytes_to_old",
    "path",
    "log_files",
    "version",
    // The demo's count of lines, in `fields` and as the element of `values` so named.
    "lines_written",
    // Who called, and when: the test's own process.
    "unix_ms",
    "uid",
    "user",
    "command_line",
    "duration_ms",
];

/// One example: a request, and the reply (`None`: the connection closes).
struct Example {
    request: String,
    reply: Option<Value>,
}

/// The ```json request / ```json reply (or ```text reply) blocks of the document, in order.
fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    let mut request: Option<String> = None;
    while let Some(line) = lines.next() {
        let kind = match line.trim() {
            "```json request" => "request",
            "```json reply" => "reply",
            "```text reply" => "closed",
            _ => continue,
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let body = body.join("\n");
        match kind {
            "request" => {
                assert!(request.is_none(), "two requests in a row: {body}");
                request = Some(body);
            }
            _ => {
                let request = request.take().expect("a reply follows its request");
                let reply = (kind == "reply").then(|| {
                    serde_json::from_str(&body).unwrap_or_else(|e| {
                        panic!("the documented reply is not JSON ({e}): {body}")
                    })
                });
                out.push(Example { request, reply });
            }
        }
    }
    assert!(request.is_none(), "a request without its reply");
    out
}

/// Whether `actual` has everything `documented` shows: each documented key, with an equal value
/// (by type only under a [`VOLATILE`] key); arrays element by element, of the same length.
fn covers(documented: &Value, actual: &Value, volatile: bool, at: &str) -> Result<(), String> {
    let same_type = std::mem::discriminant(documented) == std::mem::discriminant(actual);
    match (documented, actual) {
        (Value::Object(doc), Value::Object(act)) => {
            // A status field's `{"name": N, ...}` is as volatile as a key N would be.
            let named = doc.get("name").and_then(Value::as_str);
            let volatile = volatile || named.is_some_and(|n| VOLATILE.contains(&n));
            doc.iter().try_for_each(|(k, v)| {
                let here = format!("{at}/{k}");
                let got = act.get(k).ok_or(format!("{here}: missing"))?;
                covers(v, got, volatile || VOLATILE.contains(&k.as_str()), &here)
            })
        }
        (Value::Array(doc), Value::Array(act)) if volatile => doc
            .iter()
            .zip(act)
            .try_for_each(|(d, a)| covers(d, a, true, at)),
        (Value::Array(doc), Value::Array(act)) => {
            if doc.len() != act.len() {
                return Err(format!(
                    "{at}: {} elements documented, {} sent",
                    doc.len(),
                    act.len()
                ));
            }
            doc.iter()
                .zip(act)
                .enumerate()
                .try_for_each(|(i, (d, a))| covers(d, a, false, &format!("{at}/{i}")))
        }
        // A float written `1.0` and sent `1.0` compare equal as numbers.
        (Value::Number(d), Value::Number(a)) if !volatile => match d.as_f64() == a.as_f64() {
            true => Ok(()),
            false => Err(format!("{at}: documented {d}, sent {a}")),
        },
        _ if volatile && same_type => Ok(()),
        _ if documented == actual => Ok(()),
        _ => Err(format!("{at}: documented {documented}, sent {actual}")),
    }
}

fn send(stream: &mut UnixStream, payload: &[u8]) {
    stream
        .write_all(&(payload.len() as u32).to_be_bytes())
        .and_then(|()| stream.write_all(payload))
        .expect("send the frame");
}

/// The next frame, or `None` once the daemon closed the connection.
fn receive(stream: &mut UnixStream) -> Option<Value> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("a whole frame");
    Some(serde_json::from_slice(&body).expect("a reply is JSON"))
}

#[test]
fn the_protocol_documents_examples_are_what_the_daemon_answers() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("docs/protocol.md");
    let examples = examples(&doc);
    assert!(examples.len() >= 8, "{} examples", examples.len());
    let sb = Sandbox::new();
    let log = sb.path("demo.log");
    let config = sb.write_config("demo.toml", &crate::config(&log, 1000, "hello"));
    let demo = sb.start_daemon("demo", &config, &[]);
    let mut stream = UnixStream::connect(&demo.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, example) in examples.iter().enumerate() {
        // Sent as written: the whitespace and key order of the document, not re-encoded.
        send(&mut stream, example.request.as_bytes());
        let reply = receive(&mut stream);
        match (&example.reply, reply) {
            (Some(documented), Some(actual)) => {
                if let Err(why) = covers(documented, &actual, false, "") {
                    panic!(
                        "example {}: {why}\nrequest: {}\nsent: {actual}",
                        i + 1,
                        example.request
                    );
                }
            }
            (None, None) => {}
            (None, Some(actual)) => panic!("example {}: documented closed, sent {actual}", i + 1),
            (Some(_), None) => panic!("example {}: the daemon closed the connection", i + 1),
        }
    }
    // Only the connection that sent the bad frame was closed.
    sb.ctl(&["ping", "demo"]).expect_code(0);
}
