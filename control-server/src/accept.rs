//! The accept loop's work: each accepted connection identified by the kernel's credentials,
//! admitted to its caller's table or refused, and served on a task of its own; an accept that
//! fails (descriptors run out) answered by making room or backing off.

use crate::conn_state::ConnState;
use crate::connection::{Admitted, Tables};
use crate::policy::{Peer, Standing};
use crate::server::Serving;
use crate::state::Shared;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio_util::task::TaskTracker;

/// What the accept loop keeps between two accepts.
pub(crate) struct Acceptor {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    serving: Serving,
    tasks: TaskTracker,
    /// Held in reserve for when descriptors run out: given back, it lets the next accept
    /// through, so the caller can be told apart (and the operator let in) instead of the
    /// accept loop failing blind.
    spare: Option<std::fs::File>,
    next_conn: u64,
    backoff: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

impl Acceptor {
    pub fn new(shared: Arc<Shared>, serving: &Serving, tasks: TaskTracker) -> Acceptor {
        let tables = Arc::new(Tables::new(
            serving.max_connections,
            &shared.noise,
            &shared.counters,
        ));
        Acceptor {
            shared,
            tables,
            serving: *serving,
            tasks,
            spare: std::fs::File::open("/dev/null").ok(),
            next_conn: 0,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Admits `stream` and serves it on a task of its own, or drops it when its caller's table
    /// is full of busy connections.
    pub async fn connection(&mut self, stream: UnixStream) {
        self.backoff = FIRST_BACKOFF;
        if self.spare.is_none() {
            self.spare = std::fs::File::open("/dev/null").ok();
        }
        self.next_conn += 1;
        self.shared.counters.accepted.inc();
        let conn = self.next_conn;
        let Some((peer, standing)) = identify(&stream, &self.shared) else {
            return;
        };
        let table = self.tables.of(standing).clone();
        let state = Arc::new(ConnState::new(peer, &self.shared.shutdown));
        let mut admitted = table.admit(conn, state.clone());
        // Dropped connections count until their tasks end: at twice the cap, let them run (a
        // burst of accepts does not yield otherwise) before refusing.
        for _ in 0..8 {
            match &admitted {
                Err(full) if full.dropping > 0 => {
                    tokio::task::yield_now().await;
                    admitted = table.admit(conn, state.clone());
                }
                _ => break,
            }
        }
        let state = match admitted {
            Ok(state) => state,
            Err(full) => {
                if self.shared.noise.no_room.admit() {
                    tracing::warn!(
                        conn,
                        peer_uid = peer.uid,
                        peer_pid = peer.pid.map_or(-1, i64::from),
                        "refusing connection: all {} connections for {} are busy ({} of them \
                         from uid {})",
                        full.max,
                        standing.describe(),
                        full.top_count,
                        full.top_uid,
                    );
                }
                return;
            }
        };
        let shared = self.shared.clone();
        let admitted = Admitted {
            connections: table,
            conn,
        };
        let serving = self.serving.for_standing(standing);
        self.tasks.spawn(async move {
            crate::connection::serve(stream, shared, conn, state, serving).await;
            drop(admitted);
        });
    }

    /// Answers a failed accept; `false` once the server is told to stop meanwhile.
    pub async fn failed(&mut self, err: io::Error) -> bool {
        if descriptors_exhausted(&err) {
            // Make room rather than wait: give back the spare so the next accept sees who
            // calls, else drop the oldest connection of a caller who is not trusted. Root and
            // the daemon's own user are never the ones dropped.
            let made_room = self.spare.take().is_some() || self.tables.evict_untrusted();
            if self.shared.noise.no_room.admit() {
                tracing::warn!(
                    "accept failed: {err}; {}",
                    if made_room {
                        "making room by closing a connection of an untrusted caller"
                    } else {
                        "no connection to close, retrying"
                    }
                );
            }
            if made_room {
                // Let the dropped connection's task run and close its descriptor.
                tokio::task::yield_now().await;
                return true;
            }
        } else {
            // Anything else: retrying at once could spin; back off instead.
            tracing::warn!("accept failed, retrying in {:?}: {err}", self.backoff);
        }
        let go_on = tokio::select! {
            _ = self.shared.shutdown.cancelled() => false,
            _ = tokio::time::sleep(self.backoff) => true,
        };
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
        go_on
    }
}

/// The kernel's word on who connected, taken before a single byte is read, and where that puts
/// the caller. `None` (the connection is dropped) if the kernel cannot say.
fn identify(stream: &UnixStream, shared: &Shared) -> Option<(Peer, Standing)> {
    match stream.peer_cred() {
        Ok(cred) => {
            let peer = Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid().map(|p| p as u32),
            };
            Some((peer, shared.policy.standing(&peer, shared.own_uid)))
        }
        Err(err) => {
            if shared.noise.bad_input.admit() {
                tracing::warn!("dropping connection: cannot read peer credentials: {err}");
            }
            None
        }
    }
}

/// Whether an accept failed for want of descriptors, the process's or the system's.
fn descriptors_exhausted(err: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(err), Some(Errno::MFILE | Errno::NFILE))
}
