//! Client frames are what the server reads from the network: decoding arbitrary bytes must
//! never panic, and whatever decodes must re-encode to a frame that decodes the same, with a
//! canonical encoding (encoding it again gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_proto::{codec, decode_client, encode_client};

fuzz_target!(|data: &[u8]| {
    let _ = codec::peek_client_id(data);
    if let Ok(frame) = decode_client(data) {
        let bytes = encode_client(&frame).expect("a decoded frame encodes");
        let again = decode_client(&bytes).expect("an encoded frame decodes");
        assert_eq!(again, frame);
        assert_eq!(encode_client(&again).expect("encodes again"), bytes, "canonical encoding");
    }
});
