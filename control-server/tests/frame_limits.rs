//! Frame limits on a real socket, in process: the limit on what a daemon reads does not limit
//! what it answers; a reply up to what `ctl` reads arrives whole, and a longer one arrives with
//! its long strings cut, never as an error or a hang.

use control_api::{wire, ControlClient, StatusRequest};
use control_server::{DaemonStatus, Server};
use std::time::{Duration, Instant};

/// A daemon's status that carries a field of `len` bytes.
fn big(len: usize) -> DaemonStatus {
    DaemonStatus {
        fields: [("peers".to_owned(), "p".repeat(len))].into(),
        ..DaemonStatus::default()
    }
}

async fn status_peers(field_len: usize, max_frame_len: Option<usize>) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("big.sock");
    let mut builder = Server::builder("big")
        .status(move |_ctx| std::future::ready(big(field_len)))
        .socket_path(&socket);
    if let Some(limit) = max_frame_len {
        builder = builder.max_frame_len(limit);
    }
    let server = builder.bind().unwrap().spawn();
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
    let client = ControlClient::new(Default::default(), transport).spawn();
    let mut ctx = tarpc::context::current();
    ctx.deadline = Instant::now() + Duration::from_secs(10);
    // Bounded: an over-long reply must never turn into a wait for the deadline.
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client.status(ctx, StatusRequest::default()),
    )
    .await
    .expect("an answer within 5 s");
    server.shutdown().await;
    match reply {
        Ok(Ok(status)) => Ok(status.fields["peers"].clone()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_large_status_reaches_the_client_whatever_the_request_limit() {
    for limit in [None, Some(512 * 1024)] {
        let peers = status_peers(200 * 1024, limit).await.unwrap();
        assert_eq!(peers.len(), 200 * 1024, "request limit {limit:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_status_over_what_clients_read_arrives_cut_with_a_mark() {
    let peers = status_peers(2 * wire::MAX_REPLY_FRAME_LEN, None)
        .await
        .expect("a reply, not an error");
    assert!(peers.len() < wire::MAX_REPLY_FRAME_LEN, "{}", peers.len());
    assert!(peers.starts_with("ppp"));
    assert!(
        peers.ends_with("[cut: reply over the frame limit]"),
        "{}",
        &peers[peers.len() - 60..]
    );
}
