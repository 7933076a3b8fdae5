//! A typed client for Rust programs that call a daemon: `hello`, then any operation, built-in or
//! the daemon's own, with the types both sides share. `ctl` is built on it.
//!
//! Calls go through tarpc's untyped [`Channel`] in the [`codec`](crate::codec)'s form rather than
//! the generated [`ControlClient`](crate::ControlClient): the generated methods panic when a reply
//! carries another method's variant, and a daemon's bytes must never crash its caller. A reply
//! to another method is [`ClientError::WrongReply`] here.
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
//! // The built-ins are commands too.
//! let status = client.call(&control_api::StatusRequest::default()).await?;
//! println!("generation {}", status.config_generation);
//! # Ok(()) }
//! ```

use crate::codec::{Answer, Invocation};
use crate::command::{CallReply, Command, DescribeRequest, Description};
use crate::{wire, Hello, HelloRequest, OpError};
use std::path::Path;
use std::time::{Duration, Instant};
use tarpc::client::{Channel, RpcError};
use tokio::net::UnixStream;

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
        "the daemon answered `{asked}` with a `{answered}` reply, which is not a reply of the \
         protocol (a bug in the daemon, or another program listening on its socket)"
    )]
    WrongReply {
        /// What was asked.
        asked: String,
        /// The method whose reply came (`call` for the generic one).
        answered: &'static str,
    },
    /// The request does not fit in one frame: the daemon would close the connection on it.
    #[error(
        "the `{operation}` request is {size} bytes, over the protocol's frame limit of {limit}"
    )]
    TooLarge {
        /// The operation or command.
        operation: String,
        /// The encoded request's size.
        size: usize,
        /// [`wire::MAX_FRAME_LEN`].
        limit: usize,
    },
    /// The request or its reply does not fit the operation's type: the two sides were built
    /// from different definitions, or the reply is not one of this protocol.
    #[error("the reply of `{command}` does not decode as its type: {source}")]
    Reply {
        /// The operation or command.
        command: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A connection to one daemon, after `hello`.
pub struct Client {
    channel: Channel<Invocation, Answer>,
    hello: Hello,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl Client {
    /// How long each call may take unless [`Client::timeout`] says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Connects to the socket at `path` and says `hello`. Must run inside a tokio runtime.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let client = concat!("control-api ", env!("CARGO_PKG_VERSION"));
        Client::handshake(stream, client, None).await
    }

    /// Says `hello` on a connected `stream`, naming the caller `client` in the daemon's log;
    /// with `deadline`, every call of this client ends by then (else each gets
    /// [`Client::DEFAULT_TIMEOUT`]).
    pub async fn handshake(
        stream: UnixStream,
        client: &str,
        deadline: Option<Instant>,
    ) -> Result<Client, ClientError> {
        let mut this = Client::over(stream, deadline);
        this.hello = this.call(&hello_request(client)).await?;
        Ok(this)
    }

    /// [`Client::handshake`], with `status` sent right behind `hello` instead of after its
    /// reply: both in one round trip. Safe with every daemon: `status` is a read operation of
    /// the first release, which every daemon decodes and which tells a daemon nothing. Check
    /// [`Client::hello`] before using the reply (a daemon found by name must answer as that
    /// name); one that does not list `status` gets an error here as if it was never sent.
    pub async fn handshake_and_status(
        stream: UnixStream,
        client: &str,
        deadline: Option<Instant>,
    ) -> Result<(Client, Result<crate::Status, ClientError>), ClientError> {
        let mut this = Client::over(stream, deadline);
        let (hello, status) = (hello_request(client), crate::StatusRequest::default());
        let (hello, status) = tokio::join!(this.send(&hello), this.send(&status));
        this.hello = hello?;
        let status = this.listed(crate::StatusRequest::NAME).and(status);
        Ok((this, status))
    }

    /// A client on `stream` that has not said hello yet.
    fn over(stream: UnixStream, deadline: Option<Instant>) -> Client {
        let transport = wire::transport_with_limit(stream, wire::MAX_REPLY_FRAME_LEN);
        Client {
            channel: tarpc::client::new(Default::default(), transport).spawn(),
            hello: Hello::default(),
            timeout: Self::DEFAULT_TIMEOUT,
            deadline,
        }
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

    /// Every operation and command the daemon serves.
    pub async fn describe(&self) -> Result<Description, ClientError> {
        self.call(&DescribeRequest::default()).await
    }

    /// Runs the operation `C` (a built-in such as [`StatusRequest`](crate::StatusRequest), or
    /// the daemon's own command) with `request`, and decodes its reply as `C::Reply`.
    pub async fn call<C: Command>(&self, request: &C) -> Result<C::Reply, ClientError> {
        self.listed(C::NAME)?;
        self.send(request).await
    }

    /// [`Client::call`] without asking whether `hello` listed it.
    async fn send<C: Command>(&self, request: &C) -> Result<C::Reply, ClientError> {
        let error = |source| ClientError::Reply {
            command: C::NAME.to_owned(),
            source,
        };
        let invocation = Invocation::of(request).map_err(error)?;
        let reply = self.exchange(invocation).await?.reply;
        serde_json::from_value(reply).map_err(error)
    }

    /// Runs `invocation` and returns its reply as JSON. Unless `hello` listed it (or it is
    /// `hello`), it is not sent: an older daemon is never sent a request it cannot decode, and
    /// the error lists what it supports.
    pub async fn invoke(&self, invocation: Invocation) -> Result<serde_json::Value, ClientError> {
        Ok(self.invoke_reply(invocation).await?.reply)
    }

    /// [`Client::invoke`], with what the daemon said beside the reply: whether the call
    /// changed anything ([`CallReply::changed`]; said only beside a command that travels
    /// inside `call`, by daemons that know it, and only when the command says).
    pub async fn invoke_reply(&self, invocation: Invocation) -> Result<CallReply, ClientError> {
        self.listed(&invocation.name)?;
        self.exchange(invocation).await
    }

    /// Fails with `Unsupported`, listing what is supported, unless `hello` listed `name` (or
    /// it is `hello`, which every daemon serves and which comes before the list).
    fn listed(&self, name: &str) -> Result<(), ClientError> {
        if name == HelloRequest::NAME || self.hello.supports(name) {
            return Ok(());
        }
        let supported = self.hello.operations.iter().map(String::as_str);
        Err(OpError::unsupported(name, supported).into())
    }

    /// Sends `invocation` and waits for its answer.
    async fn exchange(&self, invocation: Invocation) -> Result<CallReply, ClientError> {
        let mut ctx = tarpc::context::current();
        ctx.deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + self.timeout);
        let size = encoded_len(ctx, &invocation);
        if size > wire::MAX_FRAME_LEN {
            return Err(ClientError::TooLarge {
                operation: invocation.name,
                size,
                limit: wire::MAX_FRAME_LEN,
            });
        }
        let (asked, carrier) = (invocation.name.clone(), invocation.carrier);
        let answer = self.channel.call(ctx, invocation).await?;
        if answer.carrier != carrier {
            return Err(ClientError::WrongReply {
                asked,
                answered: answer.carrier.name(),
            });
        }
        Ok(CallReply {
            reply: answer.result?,
            changed: answer.changed,
        })
    }
}

fn hello_request(client: &str) -> HelloRequest {
    HelloRequest {
        protocol: crate::PROTOCOL_VERSION,
        client: client.to_owned(),
    }
}

/// The size of `invocation` as it goes on the wire, in tarpc's envelope with the largest id.
fn encoded_len(context: tarpc::context::Context, invocation: &Invocation) -> usize {
    let message = tarpc::ClientMessage::Request(tarpc::Request {
        context,
        id: u64::MAX,
        message: invocation,
    });
    serde_json::to_vec(&message).map_or(0, |bytes| bytes.len())
}
