//! One accepted connection: read the peer's credentials, frame the stream, serve requests until
//! the client leaves or the server shuts down.

use crate::handler::Handler;
use crate::policy::Peer;
use crate::service::{ControlService, Shared};
use control_api::Control;
use futures::StreamExt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tarpc::server::{BaseChannel, Channel};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

/// Serves one connection to completion.
pub(crate) async fn serve<H: Handler>(
    stream: UnixStream,
    shared: Arc<Shared<H>>,
    conn: u64,
    max_requests: usize,
) {
    // The kernel's word on who connected, taken before a single byte is read.
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().map(|p| p as u32),
        },
        Err(err) => {
            tracing::warn!(
                conn,
                "dropping connection: cannot read peer credentials: {err}"
            );
            return;
        }
    };
    let span = tracing::info_span!(
        "control",
        conn,
        peer_pid = peer.pid.map_or(-1, i64::from),
        peer_uid = peer.uid
    );
    let stream = UntilShutdown::new(stream, shared.shutdown.clone());
    let service = ControlService { shared, peer, conn };
    async move {
        tracing::debug!("connected");
        BaseChannel::with_defaults(control_api::wire::transport(stream))
            .max_concurrent_requests(max_requests)
            .execute(service.serve())
            .for_each(|request| async move {
                tokio::spawn(request);
            })
            .await;
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// A stream whose read side ends (EOF) once the server shuts down.
///
/// tarpc then stops taking requests from this connection, finishes those in flight, writes their
/// replies, and closes: a graceful shutdown without tarpc having one of its own.
struct UntilShutdown<S> {
    inner: S,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> UntilShutdown<S> {
    fn new(inner: S, token: CancellationToken) -> Self {
        UntilShutdown {
            inner,
            shutdown: Box::pin(token.cancelled_owned()),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UntilShutdown<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polling the token first registers this task to be woken when shutdown begins.
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UntilShutdown<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

use std::future::Future as _;
