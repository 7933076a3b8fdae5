//! A typed client for Rust programs that call a daemon: `hello`, then the daemon's own commands
//! with the types both sides share.
//!
//! Calls go through tarpc's untyped [`Channel`] rather than the generated
//! [`ControlClient`](crate::ControlClient): the generated methods panic when a reply carries another method's
//! variant, and a daemon's bytes must never crash its caller. Each call here matches the
//! variant itself, and a mismatch is [`ClientError::WrongReply`].
//!
//! ```no_run
//! use control_api::{Access, Client, Command};
//! # use schemars::JsonSchema;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize, JsonSchema)]
//! # struct Stats {}
//! # #[derive(Serialize, Deserialize, JsonSchema)]
//! # struct Counters { lines: u64 }
//! # impl Command for Stats {
//! #     const NAME: &'static str = "stats";
//! #     const DOC: &'static str = "Counters";
//! #     const ACCESS: Access = Access::Read;
//! #     type Reply = Counters;
//! # }
//! # async fn demo() -> Result<(), control_api::ClientError> {
//! let client = Client::connect("/run/ctl/demo.sock").await?;
//! let counters = client.call(&Stats {}).await?;
//! println!("{} lines", counters.lines);
//! # Ok(()) }
//! ```

use crate::command::{CallRequest, Command, DescribeRequest, Description};
use crate::{wire, ControlRequest, ControlResponse, Hello, HelloRequest, OpError, Operation};
use std::path::Path;
use std::time::{Duration, Instant};
use tarpc::client::{Channel, RpcError};

/// Why a call through [`Client`] did not return a reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The call did not complete: deadline passed, connection closed.
    #[error("the call did not complete: {0}")]
    Rpc(#[from] RpcError),
    /// The daemon ran, or refused, the call and says why.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The daemon answered with another method's reply: not a daemon of this protocol.
    #[error(
        "the daemon answered `{asked}` with the reply of another method; is this a ctl socket?"
    )]
    WrongReply {
        /// What was asked.
        asked: &'static str,
    },
    /// The daemon is older than `describe` and `call`.
    #[error("the daemon does not serve commands (it predates `call`); upgrade it")]
    NoCommands,
    /// The command's reply does not decode as the command's `Reply` type: the two sides were
    /// built from different definitions.
    #[error("the reply of `{command}` does not decode as its type: {source}")]
    Reply {
        /// The command.
        command: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A connection to one daemon, after `hello`.
pub struct Client {
    channel: Channel<ControlRequest, ControlResponse>,
    hello: Hello,
    timeout: Duration,
}

impl Client {
    /// How long each call may take unless [`Client::timeout`] says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Connects to the socket at `path` and says `hello`. Must run inside a tokio runtime.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
        let channel = tarpc::client::new(Default::default(), transport).spawn();
        let mut client = Client {
            channel,
            hello: Hello::default(),
            timeout: Self::DEFAULT_TIMEOUT,
        };
        let req = HelloRequest {
            protocol: crate::PROTOCOL_VERSION,
            client: concat!("control-api ", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        client.hello = match client.send(ControlRequest::Hello { req }).await? {
            ControlResponse::Hello(hello) => hello,
            _ => return Err(ClientError::WrongReply { asked: "hello" }),
        };
        Ok(client)
    }

    /// Sets how long each later call may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What the daemon said about itself.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn send(&self, request: ControlRequest) -> Result<ControlResponse, ClientError> {
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + self.timeout;
        Ok(self.channel.call(ctx, request).await?)
    }

    /// Every operation and command the daemon serves.
    pub async fn describe(&self) -> Result<Description, ClientError> {
        if !self.hello.supports(Operation::Describe) {
            return Err(ClientError::NoCommands);
        }
        let req = DescribeRequest::default();
        match self.send(ControlRequest::Describe { req }).await? {
            ControlResponse::Describe(reply) => Ok(reply?),
            _ => Err(ClientError::WrongReply { asked: "describe" }),
        }
    }

    /// Runs the daemon's command `C` with `args`, and decodes its reply as `C::Reply`.
    pub async fn call<C: Command>(&self, args: &C) -> Result<C::Reply, ClientError> {
        if !self.hello.supports(Operation::Describe) {
            return Err(ClientError::NoCommands);
        }
        let req = CallRequest {
            command: C::NAME.to_owned(),
            args: serde_json::to_value(args).map_err(|source| ClientError::Reply {
                command: C::NAME,
                source,
            })?,
        };
        let reply = match self.send(ControlRequest::Call { req }).await? {
            ControlResponse::Call(reply) => reply?,
            _ => return Err(ClientError::WrongReply { asked: C::NAME }),
        };
        serde_json::from_value(reply.reply).map_err(|source| ClientError::Reply {
            command: C::NAME,
            source,
        })
    }
}
