//! The daemon's side of the wire: frames in, requests out, replies back, with the project's own
//! decoding in front of tarpc.
//!
//! tarpc never sees a byte a caller sent: requests are decoded here by
//! [`wire::decode_invocation`](control_api::wire::decode_invocation), which clamps deadlines, and
//! anything that does not decode closes the connection with a reason the connection logs,
//! rate-limited, instead of tarpc logging one warning per bad frame. Replies may be longer than
//! requests (up to [`MAX_REPLY_FRAME_LEN`], what `ctl` reads); a reply longer still has its long
//! strings cut, with a mark, so that a daemon's oversized status field can never make every
//! `status` fail.

use crate::conn_state::{ConnState, Kill};
use crate::noise::Throttle;
use crate::state::Shared;
use bytes::{Bytes, BytesMut};
use control_api::codec::{Answer, Invocation};
use control_api::wire::{self, MAX_REPLY_FRAME_LEN};
use control_api::Access;
use futures::{ready, Sink, Stream};
use serde::Serialize;
use serde_json::Value;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tarpc::tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};
use tarpc::{ClientMessage, Response, ServerError};
use tokio::io::{AsyncRead, AsyncWrite};

/// Reads requests of at most `max_request` bytes, writes replies of at most
/// [`MAX_REPLY_FRAME_LEN`].
struct Codec {
    requests: LengthDelimitedCodec,
    replies: LengthDelimitedCodec,
}

impl Decoder for Codec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        self.requests.decode(src)
    }
}

impl Encoder<Bytes> for Codec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.replies.encode(item, dst)
    }
}

/// Least time a read-only request, or any request from a caller refused every change, is given.
///
/// tarpc logs an ERROR line for every request whose deadline passes before its reply is sent;
/// a deadline of zero makes that almost every request, a line any caller could multiply. Such a
/// request only reads, or will be refused: nothing the caller's deadline protects. A change
/// asked by a caller allowed to make it keeps its deadline exactly, since the daemon must not
/// apply a change after the caller gave up.
const MIN_DEADLINE: Duration = Duration::from_secs(1);

/// One connection's transport, as tarpc's `BaseChannel` takes it.
pub(crate) struct ServerTransport<S> {
    framed: Framed<S, Codec>,
    state: Arc<ConnState>,
    /// What each request needs, looked up by name.
    shared: Arc<Shared>,
    /// What the policy grants this caller.
    level: Option<Access>,
}

impl<S: AsyncRead + AsyncWrite> ServerTransport<S> {
    pub fn new(
        stream: S,
        max_request: usize,
        state: Arc<ConnState>,
        shared: Arc<Shared>,
        level: Option<Access>,
    ) -> Self {
        let codec = Codec {
            requests: wire::codec_with_limit(max_request),
            replies: wire::codec_with_limit(MAX_REPLY_FRAME_LEN),
        };
        ServerTransport {
            framed: Framed::new(stream, codec),
            state,
            shared,
            level,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ServerTransport<S> {
    type Item = io::Result<ClientMessage<Invocation>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let frame = match ready!(Pin::new(&mut self.framed).poll_next(cx)) {
            None => return Poll::Ready(None),
            Some(Ok(frame)) => frame,
            // The codec's only error of its own: a length over the limit.
            Some(Err(err)) if err.kind() == io::ErrorKind::InvalidData => {
                self.state
                    .kill(Kill::BadInput(format!("a frame over the limit ({err})")));
                return Poll::Ready(None);
            }
            // The caller reset the connection: nothing to report.
            Some(Err(_)) => return Poll::Ready(None),
        };
        match wire::decode_invocation(&frame) {
            Ok(mut message) => {
                if let ClientMessage::Request(request) = &mut message {
                    // Read access, or refused.
                    let needed = self.shared.registry.access(&request.message);
                    if needed == Access::Read || self.level < Some(needed) {
                        let floor = Instant::now() + MIN_DEADLINE;
                        request.context.deadline = request.context.deadline.max(floor);
                    }
                }
                Poll::Ready(Some(Ok(message)))
            }
            Err(err) => {
                self.state.kill(Kill::BadInput(format!(
                    "a request that does not decode ({err})"
                )));
                // Ending the stream rather than yielding an error: tarpc would log a warning
                // per bad frame, a line any caller could multiply.
                Poll::Ready(None)
            }
        }
    }
}

/// What a write on `state`'s connection came to. A reply that cannot be written means the
/// caller is gone (or not reading and reset): the connection is dropped at once, quietly.
/// Passing the error on would make tarpc log a warning per connection, a line any caller could
/// multiply by hanging up early.
fn writing(result: Poll<io::Result<()>>, state: &ConnState) -> Poll<io::Result<()>> {
    match result {
        Poll::Ready(Err(_)) => {
            state.kill(Kill::Gone);
            // The connection's task is woken by the kill and drops everything.
            Poll::Pending
        }
        other => other,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Response<Answer>> for ServerTransport<S> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        writing(Pin::new(&mut self.framed).poll_ready(cx), &self.state)
    }

    fn start_send(mut self: Pin<&mut Self>, reply: Response<Answer>) -> io::Result<()> {
        let bytes = encode_reply(&reply, MAX_REPLY_FRAME_LEN, &self.shared.noise.big_replies)?;
        Pin::new(&mut self.framed).start_send(bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        writing(Pin::new(&mut self.framed).poll_flush(cx), &self.state)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        writing(Pin::new(&mut self.framed).poll_close(cx), &self.state)
    }
}

/// Mark left where a reply's string was cut to fit the frame limit.
const CUT_MARK: &str = "…[cut: reply over the frame limit]";

/// Encodes a reply in at most `limit` bytes: as it is when it fits (the only path a normal reply
/// takes), else with its longest strings cut (each keeps its beginning and a mark), else as an
/// error saying why there is no reply.
/// Its warnings go through `noise`: any caller may ask for the same big reply in a loop.
fn encode_reply<T: Serialize>(
    reply: &Response<T>,
    limit: usize,
    noise: &Arc<Throttle>,
) -> io::Result<Bytes> {
    let bytes = serde_json::to_vec(reply)?;
    if bytes.len() <= limit {
        return Ok(bytes.into());
    }
    let full = bytes.len();
    let mut doc = serde_json::to_value(reply)?;
    // Halve the longest strings until the reply fits; a few rounds at most, since each round at
    // least halves the longest string.
    for _ in 0..32 {
        let longest = longest_string(&doc);
        if longest <= 2 * CUT_MARK.len() {
            break;
        }
        cut_strings(&mut doc, longest / 2);
        let bytes = serde_json::to_vec(&doc)?;
        if bytes.len() <= limit {
            if noise.admit() {
                tracing::warn!(
                    "a reply of {full} bytes is over the {limit}-byte frame limit: sent with its \
                     longest strings cut"
                );
            }
            return Ok(bytes.into());
        }
    }
    let error = Response::<Value> {
        request_id: reply.request_id,
        message: Err(ServerError::new(
            io::ErrorKind::InvalidData,
            format!(
                "the reply was {full} bytes, over the {limit}-byte frame limit, and does not \
                 fit even with its strings cut"
            ),
        )),
    };
    if noise.admit() {
        tracing::warn!("a reply of {full} bytes is over the {limit}-byte frame limit: not sent");
    }
    Ok(serde_json::to_vec(&error)?.into())
}

fn longest_string(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(map) => map.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

/// Cuts every string longer than `keep` bytes to about `keep` bytes, mark included.
fn cut_strings(value: &mut Value, keep: usize) {
    match value {
        Value::String(s) if s.len() > keep => {
            crate::audit::truncate_marked(s, keep.saturating_sub(CUT_MARK.len()), CUT_MARK)
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, keep)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, keep)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_api::{ControlResponse, OpError, Status};

    fn status_reply(message: &str) -> Response<ControlResponse> {
        let mut status = Status {
            name: "d".into(),
            ..Status::default()
        };
        status.fields.insert("message".into(), message.into());
        status.fields.insert("short".into(), "kept".into());
        Response {
            request_id: 9,
            message: Ok(ControlResponse::Status(Ok(status))),
        }
    }

    fn decode(bytes: &[u8]) -> Response<ControlResponse> {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_reply_that_fits_is_sent_as_it_is() {
        let reply = status_reply("hello");
        let bytes = encode_reply(&reply, 1024, &Throttle::new("test")).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&reply).unwrap());
    }

    #[test]
    fn a_reply_over_the_limit_has_its_long_strings_cut_with_a_mark() {
        let reply = status_reply(&"é".repeat(40_000));
        let bytes = encode_reply(&reply, 16 * 1024, &Throttle::new("test")).unwrap();
        assert!(bytes.len() <= 16 * 1024, "{}", bytes.len());
        let Ok(ControlResponse::Status(Ok(status))) = decode(&bytes).message else {
            panic!("still a status reply");
        };
        assert_eq!(status.fields["short"], "kept");
        assert!(status.fields["message"].starts_with("éé"));
        assert!(status.fields["message"].ends_with(CUT_MARK));
    }

    #[test]
    fn a_reply_that_cannot_fit_becomes_an_error_for_the_same_request() {
        let mut status = Status::default();
        for i in 0..2000 {
            status.fields.insert(format!("field-{i:05}"), "x".into());
        }
        let reply = Response {
            request_id: 4,
            message: Ok(ControlResponse::Status(Ok::<_, OpError>(status))),
        };
        let decoded = decode(&encode_reply(&reply, 4096, &Throttle::new("test")).unwrap());
        assert_eq!(decoded.request_id, 4);
        let err = decoded.message.unwrap_err();
        assert!(err.detail.contains("frame limit"), "{err:?}");
    }
}
