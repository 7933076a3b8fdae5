//! One session with a daemon: connect, `hello`, then the operation, all under one deadline.

use crate::error::CtlError;
use control_api::{
    wire, ControlClient, DrainReply, DrainRequest, Hello, HelloRequest, LogLevelReply,
    LogLevelRequest, OpError, Operation, ReloadReply, ReloadRequest, RotateReply, RotateRequest,
    Status, StatusRequest, PROTOCOL_VERSION,
};
use std::path::Path;
use std::time::{Duration, Instant};
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

/// A connected daemon that has answered `hello`.
pub struct Session {
    client: ControlClient,
    /// What the daemon said about itself.
    pub hello: Hello,
    deadline: Instant,
    timeout: Duration,
}

impl Session {
    /// Connects to `path` and says hello, within `timeout` counted from `started`.
    pub async fn open(
        path: &Path,
        started: Instant,
        timeout: Duration,
    ) -> Result<Session, CtlError> {
        let deadline = started + timeout;
        let stream = tokio::time::timeout_at(deadline.into(), connect(path))
            .await
            .map_err(|_| CtlError::Timeout {
                timeout,
                hint: "; the daemon is not accepting connections (its queue of pending \
                       connections is full): it may be hung"
                    .to_owned(),
            })?
            .map_err(|e| CtlError::from_connect(path.to_owned(), e))?;
        let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
        let client = ControlClient::new(Default::default(), transport).spawn();
        let mut session = Session {
            client,
            hello: Hello::default(),
            deadline,
            timeout,
        };
        let request = HelloRequest {
            protocol: PROTOCOL_VERSION,
            client: concat!("ctl ", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        session.hello = session
            .client
            .hello(session.context(), request)
            .await
            .map_err(|e| CtlError::from_rpc(e, timeout, Operation::Hello))?;
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

    fn rpc_err(&self, op: Operation) -> impl FnOnce(tarpc::client::RpcError) -> CtlError {
        let timeout = self.timeout;
        move |e| CtlError::from_rpc(e, timeout, op)
    }

    /// `status`.
    pub async fn status(&self) -> Result<Status, CtlError> {
        let ctx = self.require(Operation::Status)?;
        let reply = self.client.status(ctx, StatusRequest::default()).await;
        Ok(reply.map_err(self.rpc_err(Operation::Status))??)
    }

    /// `reload`.
    pub async fn reload(&self) -> Result<ReloadReply, CtlError> {
        let ctx = self.require(Operation::Reload)?;
        let reply = self.client.reload(ctx, ReloadRequest::default()).await;
        Ok(reply.map_err(self.rpc_err(Operation::Reload))??)
    }

    /// `rotate`.
    pub async fn rotate(&self) -> Result<RotateReply, CtlError> {
        let ctx = self.require(Operation::Rotate)?;
        let reply = self.client.rotate(ctx, RotateRequest::default()).await;
        Ok(reply.map_err(self.rpc_err(Operation::Rotate))??)
    }

    /// `log-level`: reads the filter, or sets `filter`.
    pub async fn log_level(&self, filter: Option<String>) -> Result<LogLevelReply, CtlError> {
        let ctx = self.require(Operation::LogLevel)?;
        let reply = self.client.log_level(ctx, LogLevelRequest { filter }).await;
        Ok(reply.map_err(self.rpc_err(Operation::LogLevel))??)
    }

    /// `drain`, reporting the in-flight count to `progress` while it waits (from `status`
    /// calls on the same connection, a few times a second).
    pub async fn drain(&self, mut progress: impl FnMut(u64)) -> Result<DrainReply, CtlError> {
        let ctx = self.require(Operation::Drain)?;
        let call = self.client.drain(ctx, DrainRequest::default());
        tokio::pin!(call);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                reply = &mut call => return Ok(reply.map_err(self.rpc_err(Operation::Drain))??),
                _ = tick.tick(), if self.hello.supports(Operation::Status) => {
                    let status = self.client.status(self.context(), StatusRequest::default()).await;
                    if let Ok(Ok(status)) = status {
                        progress(status.in_flight);
                    }
                }
            }
        }
    }
}
