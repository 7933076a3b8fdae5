//! Framing and encoding, identical on both sides: length-delimited frames (4-byte big-endian
//! length) carrying JSON.
//!
//! JSON, not bincode: serde encodes an enum variant by *name* in JSON and by *index* in bincode,
//! so with bincode a request for an operation added later could decode, in an older daemon, as a
//! different operation. The frame limit is small and explicit because the decoder reserves the
//! announced length before reading it.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tarpc::serde_transport;
use tarpc::tokio_serde::formats::Json;
use tarpc::tokio_util::codec::LengthDelimitedCodec;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest frame either side sends or accepts, in bytes. A longer announced length closes the
/// connection before anything is allocated for it.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// A tarpc transport over any byte stream, framed and encoded as the protocol requires.
pub type Transport<S, Item, SinkItem> =
    serde_transport::Transport<S, Item, SinkItem, Json<Item, SinkItem>>;

/// Largest reply frame a client accepts: a daemon may raise its own limit (for a large
/// `status`) up to this, and `ctl` still reads the reply. A client holds one connection, so the
/// larger buffer costs it nothing a daemon with many connections would pay.
pub const MAX_REPLY_FRAME_LEN: usize = 1024 * 1024;

/// The framing codec: 4-byte big-endian length prefix, at most [`MAX_FRAME_LEN`] bytes.
pub fn codec() -> LengthDelimitedCodec {
    codec_with_limit(MAX_FRAME_LEN)
}

/// The framing codec with another frame limit, in bytes.
pub fn codec_with_limit(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// Wraps a connected stream (usually a `tokio::net::UnixStream`) in the protocol's framing.
pub fn transport<S, Item, SinkItem>(stream: S) -> Transport<S, Item, SinkItem>
where
    S: AsyncRead + AsyncWrite,
    Item: for<'de> Deserialize<'de>,
    SinkItem: Serialize,
{
    transport_with_limit(stream, MAX_FRAME_LEN)
}

/// [`transport`] with another frame limit, in bytes, for both directions.
pub fn transport_with_limit<S, Item, SinkItem>(
    stream: S,
    max_frame_len: usize,
) -> Transport<S, Item, SinkItem>
where
    S: AsyncRead + AsyncWrite,
    Item: for<'de> Deserialize<'de>,
    SinkItem: Serialize,
{
    let framed = tarpc::tokio_util::codec::Framed::new(stream, codec_with_limit(max_frame_len));
    serde_transport::new(framed, Json::default())
}

/// Longest deadline a request may carry; a longer one is cut to this when the request is
/// decoded. `ctl` caps `--timeout` at the same, and no control operation needs longer.
pub const MAX_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// Deadline of a request that carries none, as tarpc's own default.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// A client message as it arrives, before its deadline is made an `Instant`. tarpc's own
/// decoding adds the relative deadline to `Instant::now()` unchecked: a deadline some 10^12 s
/// away panics there, and one merely far away leaves every later step (span formatting, the
/// deadline queue) to cope with it. Decoding into these first lets the deadline be checked.
#[derive(Deserialize)]
#[serde(bound = "M: Deserialize<'de>")]
enum Incoming<M> {
    Request(IncomingRequest<M>),
    Cancel {
        #[serde(default)]
        trace_context: tarpc::trace::Context,
        request_id: u64,
    },
}

#[derive(Deserialize)]
#[serde(bound = "M: Deserialize<'de>")]
struct IncomingRequest<M> {
    context: IncomingContext,
    id: u64,
    message: M,
}

#[derive(Deserialize)]
struct IncomingContext {
    /// Relative to the moment of sending, as tarpc sends it.
    #[serde(default)]
    deadline: Option<Duration>,
    #[serde(default)]
    trace_context: tarpc::trace::Context,
}

/// Decodes one frame's payload as a daemon does: what a request on the socket becomes.
/// Exposed so that the decoder can be fuzzed and property-tested exactly as it runs.
///
/// The request's deadline is clamped to [`MAX_DEADLINE`] from now before it becomes an
/// `Instant`, so no deadline a caller sends can overflow or linger.
pub fn decode_request(
    payload: &[u8],
) -> Result<tarpc::ClientMessage<crate::ControlRequest>, serde_json::Error> {
    decode(payload)
}

/// [`decode_request`] into the server's form of a request, the
/// [`Invocation`](crate::codec::Invocation) its registry dispatches: what the daemon runs.
pub fn decode_invocation(
    payload: &[u8],
) -> Result<tarpc::ClientMessage<crate::codec::Invocation>, serde_json::Error> {
    decode(payload)
}

fn decode<M: for<'de> Deserialize<'de>>(
    payload: &[u8],
) -> Result<tarpc::ClientMessage<M>, serde_json::Error> {
    Ok(match serde_json::from_slice::<Incoming<M>>(payload)? {
        Incoming::Request(request) => {
            let mut context = tarpc::context::current();
            let relative = request.context.deadline.unwrap_or(DEFAULT_DEADLINE);
            context.deadline = Instant::now() + relative.min(MAX_DEADLINE);
            context.trace_context = request.context.trace_context;
            tarpc::ClientMessage::Request(tarpc::Request {
                context,
                id: request.id,
                message: request.message,
            })
        }
        Incoming::Cancel {
            trace_context,
            request_id,
        } => tarpc::ClientMessage::Cancel {
            trace_context,
            request_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ControlRequest, HelloRequest};
    use bytes::{BufMut, BytesMut};
    use proptest::prelude::*;
    use tarpc::tokio_util::codec::Decoder;

    fn valid_request() -> Vec<u8> {
        let msg = tarpc::ClientMessage::Request(tarpc::Request {
            context: tarpc::context::current(),
            id: 7,
            message: ControlRequest::Hello {
                req: HelloRequest::default(),
            },
        });
        serde_json::to_vec(&msg).unwrap()
    }

    /// Runs bytes through the daemon's decoding path: frames, then JSON. Returns how many
    /// requests decoded; must never panic or allocate past the frame limit.
    fn decode_all(bytes: &[u8]) -> usize {
        let mut codec = codec();
        let mut buf = BytesMut::from(bytes);
        let mut decoded = 0;
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            assert!(frame.len() <= MAX_FRAME_LEN);
            decoded += usize::from(decode_request(&frame).is_ok());
        }
        decoded
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u32(payload.len() as u32);
        out.put_slice(payload);
        out.to_vec()
    }

    #[test]
    fn a_valid_request_decodes() {
        assert_eq!(decode_all(&framed(&valid_request())), 1);
    }

    #[test]
    fn a_deadline_too_far_away_is_clamped_not_a_panic() {
        for secs in [u64::MAX, 1_000_000_000_000, MAX_DEADLINE.as_secs() + 1] {
            let mut doc: serde_json::Value = serde_json::from_slice(&valid_request()).unwrap();
            doc["Request"]["context"]["deadline"] = serde_json::json!({"secs": secs, "nanos": 0});
            let before = Instant::now();
            let Ok(tarpc::ClientMessage::Request(request)) =
                decode_request(doc.to_string().as_bytes())
            else {
                panic!("a far deadline is still a request");
            };
            let left = request.context.deadline - before;
            assert!(
                left <= MAX_DEADLINE + Duration::from_secs(1),
                "{secs}: {left:?}"
            );
            assert!(
                left >= MAX_DEADLINE - Duration::from_secs(60),
                "{secs}: {left:?}"
            );
        }
    }

    #[test]
    fn a_cancel_decodes() {
        let doc = serde_json::json!({"Cancel": {"request_id": 3}});
        assert!(matches!(
            decode_request(doc.to_string().as_bytes()),
            Ok(tarpc::ClientMessage::Cancel { request_id: 3, .. })
        ));
    }

    #[test]
    fn an_oversized_length_is_an_error_not_an_allocation() {
        let mut codec = codec();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, b'{'][..]);
        assert!(codec.decode(&mut buf).is_err());
        assert!(
            buf.capacity() < 1024 * 1024,
            "reserved {} bytes",
            buf.capacity()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            decode_all(&bytes);
        }

        #[test]
        fn arbitrary_payloads_in_valid_frames_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..2048)
        ) {
            decode_all(&framed(&payload));
        }

        #[test]
        fn mutated_requests_never_panic(
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut payload = valid_request();
            for (at, byte) in flips {
                let i = at.index(payload.len());
                payload[i] = byte;
            }
            let frame = framed(&payload);
            // Whole, and truncated anywhere.
            decode_all(&frame);
            decode_all(&frame[..cut.index(frame.len())]);
        }

        #[test]
        fn unknown_operations_are_decode_errors(name in "[A-Z][a-zA-Z]{0,20}") {
            // Every variant the codec knows, by its own list, so that a new one is left out too.
            let known = crate::codec::METHODS.iter().map(|(variant, _)| *variant).chain(["Call"]);
            prop_assume!(!known.into_iter().any(|v| v == name));
            let mut doc: serde_json::Value = serde_json::from_slice(&valid_request()).unwrap();
            doc["Request"]["message"] = serde_json::json!({ name: {"req": {}} });
            prop_assert!(decode_request(doc.to_string().as_bytes()).is_err());
        }
    }
}
