//! Frame limits on a real socket, in process: a daemon that raises its limit can send a large
//! `status`, which a client with the reply limit `ctl` uses reads; a daemon at the default limit
//! cannot send it, and the client gets an error rather than a hang.

use control_api::{wire, ControlClient, Operation, StatusRequest};
use control_server::{DaemonStatus, Handler, OpContext, Server};
use std::time::{Duration, Instant};

/// A daemon whose status carries a 200 KiB field.
struct Big;

impl Handler for Big {
    fn operations(&self) -> Vec<Operation> {
        vec![]
    }

    async fn status(&self, _ctx: OpContext) -> DaemonStatus {
        DaemonStatus {
            fields: [("peers".to_owned(), "p".repeat(200 * 1024))].into(),
            ..DaemonStatus::default()
        }
    }
}

async fn status_len(max_frame_len: Option<usize>) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("big.sock");
    let mut builder = Server::builder("big", Big).socket_path(&socket);
    if let Some(limit) = max_frame_len {
        builder = builder.max_frame_len(limit);
    }
    let server = builder.bind().unwrap().spawn();
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
    let client = ControlClient::new(Default::default(), transport).spawn();
    let mut ctx = tarpc::context::current();
    ctx.deadline = Instant::now() + Duration::from_secs(10);
    let reply = client.status(ctx, StatusRequest::default()).await;
    server.shutdown().await;
    match reply {
        Ok(Ok(status)) => Ok(status.fields["peers"].len()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_raised_limit_lets_a_large_status_through_to_a_client() {
    assert_eq!(status_len(Some(512 * 1024)).await, Ok(200 * 1024));
}

#[tokio::test(flavor = "current_thread")]
async fn a_reply_over_the_daemons_limit_is_an_error_not_a_hang() {
    let err = status_len(None)
        .await
        .expect_err("64 KiB cannot carry 200 KiB");
    assert!(!err.is_empty());
}
