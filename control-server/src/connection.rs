//! Connections: admission under a cap (evicting the oldest idle one when full), the peer's
//! credentials, an idle timeout, and serving requests until the client leaves, the connection
//! is evicted, or the server shuts down.

use crate::handler::Handler;
use crate::policy::Peer;
use crate::service::{ControlService, Shared};
use control_api::Control;
use futures::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tarpc::server::{BaseChannel, Channel};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

/// What the server knows about one open connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests being processed; a connection with none is idle and may be evicted.
    pub in_flight: AtomicUsize,
    /// Requests received so far: connections that never sent one are evicted first, so that
    /// a `ctl` between its `hello` and its operation outlives clients that say nothing.
    pub requests: AtomicUsize,
    /// Cancelled to close the connection: on eviction, or by the server's shutdown (a child).
    pub stop: CancellationToken,
}

/// The open connections, oldest first (ids only grow).
#[derive(Debug)]
pub(crate) struct Connections {
    max: usize,
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

/// Why a connection was not admitted.
#[derive(Debug)]
pub(crate) struct Full;

impl Connections {
    pub fn new(max: usize) -> Self {
        Connections {
            max,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// Admits connection `conn`. At the cap, the oldest idle connection is told to close to
    /// make room, so that clients that connect and say nothing cannot lock an operator out; if
    /// every connection is busy, the new one is refused. A connection told to close still
    /// counts until its task has ended; at twice the cap nothing more is admitted, so clients
    /// that never read their replies cannot hold more than that many descriptors.
    pub fn admit(&self, conn: u64, shutdown: &CancellationToken) -> Result<Arc<ConnState>, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= 2 * self.max {
            return Err(Full);
        }
        let live = open.values().filter(|c| !c.stop.is_cancelled()).count();
        if live >= self.max {
            let idle = |c: &Arc<ConnState>| {
                !c.stop.is_cancelled() && c.in_flight.load(Ordering::SeqCst) == 0
            };
            let silent = open
                .iter()
                .find(|(_, c)| idle(c) && c.requests.load(Ordering::SeqCst) == 0);
            let idle = silent.or_else(|| open.iter().find(|(_, c)| idle(c)));
            let Some((&victim, state)) = idle else {
                return Err(Full);
            };
            tracing::warn!(
                conn = victim,
                "closing idle connection: {} connections open, the cap",
                self.max
            );
            state.stop.cancel();
        }
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            stop: shutdown.child_token(),
        });
        open.insert(conn, state.clone());
        Ok(state)
    }

    /// Forgets a connection whose task ended.
    pub fn remove(&self, conn: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
    }
}

/// Removes its connection from the table when dropped: when the connection's task ends,
/// whether normally or by a panic.
pub(crate) struct Admitted {
    pub connections: Arc<Connections>,
    pub conn: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.remove(self.conn);
    }
}

/// Limits applied to each connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_requests: usize,
    pub idle_timeout: Duration,
    pub max_frame_len: usize,
    /// How long a connection told to stop may take to send the replies it owes.
    pub stop_grace: Duration,
}

/// Serves one connection to completion.
pub(crate) async fn serve<H: Handler>(
    stream: UnixStream,
    shared: Arc<Shared<H>>,
    conn: u64,
    state: Arc<ConnState>,
    limits: Limits,
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
    let stream = Guarded::new(stream, state.clone(), limits.idle_timeout);
    let service = ControlService {
        shared,
        peer,
        conn,
        state,
    };
    let stop = service.state.stop.clone();
    async move {
        tracing::debug!("connected");
        let requests = BaseChannel::with_defaults(control_api::wire::transport_with_limit(
            stream,
            limits.max_frame_len,
        ))
        .max_concurrent_requests(limits.max_requests)
        .execute(service.serve())
        // Requests run inside this connection's task rather than one spawned task each: a
        // reply then goes out in the same wake-up that produced it. They still run
        // concurrently, and mutating operations move their work to tasks of their own.
        .for_each_concurrent(limits.max_requests, |request| request);
        // Once told to stop, the connection reads no more and has `stop_grace` to write the
        // replies it owes; a client that does not read them loses the connection then.
        let deadline = async {
            stop.cancelled().await;
            tokio::time::sleep(limits.stop_grace).await;
        };
        // tarpc's decoder can panic on some inputs (a deadline too far away to represent):
        // contain it to this connection.
        let guarded = AssertUnwindSafe(requests).catch_unwind();
        tokio::select! {
            ended = guarded => if let Err(panic) = ended {
                tracing::warn!("closing connection: decoding its request panicked: {}", crate::service::panic_message(&panic));
            },
            () = deadline => tracing::info!("closing connection: replies not taken within {:?}", limits.stop_grace),
        }
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// A stream whose read side ends (EOF) when the connection is stopped (eviction, shutdown) or
/// has received nothing for the idle timeout while no request is in flight.
///
/// tarpc then takes no more requests from it, finishes those in flight, writes their replies
/// and closes: a graceful close without tarpc having one of its own. A client that announces a
/// frame and then stalls is closed the same way.
struct Guarded<S> {
    inner: S,
    state: Arc<ConnState>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
}

impl<S> Guarded<S> {
    fn new(inner: S, state: Arc<ConnState>, idle_timeout: Duration) -> Self {
        Guarded {
            inner,
            stop: Box::pin(state.stop.clone().cancelled_owned()),
            state,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polling these first registers the task to be woken by either.
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            if self.state.in_flight.load(Ordering::SeqCst) == 0 {
                tracing::info!(
                    "closing connection: nothing received for {:?}",
                    self.idle_timeout
                );
                self.state.stop.cancel();
                return Poll::Ready(Ok(()));
            }
            // A long operation is running for this client: not idle.
            let next = Instant::now() + self.idle_timeout;
            self.idle.as_mut().reset(next);
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let next = Instant::now() + self.idle_timeout;
            self.idle.as_mut().reset(next);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_oldest_idle_connection() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2);
        let first = conns.admit(1, &shutdown).unwrap();
        let second = conns.admit(2, &shutdown).unwrap();
        first.in_flight.store(1, Ordering::SeqCst); // busy: must not be evicted
        let third = conns.admit(3, &shutdown).unwrap();
        assert!(!first.stop.is_cancelled());
        assert!(second.stop.is_cancelled(), "the oldest idle one goes");
        third.in_flight.store(1, Ordering::SeqCst);
        assert!(conns.admit(4, &shutdown).is_err(), "all busy: refuse");
        conns.remove(2); // the evicted one's task ended
        assert!(conns.admit(5, &shutdown).is_err(), "still all busy");
        third.in_flight.store(0, Ordering::SeqCst);
        conns
            .admit(6, &shutdown)
            .expect("the idle third makes room");
        assert!(third.stop.is_cancelled());
        shutdown.cancel();
        assert!(first.stop.is_cancelled() && third.stop.is_cancelled());
    }

    #[test]
    fn connections_that_never_sent_a_request_are_evicted_first() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2);
        let session = conns.admit(1, &shutdown).unwrap();
        session.requests.store(1, Ordering::SeqCst); // a ctl between hello and its operation
        let silent = conns.admit(2, &shutdown).unwrap();
        conns.admit(3, &shutdown).unwrap();
        assert!(
            silent.stop.is_cancelled(),
            "the silent one goes, though younger"
        );
        assert!(!session.stop.is_cancelled());
    }

    #[test]
    fn connections_told_to_close_count_until_they_end() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2);
        // Idle connections that never end (their clients do not read): each new one evicts
        // the oldest, but nothing is admitted past twice the cap.
        let admitted = (1..=10)
            .filter(|&c| conns.admit(c, &shutdown).is_ok())
            .count();
        assert_eq!(admitted, 4);
    }
}
