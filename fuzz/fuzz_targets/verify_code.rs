//! Verify codes come from cameras, like contact codes: parsing any input must never panic,
//! and a code that parses must print to a text that parses to the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_proto::verify::VerifyCode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(code) = VerifyCode::parse(text) {
        let again = VerifyCode::parse(&code.to_uri()).expect("a printed code parses");
        assert_eq!(again, code);
    }
});
