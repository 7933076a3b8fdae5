//! The state every connection of one server shares, in one place, built once by
//! [`Builder::bind`](crate::Builder::bind) and read from then on.

use crate::audit::Audit;
use crate::counters::ServerCounters;
use crate::noise::Noise;
use crate::notify::Notifier;
use crate::ops::reload::Reloads;
use crate::ops::rotate::Rotate;
use crate::policy::Policy;
use crate::registry::Registry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) struct Shared {
    /// The daemon's name, for log lines that tell the operator what to type.
    pub name: String,
    /// The daemon's effective uid: it has every level, like root.
    pub own_uid: u32,
    pub policy: Policy,
    /// Every operation served; nothing else decides what exists.
    pub registry: Registry,
    /// For SIGHUP, which reloads without a caller.
    pub reloads: Arc<Reloads>,
    /// For SIGHUP, which reopens the log files without a caller.
    pub rotate: Arc<Rotate>,
    /// systemd's notification socket, when the daemon asked for it and runs under systemd.
    pub notifier: Option<Arc<Notifier>>,
    /// What the server counts of itself, for `ctl counters`.
    pub counters: ServerCounters,
    /// Who did what: the history and the syslog lines of calls that change something.
    pub audit: Arc<Audit>,
    /// Rate limits of the lines callers can cause.
    pub noise: Arc<Noise>,
    /// Tasks running work that needs more than read access, which outlive the call that
    /// started them.
    pub work: TaskTracker,
    pub shutdown: CancellationToken,
}
