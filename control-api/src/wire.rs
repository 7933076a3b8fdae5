//! Framing and encoding, identical on both sides: length-delimited frames (4-byte big-endian
//! length) carrying JSON.
//!
//! JSON, not bincode: serde encodes an enum variant by *name* in JSON and by *index* in bincode,
//! so with bincode a request for an operation added later could decode, in an older daemon, as a
//! different operation. The frame limit is small and explicit because the decoder reserves the
//! announced length before reading it.

use serde::{Deserialize, Serialize};
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

/// Wraps a connected stream (usually a `tokio::net::UnixStream`) in the protocol's framing.
pub fn transport<S, Item, SinkItem>(stream: S) -> Transport<S, Item, SinkItem>
where
    S: AsyncRead + AsyncWrite,
    Item: for<'de> Deserialize<'de>,
    SinkItem: Serialize,
{
    let framed = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_framed(stream);
    serde_transport::new(framed, Json::default())
}
