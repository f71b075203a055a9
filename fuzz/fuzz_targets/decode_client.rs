//! Client frames are what the server reads from the network: decoding arbitrary bytes must
//! never panic, and whatever decodes must re-encode to a frame that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_proto::{codec, decode_client, encode_client};

fuzz_target!(|data: &[u8]| {
    let _ = codec::peek_client_id(data);
    if let Ok(frame) = decode_client(data) {
        let bytes = encode_client(&frame).expect("a decoded frame encodes");
        assert_eq!(decode_client(&bytes).expect("re-decodes"), frame);
    }
});
