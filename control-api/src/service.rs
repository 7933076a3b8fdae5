//! The service trait: the wire's methods, frozen. Each method takes one request struct whose
//! fields are all optional, so fields can be added later without breaking older peers. Neither
//! side implements or calls it directly: both speak its bytes through the
//! [`codec`](crate::codec), and operations added later (`ping`) travel inside `call`, so no
//! method is added here again. It stays as the documented form of the wire, and the generated
//! [`ControlRequest`] and [`ControlResponse`] are what tests and other clients encode.
#![allow(missing_docs)] // tarpc generates items (client, request/response enums) without docs.

use crate::command::{CallReply, CallRequest, DescribeRequest, Description};
use crate::error::OpError;
use crate::types::*;

/// The control plane a daemon serves. Every method but `hello` returns `Result<_, OpError>`:
/// transport failures (deadline, closed connection) are tarpc's `RpcError`, failures of the
/// operation itself are [`OpError`].
#[tarpc::service]
pub trait Control {
    /// Protocol version, daemon identity and the operations it supports. Never changes shape;
    /// the first call of every client.
    async fn hello(req: HelloRequest) -> Hello;
    /// What the daemon is doing: pid, uptime, config generation, last reload, drain state, logs.
    async fn status(req: StatusRequest) -> Result<Status, OpError>;
    /// Re-read the configuration; validate it completely before applying anything.
    async fn reload(req: ReloadRequest) -> Result<ReloadReply, OpError>;
    /// Reopen log files after they were renamed.
    async fn rotate(req: RotateRequest) -> Result<RotateReply, OpError>;
    /// Stop taking new work and finish what is in flight.
    async fn drain(req: DrainRequest) -> Result<DrainReply, OpError>;
    /// Read, or validate and replace, the daemon's log filter (`tracing`'s `EnvFilter`
    /// syntax). Added after the first release: clients call it only when `hello` lists
    /// `log-level`.
    async fn log_level(req: LogLevelRequest) -> Result<LogLevelReply, OpError>;
    /// Undo a drain: take new work again. A `drain` call still waiting then ends, not
    /// completed, with `resumed` set. Added after the first release: clients call it only when
    /// `hello` lists `resume`.
    async fn resume(req: ResumeRequest) -> Result<ResumeReply, OpError>;
    /// Every operation and command the daemon serves: name, doc line, access level, and the
    /// JSON Schema of arguments and reply. Added after the first release: clients call it (and
    /// `call`) only when `hello` lists `describe`.
    async fn describe(req: DescribeRequest) -> Result<Description, OpError>;
    /// Runs one of the daemon's own commands by name, with JSON arguments.
    async fn call(req: CallRequest) -> Result<CallReply, OpError>;
    /// Read and validate the configuration as a reload would, apply nothing, and say what a
    /// reload would change; a configuration a reload would refuse is refused the same way.
    /// Added after the first release: clients call it only when `hello` lists `check`.
    async fn check(req: CheckRequest) -> Result<CheckReply, OpError>;
    /// The daemon's named counters and gauges, then the server's own, optionally only those
    /// under a prefix. Added after the first release: clients call it only when `hello` lists
    /// `counters`. The last method: later operations are commands inside `call`.
    async fn counters(req: CountersRequest) -> Result<CountersReply, OpError>;
}
