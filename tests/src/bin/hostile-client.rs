//! A hostile local client, for the tests and the soak script: it speaks the wire (frames of
//! JSON) directly and misbehaves in one of several ways, each bounded in time or count. Run it
//! as another user (`setpriv --reuid=65534 ...`) to play a caller the daemon refuses.
//!
//! ```text
//! hostile-client refused-flood SOCKET SECONDS      pipeline `status` calls, read replies, reconnect when cut
//! hostile-client churn SOCKET SECONDS PER_SECOND   connect, pipeline calls, never read, keep the connection
//! hostile-client far-deadlines SOCKET COUNT        `hello` calls whose deadline is 10^12 s away
//! hostile-client zero-deadlines SOCKET COUNT       `hello` and `status` calls whose deadline is now
//! hostile-client garbage SOCKET SECONDS            random frames and bytes, reconnecting
//! hostile-client hold SOCKET COUNT SECONDS         open connections and say nothing
//! hostile-client call SOCKET COMMAND ARGS_JSON     one `call` of any name and arguments, reply read
//! hostile-client forged-names SOCKET SECONDS       pipeline `call`s whose command and argument
//!                                                  names carry newlines, forged log lines and
//!                                                  bidi overrides, reconnecting
//! hostile-client squat PATH SECONDS                whenever PATH is free, take it with a listener
//!                                                  whose queue is full, hold it 2 s, let it go
//! ```
//!
//! It prints one line of counts (`key=value ...`) and exits 0, or 2 on a usage error.

use control_api::{CallRequest, ControlRequest, HelloRequest, StatusRequest};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("hostile-client: missing argument {i}; see the source's doc comment");
            std::process::exit(2)
        })
    };
    let num = |i: usize| -> u64 {
        arg(i).parse().unwrap_or_else(|_| {
            eprintln!("hostile-client: argument {i} must be a number");
            std::process::exit(2)
        })
    };
    let socket = PathBuf::from(arg(1));
    let report = match arg(0) {
        "refused-flood" => refused_flood(&socket, secs(num(2))),
        "churn" => churn(&socket, secs(num(2)), num(3)),
        "far-deadlines" => deadlines(&socket, num(2), 1_000_000_000_000),
        "zero-deadlines" => deadlines(&socket, num(2), 0),
        "garbage" => garbage(&socket, secs(num(2))),
        "hold" => hold(&socket, num(2), secs(num(3))),
        "call" => call(&socket, arg(2), arg(3)),
        "forged-names" => forged_names(&socket, secs(num(2))),
        "squat" => squat(&socket, secs(num(2))),
        other => {
            eprintln!("hostile-client: unknown mode {other:?}");
            std::process::exit(2)
        }
    };
    println!("{report}");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One framed request, as `ctl` would send it, with `deadline_secs` to go.
fn request(id: u64, message: ControlRequest, deadline_secs: u64) -> Vec<u8> {
    let msg = tarpc::ClientMessage::Request(tarpc::Request {
        context: tarpc::context::current(),
        id,
        message,
    });
    let mut doc = serde_json::to_value(&msg).expect("encode");
    doc["Request"]["context"]["deadline"] = serde_json::json!({"secs": deadline_secs, "nanos": 0});
    tests::frame(doc.to_string().as_bytes())
}

fn status(id: u64) -> Vec<u8> {
    request(
        id,
        ControlRequest::Status {
            req: StatusRequest::default(),
        },
        10,
    )
}

/// Reads and discards until the daemon closes the connection (or it errors).
fn drain_replies(mut stream: UnixStream) -> u64 {
    let mut buf = [0u8; 64 * 1024];
    let mut bytes = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return bytes,
            Ok(n) => bytes += n as u64,
        }
    }
}

fn refused_flood(socket: &Path, length: Duration) -> String {
    pipeline(socket, length, status)
}

/// Pipelines batches of 64 requests made by `request(id)`, reading replies on a thread of its
/// own, and connects again whenever the daemon cuts it off, until `length` has passed.
fn pipeline(socket: &Path, length: Duration, request: impl Fn(u64) -> Vec<u8>) -> String {
    let start = Instant::now();
    let (mut connections, mut sent, mut cut) = (0u64, 0u64, 0u64);
    while start.elapsed() < length {
        let Ok(mut stream) = UnixStream::connect(socket) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        connections += 1;
        let reader = stream.try_clone().expect("clone");
        let reading = std::thread::spawn(move || drain_replies(reader));
        let mut batch = Vec::new();
        loop {
            batch.clear();
            for _ in 0..64 {
                sent += 1;
                batch.extend_from_slice(&request(sent));
            }
            if stream.write_all(&batch).is_err() {
                cut += 1;
                break;
            }
            if start.elapsed() >= length {
                break;
            }
        }
        drop(stream);
        let _ = reading.join();
    }
    format!("connections={connections} requests={sent} cut_off={cut}")
}

fn churn(socket: &Path, length: Duration, per_second: u64) -> String {
    let start = Instant::now();
    let pause = Duration::from_secs(1) / per_second.max(1) as u32;
    let mut open: std::collections::VecDeque<UnixStream> = Default::default();
    let (mut opened, mut failed) = (0u64, 0u64);
    let mut id = 0;
    while start.elapsed() < length {
        match UnixStream::connect(socket) {
            Ok(mut stream) => {
                opened += 1;
                stream.set_nonblocking(true).expect("nonblocking");
                // Requests whose replies are never read: they pile up in the daemon.
                for _ in 0..64 {
                    id += 1;
                    if stream.write_all(&status(id)).is_err() {
                        break;
                    }
                }
                open.push_back(stream);
                if open.len() > 1000 {
                    open.pop_front();
                }
            }
            Err(_) => failed += 1,
        }
        std::thread::sleep(pause);
    }
    format!("opened={opened} failed={failed}")
}

/// `count` calls, answered in batches, each with `deadline_secs` to go.
fn deadlines(socket: &Path, count: u64, deadline_secs: u64) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect");
    let (mut sent, mut answered) = (0u64, 0u64);
    while sent < count {
        // Many in flight at once, as a flood would have them.
        let n = (count - sent).min(256);
        let mut batch = Vec::new();
        for _ in 0..n {
            sent += 1;
            let message = if sent % 2 == 0 && deadline_secs == 0 {
                ControlRequest::Status {
                    req: StatusRequest::default(),
                }
            } else {
                ControlRequest::Hello {
                    req: HelloRequest::default(),
                }
            };
            batch.extend_from_slice(&request(sent, message, deadline_secs));
        }
        if stream.write_all(&batch).is_err() {
            break;
        }
        let mut ok = true;
        for _ in 0..n {
            match tests::read_frame(&mut stream) {
                Some(_) => answered += 1,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break;
        }
    }
    format!("sent={sent} answered={answered}")
}

/// A small xorshift generator: random enough to make garbage, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn garbage(socket: &Path, length: Duration) -> String {
    let start = Instant::now();
    let seed = start.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let mut rng = Rng(seed | 1);
    let mut connections = 0u64;
    while start.elapsed() < length {
        let Ok(mut stream) = UnixStream::connect(socket) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        connections += 1;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let bytes: Vec<u8> = match rng.next() % 4 {
            // A frame of random bytes.
            0 => {
                let len = (rng.next() % 2000) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                tests::frame(&payload)
            }
            // A length far over the limit.
            1 => vec![0x7f, 0xff, 0xff, 0xff, b'{'],
            // JSON that is not a request.
            2 => tests::frame(br#"{"Request":{"id":"x","message":{"Nope":{}}}}"#),
            // A valid request with a bit flipped somewhere.
            _ => {
                let mut frame = status(1);
                let at = 4 + (rng.next() as usize % (frame.len() - 4));
                frame[at] ^= 1 << (rng.next() % 8);
                frame
            }
        };
        let _ = stream.write_all(&bytes);
        drain_replies(stream);
    }
    format!("connections={connections}")
}

fn hold(socket: &Path, count: u64, length: Duration) -> String {
    let held: Vec<UnixStream> = (0..count)
        .filter_map(|_| UnixStream::connect(socket).ok())
        .collect();
    println!("holding={}", held.len());
    let _ = std::io::stdout().flush();
    std::thread::sleep(length);
    format!("held={}", held.len())
}

/// One `call` of `command` with `args` (JSON), names as given (`ctl` would refuse to send a
/// name the daemon does not list); reports whether a reply came.
fn call(socket: &Path, command: &str, args: &str) -> String {
    let args: serde_json::Value = serde_json::from_str(args).unwrap_or_else(|e| {
        eprintln!("hostile-client: ARGS_JSON is not JSON: {e}");
        std::process::exit(2)
    });
    let req = CallRequest {
        command: command.to_owned(),
        args,
    };
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
        .write_all(&request(1, ControlRequest::Call { req }, 10))
        .expect("send");
    let replied = tests::read_frame(&mut stream).is_some();
    format!("replied={}", u8::from(replied))
}

/// A name that would forge log lines if written as it came: a newline, a whole dated record,
/// a bidi override that reverses what follows on a terminal.
fn forged_name(n: u64) -> String {
    format!(
        "x{n}\n2026-12-07T00:00:00.000000Z  INFO control_server: reload ok uid=0 pid=1\r{}evil",
        '\u{202e}'
    )
}

fn forged_names(socket: &Path, length: Duration) -> String {
    pipeline(socket, length, |id| {
        let mut args = serde_json::Map::new();
        args.insert(forged_name(id), serde_json::json!(1));
        let req = CallRequest {
            command: forged_name(id),
            args: serde_json::Value::Object(args),
        };
        request(id, ControlRequest::Call { req }, 10)
    })
}

/// Races a daemon for its socket path: each time the path is free (a cleaner removed the
/// socket), binds a listener there whose queue is full, holds it, then removes it.
fn squat(path: &Path, length: Duration) -> String {
    let start = Instant::now();
    let (mut won, mut tries) = (0u64, 0u64);
    while start.elapsed() < length {
        tries += 1;
        match tests::squat(path) {
            Ok(held) => {
                won += 1;
                std::thread::sleep(
                    Duration::from_secs(2).min(length.saturating_sub(start.elapsed())),
                );
                let _ = std::fs::remove_file(path);
                drop(held);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    format!("tries={tries} squatted={won}")
}
