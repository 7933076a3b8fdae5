//! In-process benchmarks over real Unix sockets.
//!
//! - `status/full_stack`: a `status` call through tarpc, JSON, framing, the server's checks and
//!   a handler, beside `status/raw_pingpong`: a tokio `UnixStream` echoing a frame of the same
//!   size as a status reply (the floor on this machine), in the same run.
//! - `throughput/*`: 1, 8 and 64 concurrent callers on one connection and on separate ones.
//! - `rotate/*`: `rotate` with 1 and 16 registered log files.
//!
//! Run: `cargo bench -p control-server --bench roundtrip`.

use control_api::{wire, ControlClient, OpError, RotateRequest, StatusRequest};
use control_server::{DaemonStatus, LogFile, Server, ServerHandle};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;

/// A daemon's part of status, of realistic size.
fn bench_status() -> DaemonStatus {
    {
        DaemonStatus {
            fields: [("queue_depth", "17"), ("peers", "4"), ("message", "hello")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..DaemonStatus::default()
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(rt: &Runtime, dir: &Path, logs: &[LogFile]) -> (ServerHandle, PathBuf) {
    let socket = dir.join("bench.sock");
    let mut builder = Server::builder("bench")
        .status(|_ctx| std::future::ready(bench_status()))
        .socket_path(&socket)
        .max_requests_per_connection(1024);
    for log in logs {
        builder = builder.log_file(log);
    }
    let server = builder.bind().unwrap();
    let handle = rt.block_on(async { server.spawn() });
    (handle, socket)
}

async fn client(socket: &Path) -> ControlClient {
    let stream = UnixStream::connect(socket).await.unwrap();
    ControlClient::new(Default::default(), wire::transport(stream)).spawn()
}

fn ctx() -> tarpc::context::Context {
    let mut ctx = tarpc::context::current();
    ctx.deadline = Instant::now() + Duration::from_secs(10);
    ctx
}

async fn status(client: &ControlClient) {
    let reply = client.status(ctx(), StatusRequest::default()).await;
    let _: control_api::Status = reply.unwrap().unwrap();
}

/// The size of a status reply frame, so the raw ping-pong moves as many bytes.
fn status_frame_len(rt: &Runtime, socket: &Path) -> usize {
    rt.block_on(async {
        let client = client(socket).await;
        let status = client
            .status(ctx(), StatusRequest::default())
            .await
            .unwrap()
            .unwrap();
        // tarpc wraps the reply in a Response envelope of a few dozen bytes.
        serde_json::to_vec(&Ok::<_, OpError>(status)).unwrap().len() + 64
    })
}

fn round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (server, socket) = start(&rt, dir.path(), &[]);
    let frame_len = status_frame_len(&rt, &socket);
    let mut group = c.benchmark_group("status");

    // Both sides measured the same way: a loop of sequential round trips inside one
    // `block_on`, on a current-thread runtime.
    let client = rt.block_on(client(&socket));
    group.bench_function("full_stack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    status(&client).await;
                }
                start.elapsed()
            })
        })
    });

    // The same path with the smallest reply: what the framework costs per call, apart from
    // building and encoding a status.
    group.bench_function("hello_full_stack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let reply = client.hello(ctx(), Default::default()).await;
                    assert!(reply.is_ok());
                }
                start.elapsed()
            })
        })
    });

    // The server's side alone: a pre-encoded `status` request written on a raw socket and the
    // reply frame read back, without tarpc's client.
    let request = {
        let msg = tarpc::ClientMessage::Request(tarpc::Request {
            context: ctx(),
            id: 1,
            message: control_api::ControlRequest::Status {
                req: StatusRequest::default(),
            },
        });
        let payload = serde_json::to_vec(&msg).unwrap();
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        frame
    };
    let mut direct = rt.block_on(UnixStream::connect(&socket)).unwrap();
    group.bench_function("server_only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut reply = vec![0u8; 1 << 16];
                let start = Instant::now();
                for _ in 0..iters {
                    direct.write_all(&request).await.unwrap();
                    let mut len = [0u8; 4];
                    direct.read_exact(&mut len).await.unwrap();
                    let n = u32::from_be_bytes(len) as usize;
                    direct.read_exact(&mut reply[..n]).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    // The floor: one frame out, the same frame back, over a Unix socket, in the same runtime.
    let raw = dir.path().join("raw.sock");
    let (mut stream, echo) = rt.block_on(async {
        let listener = UnixListener::bind(&raw).unwrap();
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let n = u32::from_be_bytes(len) as usize;
                s.read_exact(&mut buf[..n]).await.unwrap();
                s.write_all(&len).await.unwrap();
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        (UnixStream::connect(&raw).await.unwrap(), echo)
    });
    let mut frame = (frame_len as u32).to_be_bytes().to_vec();
    frame.resize(4 + frame_len, b'x');
    let mut back = vec![0u8; 4 + frame_len];
    group.bench_function("raw_pingpong", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    stream.write_all(&frame).await.unwrap();
                    stream.read_exact(&mut back).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(stream);
    echo.abort();
    rt.block_on(server.shutdown());
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (server, socket) = start(&rt, dir.path(), &[]);
    let mut group = c.benchmark_group("throughput");
    for callers in [1usize, 8, 64] {
        group.throughput(Throughput::Elements(callers as u64));
        let shared = rt.block_on(client(&socket));
        group.bench_with_input(
            BenchmarkId::new("one_connection", callers),
            &callers,
            |b, &n| {
                b.to_async(&rt).iter(|| async {
                    futures::future::join_all((0..n).map(|_| status(&shared))).await;
                })
            },
        );
        let separate: Vec<ControlClient> = rt.block_on(futures::future::join_all(
            (0..callers).map(|_| client(&socket)),
        ));
        group.bench_with_input(
            BenchmarkId::new("separate_connections", callers),
            &callers,
            |b, _| {
                b.to_async(&rt).iter(|| async {
                    futures::future::join_all(separate.iter().map(status)).await;
                })
            },
        );
    }
    group.finish();
    rt.block_on(server.shutdown());
}

fn rotate(c: &mut Criterion) {
    let mut group = c.benchmark_group("rotate");
    for files in [1usize, 16] {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let logs: Vec<LogFile> = (0..files)
            .map(|i| LogFile::open(dir.path().join(format!("{i}.log"))).unwrap())
            .collect();
        let (server, socket) = start(&rt, dir.path(), &logs);
        let client = rt.block_on(client(&socket));
        group.bench_with_input(BenchmarkId::new("log_files", files), &files, |b, _| {
            b.to_async(&rt).iter(|| async {
                let reply = client.rotate(ctx(), RotateRequest::default()).await;
                assert_eq!(reply.unwrap().unwrap().files.len(), files);
            })
        });
        rt.block_on(server.shutdown());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = round_trip, throughput, rotate
}
criterion_main!(benches);
