//! One open connection's state, shared by the accept loop (eviction), the stream (idle) and the
//! service (requests in flight, refusals in a row): the rules for what counts as busy are here.

use crate::policy::Peer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// Refused calls in a row after which a connection is dropped: `ctl` makes one call per
/// connection, so only a caller that keeps asking after a refusal reaches this.
pub(crate) const REFUSALS_BEFORE_CLOSE: usize = 3;

/// Connections open at once from callers the policy lets in for nothing at all. They can still
/// say `hello` and learn that they are refused; they never take room from anyone else.
pub(crate) const STRANGER_CONNECTIONS: usize = 8;

/// Why a connection was dropped at once, replies and all.
#[derive(Debug)]
pub(crate) enum Kill {
    /// Made room for a newer connection.
    Evicted,
    /// Descriptors ran out and room had to be made.
    NoDescriptors,
    /// The caller sent something that is not a request.
    BadInput(String),
    /// The caller kept calling what it is refused.
    Refused(usize),
    /// The caller hung up while replies were owed.
    Gone,
}

/// What the server knows about one open connection.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Who is at the other end.
    pub peer: Peer,
    /// Requests being processed; a connection with none is idle and may be evicted.
    pub in_flight: AtomicUsize,
    /// Requests received so far: connections that never sent one are evicted first, so that
    /// a `ctl` between its `hello` and its operation outlives clients that say nothing.
    pub requests: AtomicUsize,
    /// Refused calls since the last call that was let in.
    pub refusals: AtomicUsize,
    /// Cancelled to stop reading and close once the replies owed are written: on shutdown
    /// (a child of the server's token) and after the idle timeout.
    pub stop: CancellationToken,
    /// Cancelled to drop the connection at once, with whatever replies it has not taken: a
    /// caller that does not read must not keep memory or a descriptor.
    pub(crate) killed: CancellationToken,
    pub(crate) killed_for: OnceLock<Kill>,
}

impl ConnState {
    pub fn new(peer: Peer, shutdown: &CancellationToken) -> ConnState {
        ConnState {
            peer,
            in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            refusals: AtomicUsize::new(0),
            stop: shutdown.child_token(),
            killed: CancellationToken::new(),
            killed_for: OnceLock::new(),
        }
    }

    /// Drops the connection at once; the first reason given is the one logged.
    pub fn kill(&self, why: Kill) {
        let _ = self.killed_for.set(why);
        self.killed.cancel();
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.is_cancelled()
    }

    pub(crate) fn is_idle(&self) -> bool {
        !self.is_killed() && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Marks the connection busy (not evictable, not idle) until the guard is dropped.
    pub fn begin_request(&self) -> Busy<'_> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    /// Counts a refused call; the connection is dropped after [`REFUSALS_BEFORE_CLOSE`] in a row.
    pub fn refused(&self) {
        let in_a_row = self.refusals.fetch_add(1, Ordering::SeqCst) + 1;
        if in_a_row >= REFUSALS_BEFORE_CLOSE {
            self.kill(Kill::Refused(in_a_row));
        }
    }

    /// A call was let in: the count of refusals in a row starts again.
    pub fn let_in(&self) {
        self.refusals.store(0, Ordering::SeqCst);
    }
}

/// A request in flight on a connection; see [`ConnState::begin_request`].
pub(crate) struct Busy<'a>(&'a ConnState);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
