//! Who may call what: peer credentials and the daemon's policy.

use control_api::Operation;

/// The process at the other end of a connection, as the kernel reported it at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id, when the kernel knows it (not for peers in another pid namespace).
    pub pid: Option<u32>,
}

/// A set of callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A process running as this uid.
    Uid(u32),
    /// A process whose effective primary gid is this gid, as the kernel reports it for the
    /// connection (`SO_PEERCRED`). Supplementary groups are not seen: an operator who reaches
    /// a 0660 socket through a supplementary group is matched by uid or by `Anyone`, not here.
    Gid(u32),
    /// Anyone who can open the socket (its file mode still applies).
    Anyone,
}

impl Caller {
    fn matches(&self, peer: &Peer) -> bool {
        match *self {
            Caller::Uid(uid) => peer.uid == uid,
            Caller::Gid(gid) => peer.gid == gid,
            Caller::Anyone => true,
        }
    }
}

/// Which callers may run which operations.
///
/// Root and the daemon's own uid may always call everything. [`Policy::allow`] adds callers for
/// every operation, [`Policy::allow_read_only`] for `hello` and `status` only. Remember that
/// the socket's file mode is checked first, by the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    full: Vec<Caller>,
    read_only: Vec<Caller>,
}

impl Policy {
    /// Lets `caller` run every operation.
    pub fn allow(mut self, caller: Caller) -> Self {
        self.full.push(caller);
        self
    }

    /// Lets `caller` run read-only operations (`hello`, `status`).
    pub fn allow_read_only(mut self, caller: Caller) -> Self {
        self.read_only.push(caller);
        self
    }

    /// Whether `peer` may run `op` on a daemon running as `own_uid`.
    pub fn permits(&self, peer: &Peer, op: Operation, own_uid: u32) -> bool {
        self.permits_access(peer, op.is_mutating(), own_uid)
    }

    /// Whether `peer` is trusted (root or the daemon's own uid), let in for something, or for
    /// nothing but `hello`: what decides which table of connections it competes in.
    pub(crate) fn standing(&self, peer: &Peer, own_uid: u32) -> crate::connection::Standing {
        use crate::connection::Standing;
        if peer.uid == 0 || peer.uid == own_uid {
            Standing::Trusted
        } else if self
            .full
            .iter()
            .chain(&self.read_only)
            .any(|c| c.matches(peer))
        {
            Standing::Permitted
        } else {
            Standing::Stranger
        }
    }

    /// Whether `peer` may make a call that changes state (`mutating`) or only reads it.
    pub fn permits_access(&self, peer: &Peer, mutating: bool, own_uid: u32) -> bool {
        if peer.uid == 0 || peer.uid == own_uid || self.full.iter().any(|c| c.matches(peer)) {
            return true;
        }
        !mutating && self.read_only.iter().any(|c| c.matches(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(1),
        }
    }

    #[test]
    fn default_lets_in_root_and_the_owner_only() {
        let p = Policy::default();
        for op in Operation::ALL {
            assert!(p.permits(&peer(0, 0), op, 1000));
            assert!(p.permits(&peer(1000, 1000), op, 1000));
            assert!(!p.permits(&peer(1001, 1000), op, 1000), "{op}");
        }
    }

    #[test]
    fn read_only_callers_cannot_mutate() {
        let p = Policy::default().allow_read_only(Caller::Gid(4));
        assert!(p.permits(&peer(1001, 4), Operation::Status, 1000));
        assert!(p.permits(&peer(1001, 4), Operation::Hello, 1000));
        assert!(!p.permits(&peer(1001, 4), Operation::Reload, 1000));
        assert!(!p.permits(&peer(1001, 5), Operation::Status, 1000));
    }

    #[test]
    fn full_callers_can_do_everything() {
        let p = Policy::default().allow(Caller::Uid(1001));
        for op in Operation::ALL {
            assert!(p.permits(&peer(1001, 7), op, 1000));
        }
        assert!(Policy::default().allow(Caller::Anyone).permits(
            &peer(5, 5),
            Operation::Drain,
            1000
        ));
    }
}
