//! Who may call what: peer credentials, and the access level the daemon's policy grants them.

pub use control_api::Access;
use control_api::Command;

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

/// Which callers have which [`Access`] level.
///
/// Root and the daemon's own uid always have `admin`; nobody else has anything until
/// [`Policy::grant`] gives it. A caller matched by several grants has the highest. Remember
/// that the socket's file mode is checked first, by the kernel.
///
/// ```
/// use control_server::{Access, Caller, Policy};
///
/// let adm = 4;
/// let policy = Policy::default()
///     .grant(Caller::Gid(adm), Access::Operate)
///     .grant(Caller::Anyone, Access::Read);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    grants: Vec<(Caller, Access)>,
}

/// Who a caller is to the daemon, decided by the kernel's credentials before a byte is read.
/// Each standing has its own table of connections, so no caller can crowd out a better one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Root or the daemon's own uid: the operator.
    Trusted,
    /// Someone the policy grants some level.
    Permitted,
    /// Someone the policy grants nothing: they may only say `hello`.
    Stranger,
}

impl Standing {
    /// For the log: whose connections these are.
    pub fn describe(self) -> &'static str {
        match self {
            Standing::Trusted => "root and the daemon's own user",
            Standing::Permitted => "callers the policy lets in",
            Standing::Stranger => "callers the policy refuses",
        }
    }
}

impl Policy {
    /// Grants `caller` the level `access` (and so every level below it).
    pub fn grant(mut self, caller: Caller, access: Access) -> Self {
        self.grants.push((caller, access));
        self
    }

    /// Lets `caller` run every operation: [`Policy::grant`] of [`Access::Admin`].
    pub fn allow(self, caller: Caller) -> Self {
        self.grant(caller, Access::Admin)
    }

    /// Lets `caller` look but change nothing: [`Policy::grant`] of [`Access::Read`].
    pub fn allow_read_only(self, caller: Caller) -> Self {
        self.grant(caller, Access::Read)
    }

    /// The level `peer` has on a daemon running as `own_uid`; `None` for nothing at all.
    pub fn level(&self, peer: &Peer, own_uid: u32) -> Option<Access> {
        if peer.uid == 0 || peer.uid == own_uid {
            return Some(Access::Admin);
        }
        self.grants
            .iter()
            .filter(|(caller, _)| caller.matches(peer))
            .map(|&(_, access)| access)
            .max()
    }

    /// Whether `peer` may make the call `request` (at the level [`Command::access`] says).
    pub fn permits<C: Command>(&self, peer: &Peer, request: &C, own_uid: u32) -> bool {
        self.level(peer, own_uid) >= Some(request.access())
    }

    /// Which table of connections `peer` competes in.
    pub(crate) fn standing(&self, peer: &Peer, own_uid: u32) -> Standing {
        if peer.uid == 0 || peer.uid == own_uid {
            Standing::Trusted
        } else if self.level(peer, own_uid).is_some() {
            Standing::Permitted
        } else {
            Standing::Stranger
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_api::{DrainRequest, HelloRequest, LogLevelRequest, ReloadRequest, StatusRequest};

    const STATUS: StatusRequest = StatusRequest {};
    const RELOAD: ReloadRequest = ReloadRequest {};

    fn set_level() -> LogLevelRequest {
        LogLevelRequest {
            filter: Some("debug".into()),
        }
    }

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
        for uid in [0, 1000] {
            assert!(p.permits(&peer(uid, uid), &set_level(), 1000));
            assert!(p.permits(&peer(uid, uid), &RELOAD, 1000));
        }
        assert!(!p.permits(&peer(1001, 1000), &HelloRequest::default(), 1000));
        assert_eq!(p.standing(&peer(1001, 1000), 1000), Standing::Stranger);
    }

    #[test]
    fn read_only_callers_cannot_mutate() {
        let p = Policy::default().allow_read_only(Caller::Gid(4));
        assert!(p.permits(&peer(1001, 4), &STATUS, 1000));
        assert!(p.permits(&peer(1001, 4), &HelloRequest::default(), 1000));
        assert!(p.permits(&peer(1001, 4), &LogLevelRequest::default(), 1000));
        assert!(!p.permits(&peer(1001, 4), &RELOAD, 1000));
        assert!(!p.permits(&peer(1001, 5), &STATUS, 1000));
        assert_eq!(p.standing(&peer(1001, 4), 1000), Standing::Permitted);
    }

    #[test]
    fn levels_nest_and_the_highest_grant_wins() {
        let p = Policy::default()
            .grant(Caller::Anyone, Access::Read)
            .grant(Caller::Gid(4), Access::Operate);
        let op = peer(1001, 4);
        assert!(p.permits(&op, &RELOAD, 1000));
        assert!(p.permits(&op, &STATUS, 1000));
        assert!(
            !p.permits(&op, &set_level(), 1000),
            "setting the log filter needs admin"
        );
        assert_eq!(p.level(&peer(5, 5), 1000), Some(Access::Read));
    }

    #[test]
    fn full_callers_can_do_everything() {
        let p = Policy::default().allow(Caller::Uid(1001));
        assert!(p.permits(&peer(1001, 7), &set_level(), 1000));
        assert!(p.permits(&peer(1001, 7), &DrainRequest::default(), 1000));
        assert!(Policy::default()
            .allow(Caller::Anyone)
            .permits(&peer(5, 5), &set_level(), 1000));
    }
}
