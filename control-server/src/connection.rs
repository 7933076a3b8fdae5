//! Connections: admission by the caller's standing (root and the daemon's own user never
//! compete with anyone else for room), a cap per standing with the oldest idle connection
//! dropped to make room, the idle timeout, and serving requests until the client leaves, the
//! connection is dropped, or the server shuts down.

use crate::conn_state::{ConnState, Kill, STRANGER_CONNECTIONS};
use crate::counters::{Counter, Gauge, ServerCounters};
use crate::noise::{Noise, Throttle};
use crate::policy::Standing;
use crate::server::Serving;
use crate::service::ControlService;
use crate::state::Shared;
use crate::transport::ServerTransport;
use control_api::text::Escaped;
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
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Instrument;

/// The open connections of one standing, oldest first (ids only grow).
#[derive(Debug)]
pub(crate) struct Connections {
    max: usize,
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    /// Rate limit of the line logged when a connection is dropped to make room.
    log: Arc<Throttle>,
    /// Most connections open at once since the table was last empty.
    peak: AtomicUsize,
    /// `ctl.connections.evicted` and `ctl.connections.open`, shared by every table.
    evicted: Counter,
    open_gauge: Gauge,
}

/// Open connections past which, once they have all closed, the memory they used is handed back
/// to the system: a crowd of connections must not leave the daemon larger than it found it.
const TRIM_AFTER_PEAK: usize = 32;

/// Why a connection was not admitted: every connection of its standing is busy. Says who holds
/// the most of them, so the log names the real cause.
#[derive(Debug)]
pub(crate) struct Full {
    pub max: usize,
    pub top_uid: u32,
    pub top_count: usize,
    /// Connections already dropped whose tasks have not yet ended: room that a moment frees.
    pub dropping: usize,
}

impl Connections {
    pub fn new(max: usize, log: Arc<Throttle>, counters: &ServerCounters) -> Self {
        Connections {
            max,
            open: Mutex::new(BTreeMap::new()),
            log,
            peak: AtomicUsize::new(0),
            evicted: counters.evicted.clone(),
            open_gauge: counters.open.clone(),
        }
    }

    /// Admits connection `conn`. At the cap the oldest idle connection (one that never sent a
    /// request first) is dropped to make room, so that clients that connect and say nothing, or
    /// send and never read, cannot lock anyone out; if every one is busy, the new one is
    /// refused. A dropped connection's task ends at its next wake-up; until then it still counts
    /// towards a hard limit of twice the cap.
    pub fn admit(&self, conn: u64, state: Arc<ConnState>) -> Result<Arc<ConnState>, Full> {
        let mut open = crate::panic::lock(&self.open);
        let live = open.values().filter(|c| !c.is_killed()).count();
        let mut evicted = None;
        if open.len() >= 2 * self.max || live >= self.max {
            let silent = open
                .iter()
                .find(|(_, c)| c.is_idle() && c.requests.load(Ordering::SeqCst) == 0);
            let idle = silent.or_else(|| open.iter().find(|(_, c)| c.is_idle()));
            match idle {
                Some((&id, victim)) if open.len() < 2 * self.max => {
                    victim.kill(Kill::Evicted);
                    self.evicted.inc();
                    evicted = Some((id, victim.peer.uid));
                }
                _ => return Err(self.full(&open)),
            }
        }
        open.insert(conn, state.clone());
        self.open_gauge.inc();
        self.peak.fetch_max(open.len(), Ordering::Relaxed);
        drop(open);
        if let Some((victim, uid)) = evicted {
            if self.log.admit() {
                tracing::info!(
                    conn = victim,
                    "closing idle connection of uid {uid} to make room: {} open, the cap",
                    self.max
                );
            }
        }
        Ok(state)
    }

    fn full(&self, open: &BTreeMap<u64, Arc<ConnState>>) -> Full {
        let mut per_uid: BTreeMap<u32, usize> = BTreeMap::new();
        for c in open.values() {
            *per_uid.entry(c.peer.uid).or_default() += 1;
        }
        let (top_uid, top_count) = per_uid
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .unwrap_or_default();
        Full {
            max: self.max,
            top_uid,
            top_count,
            dropping: open.values().filter(|c| c.is_killed()).count(),
        }
    }

    /// Drops the oldest connection, idle ones first, to give back its descriptor. Returns
    /// whether there was one.
    pub fn evict_one(&self, why: fn() -> Kill) -> bool {
        let open = crate::panic::lock(&self.open);
        let victim = open
            .values()
            .find(|c| c.is_idle())
            .or_else(|| open.values().find(|c| !c.is_killed()));
        let evicted = victim.map(|v| v.kill(why())).is_some();
        if evicted {
            self.evicted.inc();
        }
        evicted
    }

    /// Forgets a connection whose task ended.
    pub fn remove(&self, conn: u64) {
        let mut open = crate::panic::lock(&self.open);
        if open.remove(&conn).is_some() {
            self.open_gauge.dec();
        }
        let crowd_gone = open.is_empty() && self.peak.swap(0, Ordering::Relaxed) >= TRIM_AFTER_PEAK;
        drop(open);
        if crowd_gone {
            give_back_memory();
        }
    }
}

/// Returns freed heap memory to the system. glibc keeps what a burst of connections freed for
/// reuse, fragmented, so the resident size of a daemon would stay at its high-water mark after
/// an attack; other allocators return memory by themselves.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The connection tables, one per standing.
#[derive(Debug)]
pub(crate) struct Tables {
    trusted: Arc<Connections>,
    permitted: Arc<Connections>,
    strangers: Arc<Connections>,
}

impl Tables {
    pub fn new(max: usize, noise: &Noise, counters: &ServerCounters) -> Tables {
        let table = |max| Arc::new(Connections::new(max, noise.no_room.clone(), counters));
        Tables {
            trusted: table(max),
            permitted: table(max),
            strangers: table(STRANGER_CONNECTIONS.min(max)),
        }
    }

    pub fn of(&self, standing: Standing) -> &Arc<Connections> {
        match standing {
            Standing::Trusted => &self.trusted,
            Standing::Permitted => &self.permitted,
            Standing::Stranger => &self.strangers,
        }
    }

    /// Drops one connection of a caller who is not trusted, strangers first, to give back a
    /// descriptor. Returns whether there was one.
    pub fn evict_untrusted(&self) -> bool {
        self.strangers.evict_one(|| Kill::NoDescriptors)
            || self.permitted.evict_one(|| Kill::NoDescriptors)
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

/// Concurrent requests on one connection of a caller who is not trusted. `ctl` has at most two
/// in flight (a drain and the status calls that follow its progress); each request in flight
/// holds memory (tarpc's bookkeeping, a span) that a crowd of such connections would multiply.
pub(crate) const UNTRUSTED_MAX_REQUESTS: usize = 4;

impl Serving {
    /// How a connection of this standing is served.
    pub fn for_standing(self, standing: Standing) -> Serving {
        match standing {
            Standing::Trusted => self,
            Standing::Permitted | Standing::Stranger => Serving {
                max_requests_per_connection: self
                    .max_requests_per_connection
                    .min(UNTRUSTED_MAX_REQUESTS),
                ..self
            },
        }
    }
}

/// Serves one admitted connection to completion.
pub(crate) async fn serve(
    stream: UnixStream,
    shared: Arc<Shared>,
    conn: u64,
    state: Arc<ConnState>,
    serving: Serving,
) {
    let peer = state.peer;
    let span = tracing::info_span!(
        "control",
        conn,
        peer_pid = peer.pid.map_or(-1, i64::from),
        peer_uid = peer.uid
    );
    let noise = shared.noise.clone();
    let stream = Guarded {
        inner: stream,
        stop: Box::pin(state.stop.clone().cancelled_owned()),
        state: state.clone(),
        idle: Box::pin(tokio::time::sleep(serving.idle_timeout)),
        idle_timeout: serving.idle_timeout,
        idle_log: noise.idle.clone(),
    };
    let level = shared.policy.level(&peer, shared.own_uid);
    let transport = ServerTransport::new(
        stream,
        serving.max_frame_len,
        state.clone(),
        shared.clone(),
        level,
    );
    let service = ControlService {
        shared,
        peer,
        level,
        state: state.clone(),
        span: span.clone(),
    };
    async move {
        tracing::debug!("connected");
        let requests = BaseChannel::with_defaults(transport)
            .max_concurrent_requests(serving.max_requests_per_connection)
            .execute(service)
            // Requests run inside this connection's task rather than one spawned task each: a
            // reply then goes out in the same wake-up that produced it. They still run
            // concurrently, and mutating operations move their work to tasks of their own.
            .for_each_concurrent(serving.max_requests_per_connection, |request| request);
        // Once told to stop, the connection reads no more and has `shutdown_grace` to write the
        // replies it owes; a client that does not read them loses the connection then.
        let stop = state.stop.clone();
        let grace_over = async {
            stop.cancelled().await;
            tokio::time::sleep(serving.shutdown_grace).await;
        };
        // A panic while serving (tarpc's own code, or ours outside a handler) is contained to
        // this connection.
        let served = AssertUnwindSafe(requests).catch_unwind();
        tokio::select! {
            ended = served => if let Err(panic) = ended {
                state.kill(Kill::BadInput(format!(
                    "serving it panicked: {}",
                    crate::panic::panic_message(&panic)
                )));
            },
            () = grace_over => if noise.bad_input.admit() {
                tracing::info!("closing connection: replies not taken within {:?}", serving.shutdown_grace);
            },
            () = state.killed.cancelled() => {}
        }
        log_kill(&state, &noise);
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// One rate-limited line for a dropped connection.
fn log_kill(state: &ConnState, noise: &Noise) {
    match state.killed_for.get() {
        None | Some(Kill::Evicted | Kill::NoDescriptors | Kill::Gone) => {}
        Some(Kill::BadInput(what)) => {
            if noise.bad_input.admit() {
                // Escaped: a decoding error quotes what the caller sent.
                tracing::warn!("closing connection: it sent {}", Escaped(what));
            }
        }
        Some(Kill::Refused(n)) => {
            if noise.refused_calls.admit() {
                tracing::warn!("closing connection: {n} refused calls in a row");
            }
        }
    }
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
    idle_log: Arc<Throttle>,
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
                if self.idle_log.admit() {
                    tracing::info!(
                        "closing connection: nothing received for {:?}",
                        self.idle_timeout
                    );
                }
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
    use crate::policy::Peer;
    use tokio_util::sync::CancellationToken;

    fn state(uid: u32, shutdown: &CancellationToken) -> Arc<ConnState> {
        let peer = Peer {
            uid,
            gid: uid,
            pid: None,
        };
        Arc::new(ConnState::new(peer, shutdown))
    }

    #[test]
    fn a_full_table_drops_the_oldest_idle_connection_at_once() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2, Throttle::new("test"), &ServerCounters::new());
        let first = conns.admit(1, state(7, &shutdown)).unwrap();
        let second = conns.admit(2, state(7, &shutdown)).unwrap();
        first.in_flight.store(1, Ordering::SeqCst); // busy: must not be evicted
        let third = conns.admit(3, state(7, &shutdown)).unwrap();
        assert!(!first.is_killed());
        assert!(second.is_killed(), "the oldest idle one goes");
        assert!(matches!(second.killed_for.get(), Some(Kill::Evicted)));
        third.in_flight.store(1, Ordering::SeqCst);
        let full = conns.admit(4, state(7, &shutdown)).unwrap_err();
        assert_eq!(
            (full.top_uid, full.top_count),
            (7, 3),
            "names who holds the room"
        );
        conns.remove(2); // the evicted one's task ended
        third.in_flight.store(0, Ordering::SeqCst);
        conns
            .admit(6, state(7, &shutdown))
            .expect("the idle third makes room");
        assert!(third.is_killed());
        shutdown.cancel();
        assert!(
            first.stop.is_cancelled(),
            "shutdown reaches every connection"
        );
    }

    #[test]
    fn connections_that_never_sent_a_request_are_evicted_first() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2, Throttle::new("test"), &ServerCounters::new());
        let session = conns.admit(1, state(7, &shutdown)).unwrap();
        session.requests.store(1, Ordering::SeqCst); // a ctl between hello and its operation
        let silent = conns.admit(2, state(7, &shutdown)).unwrap();
        conns.admit(3, state(7, &shutdown)).unwrap();
        assert!(silent.is_killed(), "the silent one goes, though younger");
        assert!(!session.is_killed());
    }

    #[test]
    fn dropped_connections_count_until_their_task_ends_up_to_twice_the_cap() {
        let shutdown = CancellationToken::new();
        let conns = Connections::new(2, Throttle::new("test"), &ServerCounters::new());
        // Idle connections whose tasks never end: each new one drops the oldest, but nothing
        // is admitted past twice the cap.
        let admitted = (1..=10)
            .filter(|&c| conns.admit(c, state(7, &shutdown)).is_ok())
            .count();
        assert_eq!(admitted, 4);
    }

    #[test]
    fn standings_never_take_room_from_each_other() {
        let shutdown = CancellationToken::new();
        let tables = Tables::new(4, &Noise::new(), &ServerCounters::new());
        let root = tables
            .of(Standing::Trusted)
            .admit(1, state(0, &shutdown))
            .unwrap();
        for c in 2..100 {
            let _ = tables
                .of(Standing::Stranger)
                .admit(c, state(65534, &shutdown));
            let _ = tables
                .of(Standing::Permitted)
                .admit(1000 + c, state(1000, &shutdown));
        }
        assert!(!root.is_killed(), "no crowd of others evicts the operator");
        assert!(tables.evict_untrusted());
        assert!(!root.is_killed(), "nor does running out of descriptors");
    }
}
