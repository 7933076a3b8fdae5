//! One session with a daemon: connect (by the trust rule), `hello`, then the operation, all under
//! one deadline, through [`control_api::Client`]; its errors become `ctl`'s, with exit codes.

use crate::error::CtlError;
use control_api::codec::{Carrier, Invocation};
use control_api::socket::{self, CheckError, Found, Untrusted};
use control_api::CallReply;
use control_api::{
    Client, ClientError, Command, DrainReply, DrainRequest, Hello, Status, StatusRequest,
    PROTOCOL_VERSION,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tarpc::client::RpcError;
use tokio::net::UnixStream;

/// Connects to `path`. A daemon whose queue of pending connections is full makes a Unix
/// socket refuse at once with `EAGAIN` rather than wait; that daemon is alive but busy or hung,
/// so keep trying (the caller bounds this with the deadline) instead of reporting no daemon.
async fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let mut pause = Duration::from_millis(1);
    loop {
        match UnixStream::connect(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Connects to `found`: through [`socket::open_checked`] when the trust rule covers it, which
/// judges it again now, connects through the directory it judged, and then requires the peer
/// to be root or that directory's owner; else to the path as given.
async fn connect_found(found: &Found) -> Result<UnixStream, CtlError> {
    let path = &found.path;
    if !found.checked {
        return connect(path)
            .await
            .map_err(|e| CtlError::from_connect(path.clone(), e));
    }
    let uid = rustix::process::geteuid().as_raw();
    let checked = match socket::open_checked(path, uid) {
        Ok(checked) => checked,
        Err(CheckError::Missing { source, .. }) => {
            return Err(CtlError::from_connect(path.clone(), source))
        }
        Err(CheckError::Untrusted(untrusted)) => return Err(CtlError::Untrusted(untrusted)),
    };
    // `checked` holds the directory open until the connection is made.
    let stream = connect(&checked.connect_path())
        .await
        .map_err(|e| CtlError::from_connect(path.clone(), e))?;
    let peer = stream
        .peer_cred()
        .map_err(|e| CtlError::Connect {
            path: path.clone(),
            source: e,
        })?
        .uid();
    checked.allows_peer(peer).map_err(|why| {
        CtlError::Untrusted(Untrusted {
            path: path.clone(),
            why,
        })
    })?;
    Ok(stream)
}

/// Connects to the first of `found` that accepts. A path with no socket or a stale one is
/// passed over for the next (a daemon moved from root to its own user may have left a stale
/// socket in the first place looked); any other failure ends the search there, as that socket
/// is the daemon's. With none accepting, the first path's error.
async fn connect_first(found: &[Found]) -> Result<(UnixStream, PathBuf), CtlError> {
    let mut first_err = None;
    for place in found {
        match connect_found(place).await {
            Ok(stream) => return Ok((stream, place.path.clone())),
            Err(err) if !err.is_missing() => return Err(err),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| CtlError::NoDaemon {
        path: PathBuf::new(),
        why: "nowhere to look",
        also: Vec::new(),
    }))
}

/// A connected daemon that has answered `hello`.
pub struct Session {
    /// The socket it answered on.
    pub path: PathBuf,
    /// The daemon's pid, from the connection's peer credentials.
    pid: Option<u32>,
    client: Client,
    /// What the daemon said about itself.
    pub hello: Hello,
    timeout: Duration,
    /// The reply to the `status` sent along with `hello`, until it is taken.
    ahead: std::sync::Mutex<Option<Result<Status, ClientError>>>,
}

/// What to send along with `hello`, in the same round trip.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    /// Nothing: the operation follows hello's reply.
    Nothing,
    /// `status`, which every daemon decodes (see [`Client::handshake_and_status`]).
    Status,
}

impl Session {
    /// Connects to the first of `found` that accepts and says hello, within `timeout` counted
    /// from `started`. With `name` (a target given by name), the daemon must answer as that
    /// name: else [`CtlError::WrongDaemon`], before anything else is asked.
    pub async fn open_first(
        found: &[Found],
        name: Option<&str>,
        started: Instant,
        timeout: Duration,
        ahead: Ahead,
    ) -> Result<Session, CtlError> {
        Session::open(found, name, started + timeout, timeout, Some(ahead)).await
    }

    /// [`Session::open_first`] for a session kept for many calls (`ctl top`): connecting and
    /// `hello` end by `deadline`, and each later call gets `timeout` of its own from when it is
    /// sent, where a session of one operation has every call end by its one deadline.
    pub async fn open_kept(
        found: &[Found],
        name: Option<&str>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Session, CtlError> {
        Session::open(found, name, deadline, timeout, None).await
    }

    /// Connects and says hello by `deadline`; with `ahead`, every later call ends by then too,
    /// without it each gets `timeout` of its own.
    async fn open(
        found: &[Found],
        name: Option<&str>,
        deadline: Instant,
        timeout: Duration,
        ahead: Option<Ahead>,
    ) -> Result<Session, CtlError> {
        let (stream, path) = tokio::time::timeout_at(deadline.into(), connect_first(found))
            .await
            .map_err(|_| CtlError::Timeout {
                timeout,
                hint: "; the daemon is not accepting connections (its queue of pending \
                       connections is full): it may be hung"
                    .to_owned(),
                // Not connected, so no peer credentials; the first place looked is where
                // connecting hung (the search stops at the first socket that is not stale).
                pid: None,
                path: found.first().map(|f| f.path.clone()),
            })??;
        // The daemon's pid, for a timeout later on; the kernel vouches for it, unlike the
        // pid a daemon reports in its status.
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .and_then(|pid| u32::try_from(pid).ok());
        let me = concat!("ctl ", env!("CARGO_PKG_VERSION"));
        let opened = match ahead {
            Some(Ahead::Nothing) => Client::handshake(stream, me, Some(deadline))
                .await
                .map(|client| (client, None)),
            Some(Ahead::Status) => Client::handshake_and_status(stream, me, Some(deadline))
                .await
                .map(|(client, status)| (client, Some(status))),
            None => tokio::time::timeout_at(deadline.into(), Client::handshake(stream, me, None))
                .await
                .unwrap_or(Err(ClientError::Rpc(RpcError::DeadlineExceeded)))
                .map(|client| (client.timeout(timeout), None)),
        };
        let (client, ahead) = opened.map_err(|e| failure(e, "hello", timeout, pid, &path))?;
        let session = Session {
            path,
            pid,
            hello: client.hello().clone(),
            client,
            timeout,
            ahead: std::sync::Mutex::new(ahead),
        };
        // Before the protocol: whatever speaks on NAME's socket and is not NAME gets nothing.
        if let Some(name) = name.filter(|name| *name != session.hello.name) {
            return Err(CtlError::WrongDaemon {
                expected: name.to_owned(),
                answered: session.hello.name.clone(),
                pid: session.pid.unwrap_or(session.hello.pid),
                path: session.path.clone(),
            });
        }
        if session.hello.protocol != PROTOCOL_VERSION {
            return Err(CtlError::Incompatible {
                daemon: session.hello.protocol,
                ours: PROTOCOL_VERSION,
            });
        }
        Ok(session)
    }

    /// Runs the operation `C` with `request`: any built-in, as every one is a [`Command`].
    /// An operation `hello` did not list is not sent: an older daemon is never sent a request
    /// it cannot decode, and the error lists what it supports.
    pub async fn call<C: Command>(&self, request: &C) -> Result<C::Reply, CtlError> {
        self.client
            .call(request)
            .await
            .map_err(|e| self.failure(e, C::NAME))
    }

    /// `status`: the reply that came with `hello` if it was sent along, else asked now. Only
    /// read after the checks of [`Session::open_first`] passed.
    pub async fn status(&self) -> Result<Status, CtlError> {
        let ahead = self.ahead.lock().ok().and_then(|mut ahead| ahead.take());
        match ahead {
            Some(reply) => reply.map_err(|e| self.failure(e, StatusRequest::NAME)),
            None => self.call(&StatusRequest::default()).await,
        }
    }

    /// `call`: the daemon's own command `command` with `args`, already checked against its
    /// schema (the daemon checks again).
    /// The reply comes with whether the daemon said the call changed anything.
    pub async fn command(&self, command: &str, args: Value) -> Result<CallReply, CtlError> {
        let invocation = Invocation {
            name: command.to_owned(),
            args,
            carrier: Carrier::Call,
        };
        self.client
            .invoke_reply(invocation)
            .await
            .map_err(|e| self.failure(e, command))
    }

    fn failure(&self, err: ClientError, op: &str) -> CtlError {
        failure(err, op, self.timeout, self.pid, &self.path)
    }

    /// `drain`, reporting the in-flight count to `progress` while it waits (from `status`
    /// calls on the same connection, a few times a second).
    pub async fn drain(&self, mut progress: impl FnMut(u64)) -> Result<DrainReply, CtlError> {
        let request = DrainRequest::default();
        let call = self.call(&request);
        tokio::pin!(call);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let has_status = self.hello.operations.iter().any(|op| op == "status");
        loop {
            tokio::select! {
                reply = &mut call => return reply,
                _ = tick.tick(), if has_status => {
                    // Progress is a courtesy: a status that fails here leaves the drain's own
                    // reply to tell the truth.
                    if let Ok(status) = self.status().await {
                        progress(status.in_flight);
                    }
                }
            }
        }
    }
}

/// `ctl`'s error for the client's: what went wrong calling `op`, and with a timeout, which
/// daemon it waited for.
fn failure(
    err: ClientError,
    op: &str,
    timeout: Duration,
    pid: Option<u32>,
    path: &Path,
) -> CtlError {
    match err {
        ClientError::Rpc(e) => CtlError::from_rpc(e, timeout, op).waiting_for(pid, path),
        ClientError::Op(e) => CtlError::Op(e),
        ClientError::WrongReply { asked, answered } => CtlError::WrongReply {
            asked,
            answered: answered.to_owned(),
        },
        ClientError::TooLarge {
            operation,
            size,
            limit,
        } => CtlError::RequestTooLarge {
            operation,
            size,
            limit,
        },
        // What the daemon sent is not a reply of this protocol (a reply missing fields every
        // daemon sends, or of the wrong type).
        ClientError::Reply { source, .. } => CtlError::Protocol {
            what: format!("the daemon's reply could not be read: {source}"),
        },
        ClientError::Connect { path, source } => CtlError::Connect {
            path: path.into(),
            source,
        },
    }
}
