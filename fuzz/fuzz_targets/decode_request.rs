//! Everything a daemon does with bytes from its socket before a handler runs: split them into
//! frames with the protocol's codec, then decode each frame as the request the registry runs.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tarpc::tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = control_api::wire::codec();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() <= control_api::wire::MAX_FRAME_LEN);
        let _ = control_api::wire::decode_invocation(&frame);
    }
    // The input as one payload too, so the JSON decoder sees every input whole.
    let _ = control_api::wire::decode_invocation(data);
});
