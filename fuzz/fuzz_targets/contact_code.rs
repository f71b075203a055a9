//! Contact codes come from cameras, screenshots and pasted text: parsing any input must
//! never panic, and a code that parses must print to a text that parses to the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_proto::contact::ContactCode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(code) = ContactCode::parse(text) {
        let again = ContactCode::parse(&code.to_uri()).expect("a printed code parses");
        assert_eq!(again, code);
    }
});
