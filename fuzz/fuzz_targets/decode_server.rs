//! Server frames are what a client reads from the network: decoding arbitrary bytes must
//! never panic, and whatever decodes must re-encode to a frame that decodes the same, with a
//! canonical encoding (encoding it again gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_proto::{decode_server, encode_server};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_server(data) {
        let bytes = encode_server(&frame).expect("a decoded frame encodes");
        let again = decode_server(&bytes).expect("an encoded frame decodes");
        assert_eq!(again, frame);
        assert_eq!(encode_server(&again).expect("encodes again"), bytes, "canonical encoding");
    }
});
