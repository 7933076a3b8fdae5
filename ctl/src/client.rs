//! One session with a daemon: connect, `hello`, then the operation, all under one deadline.
//!
//! Calls go through tarpc's untyped [`Channel`], not the generated `ControlClient`: the
//! generated methods hit `unreachable!()` when a reply carries another operation's variant, and
//! a daemon's bytes must never crash `ctl`. Each method here matches the variant itself, and a
//! mismatch is [`CtlError::WrongReply`].

use crate::error::CtlError;
use control_api::socket::{self, CheckError, Found, Untrusted};
use control_api::{
    wire, ControlRequest, ControlResponse, DrainReply, DrainRequest, Hello, HelloRequest,
    LogLevelReply, LogLevelRequest, OpError, Operation, ReloadReply, ReloadRequest, ResumeReply,
    ResumeRequest, RotateReply, RotateRequest, Status, StatusRequest, PROTOCOL_VERSION,
};
use control_api::{
    CallRequest, CheckReply, CheckRequest, CountersReply, CountersRequest, DescribeRequest,
    Description,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tarpc::client::Channel;
use tarpc::context::{self, Context};
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
            Err(err) => {
                if !err.is_missing() {
                    return Err(err);
                }
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
    channel: Channel<ControlRequest, ControlResponse>,
    /// What the daemon said about itself.
    pub hello: Hello,
    deadline: Instant,
    timeout: Duration,
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
    ) -> Result<Session, CtlError> {
        let deadline = started + timeout;
        let paths: Vec<PathBuf> = found.iter().map(|f| f.path.clone()).collect();
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
                path: paths.first().cloned(),
            })??;
        // The daemon's pid, for a timeout later on; the kernel vouches for it, unlike the
        // pid a daemon reports in its status.
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .and_then(|pid| u32::try_from(pid).ok());
        let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
        let channel = tarpc::client::new(Default::default(), transport).spawn();
        let mut session = Session {
            path,
            pid,
            channel,
            hello: Hello::default(),
            deadline,
            timeout,
        };
        let request = HelloRequest {
            protocol: PROTOCOL_VERSION,
            client: concat!("ctl ", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        let reply = session
            .call(
                Operation::Hello,
                session.context(),
                ControlRequest::Hello { req: request },
            )
            .await?;
        session.hello = match reply {
            ControlResponse::Hello(hello) => hello,
            other => return Err(wrong_reply(Operation::Hello, &other)),
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

    fn context(&self) -> Context {
        let mut ctx = context::current();
        ctx.deadline = self.deadline;
        ctx
    }

    /// Fails with `Unsupported` (listing what is supported) unless `hello` listed `op`; so an
    /// older daemon is never sent a request it cannot decode.
    fn require(&self, op: Operation) -> Result<Context, CtlError> {
        if self.hello.supports(op) {
            Ok(self.context())
        } else {
            Err(CtlError::Op(OpError::Unsupported {
                operation: op.as_str().to_owned(),
                supported: self.hello.operations.clone(),
            }))
        }
    }

    /// Sends `request` and waits for the reply, whatever variant it carries. A request that
    /// would not fit in one frame is refused here, naming the limit: the daemon would only
    /// close the connection on it, and ctl would have nothing better to say than "reset".
    async fn call(
        &self,
        op: Operation,
        ctx: Context,
        request: ControlRequest,
    ) -> Result<ControlResponse, CtlError> {
        let request = fits_in_a_frame(op, ctx, request)?;
        self.channel
            .call(ctx, request)
            .await
            .map_err(|e| CtlError::from_rpc(e, self.timeout, op).waiting_for(self.pid, &self.path))
    }

    /// `status`.
    pub async fn status(&self) -> Result<Status, CtlError> {
        let ctx = self.require(Operation::Status)?;
        self.status_call(ctx).await
    }

    async fn status_call(&self, ctx: Context) -> Result<Status, CtlError> {
        let req = StatusRequest::default();
        match self
            .call(Operation::Status, ctx, ControlRequest::Status { req })
            .await?
        {
            ControlResponse::Status(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Status, &other)),
        }
    }

    /// `reload`.
    pub async fn reload(&self) -> Result<ReloadReply, CtlError> {
        let ctx = self.require(Operation::Reload)?;
        let req = ReloadRequest::default();
        match self
            .call(Operation::Reload, ctx, ControlRequest::Reload { req })
            .await?
        {
            ControlResponse::Reload(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Reload, &other)),
        }
    }

    /// `check`.
    pub async fn check(&self) -> Result<CheckReply, CtlError> {
        let ctx = self.require(Operation::Check)?;
        let req = CheckRequest::default();
        match self
            .call(Operation::Check, ctx, ControlRequest::Check { req })
            .await?
        {
            ControlResponse::Check(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Check, &other)),
        }
    }

    /// `counters`, those under `prefix` if given.
    pub async fn counters(&self, prefix: Option<String>) -> Result<CountersReply, CtlError> {
        let ctx = self.require(Operation::Counters)?;
        let req = CountersRequest { prefix };
        match self
            .call(Operation::Counters, ctx, ControlRequest::Counters { req })
            .await?
        {
            ControlResponse::Counters(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Counters, &other)),
        }
    }

    /// `rotate`.
    pub async fn rotate(&self) -> Result<RotateReply, CtlError> {
        let ctx = self.require(Operation::Rotate)?;
        let req = RotateRequest::default();
        match self
            .call(Operation::Rotate, ctx, ControlRequest::Rotate { req })
            .await?
        {
            ControlResponse::Rotate(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Rotate, &other)),
        }
    }

    /// `log-level`: reads the filter, or sets `filter`.
    pub async fn log_level(&self, filter: Option<String>) -> Result<LogLevelReply, CtlError> {
        let ctx = self.require(Operation::LogLevel)?;
        let req = LogLevelRequest { filter };
        match self
            .call(Operation::LogLevel, ctx, ControlRequest::LogLevel { req })
            .await?
        {
            ControlResponse::LogLevel(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::LogLevel, &other)),
        }
    }

    /// `resume`.
    pub async fn resume(&self) -> Result<ResumeReply, CtlError> {
        let ctx = self.require(Operation::Resume)?;
        let req = ResumeRequest::default();
        match self
            .call(Operation::Resume, ctx, ControlRequest::Resume { req })
            .await?
        {
            ControlResponse::Resume(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Resume, &other)),
        }
    }

    /// `describe`: every operation and command, with schemas.
    pub async fn describe(&self) -> Result<Description, CtlError> {
        let ctx = self.require(Operation::Describe)?;
        let req = DescribeRequest::default();
        match self
            .call(Operation::Describe, ctx, ControlRequest::Describe { req })
            .await?
        {
            ControlResponse::Describe(reply) => Ok(reply?),
            other => Err(wrong_reply(Operation::Describe, &other)),
        }
    }

    /// `call`: the daemon's own command `command` with `args`, already checked against its
    /// schema (the daemon checks again).
    pub async fn command(&self, command: &str, args: Value) -> Result<Value, CtlError> {
        let ctx = self.require(Operation::Describe)?;
        let req = CallRequest {
            command: command.to_owned(),
            args,
        };
        match self
            .call(Operation::Describe, ctx, ControlRequest::Call { req })
            .await?
        {
            ControlResponse::Call(reply) => Ok(reply?.reply),
            other => Err(wrong_reply(Operation::Describe, &other)),
        }
    }

    /// `drain`, reporting the in-flight count to `progress` while it waits (from `status`
    /// calls on the same connection, a few times a second).
    pub async fn drain(&self, mut progress: impl FnMut(u64)) -> Result<DrainReply, CtlError> {
        let ctx = self.require(Operation::Drain)?;
        let req = DrainRequest::default();
        let call = self.call(Operation::Drain, ctx, ControlRequest::Drain { req });
        tokio::pin!(call);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                reply = &mut call => return match reply? {
                    ControlResponse::Drain(reply) => Ok(reply?),
                    other => Err(wrong_reply(Operation::Drain, &other)),
                },
                _ = tick.tick(), if self.hello.supports(Operation::Status) => {
                    // Progress is a courtesy: a status that fails here leaves the drain's own
                    // reply to tell the truth.
                    if let Ok(status) = self.status_call(self.context()).await {
                        progress(status.in_flight);
                    }
                }
            }
        }
    }
}

/// `request` back if, encoded as it goes on the wire (tarpc's envelope with the largest id),
/// it fits in [`wire::MAX_FRAME_LEN`], the frame a daemon reads; else
/// [`CtlError::RequestTooLarge`].
fn fits_in_a_frame(
    op: Operation,
    ctx: Context,
    request: ControlRequest,
) -> Result<ControlRequest, CtlError> {
    let message = tarpc::ClientMessage::Request(tarpc::Request {
        context: ctx,
        id: u64::MAX,
        message: request,
    });
    let size = serde_json::to_vec(&message).map_or(0, |bytes| bytes.len());
    let tarpc::ClientMessage::Request(tarpc::Request { message, .. }) = message else {
        unreachable!("built as a request above")
    };
    if size > wire::MAX_FRAME_LEN {
        return Err(CtlError::RequestTooLarge {
            operation: match &message {
                ControlRequest::Call { req } => req.command.clone(),
                _ => op.as_str().to_owned(),
            },
            size,
            limit: wire::MAX_FRAME_LEN,
        });
    }
    Ok(message)
}

/// The error for a reply that carries `got` where `asked`'s reply was due.
fn wrong_reply(asked: Operation, got: &ControlResponse) -> CtlError {
    CtlError::WrongReply {
        asked,
        answered: answered(got),
    }
}

/// Which operation's reply `reply` is. Exhaustive on purpose: an operation added to the
/// contract does not compile here until it is named.
fn answered(reply: &ControlResponse) -> Operation {
    match reply {
        ControlResponse::Hello(_) => Operation::Hello,
        ControlResponse::Status(_) => Operation::Status,
        ControlResponse::Reload(_) => Operation::Reload,
        ControlResponse::Rotate(_) => Operation::Rotate,
        ControlResponse::Drain(_) => Operation::Drain,
        ControlResponse::LogLevel(_) => Operation::LogLevel,
        ControlResponse::Resume(_) => Operation::Resume,
        ControlResponse::Check(_) => Operation::Check,
        ControlResponse::Counters(_) => Operation::Counters,
        // `call` comes with `describe`: a daemon that lists one serves both.
        ControlResponse::Describe(_) | ControlResponse::Call(_) => Operation::Describe,
    }
}
