//! `resume` on a real socket, in process: with a tracker alone, and with a handler whose own
//! resume fails (the daemon then stays draining, as the contract's exit 1 promises).

use control_api::{
    wire, ControlClient, DrainRequest, HelloRequest, OpError, ResumeReply, ResumeRequest,
    StatusRequest,
};
use control_server::{Server, WorkTracker};
use std::time::{Duration, Instant};

/// The resume of a daemon that cannot reopen what its drain closed.
async fn stuck() -> Result<ResumeReply, OpError> {
    Err(OpError::failed("cannot bind the listener again"))
}

fn ctx() -> tarpc::context::Context {
    let mut ctx = tarpc::context::current();
    ctx.deadline = Instant::now() + Duration::from_secs(10);
    ctx
}

async fn client(socket: &std::path::Path) -> ControlClient {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    ControlClient::new(Default::default(), wire::transport(stream)).spawn()
}

#[tokio::test(flavor = "current_thread")]
async fn a_tracker_gives_resume_and_a_failed_handler_resume_keeps_the_daemon_draining() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stuck.sock");
    let work = WorkTracker::new();
    let server = Server::builder("stuck")
        .resume(|_ctx| stuck())
        .socket_path(&socket)
        .work_tracker(&work)
        .bind()
        .unwrap()
        .spawn();
    let client = client(&socket).await;

    let drained = client.drain(ctx(), DrainRequest::default()).await.unwrap();
    assert!(drained.unwrap().completed);
    let err = client
        .resume(ctx(), ResumeRequest::default())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, OpError::Failed { .. }), "{err:?}");
    assert!(work.is_draining(), "the tracker drains again");
    let status = client.status(ctx(), StatusRequest::default()).await;
    assert!(status.unwrap().unwrap().draining);
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn hello_lists_resume_only_with_a_tracker_or_a_resume_of_the_daemons() {
    let dir = tempfile::tempdir().unwrap();
    for (name, with_tracker, listed) in [("a", true, true), ("b", false, false)] {
        let socket = dir.path().join(format!("{name}.sock"));
        let mut builder = Server::builder(name).socket_path(&socket);
        let work = WorkTracker::new();
        if with_tracker {
            builder = builder.work_tracker(&work);
        }
        let server = builder.bind().unwrap().spawn();
        let hello = client(&socket)
            .await
            .hello(ctx(), HelloRequest::default())
            .await
            .unwrap();
        assert_eq!(hello.supports("resume"), listed, "{name}: {hello:?}");
        server.shutdown().await;
    }
}
