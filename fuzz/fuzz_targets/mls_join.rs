//! What a device meets on its way into a room's group, all of it bytes from the server:
//! a Welcome (a member added it), a GroupInfo (it joins by external commit: a linked device,
//! one left out of a Welcome) and the KeyPackages the server's directory hands out for the
//! devices a commit is to add. Decoding must never panic, and a group whose leaves the room's
//! roster does not have must never be joined.
//!
//! Each input goes to one of core's real entry points, with Carol's profile (not in the
//! group, holding the KeyPackages a real Welcome was made for: tidings_fuzz::World, set up
//! once per process), in a transaction rolled back afterwards:
//! - 0: `e2ee::join` (a Welcome);
//! - 1: `Device::join_external` (a GroupInfo);
//! - 2: `e2ee::check_key_package` (a claimed KeyPackage).
//!
//! The input's parameter bit picks the roster: the room's members, or Alice alone (then
//! nothing may be joined: Carol's own leaf is a stranger's). Inputs may pick and edit the
//! valid messages this process's members made (tidings_fuzz::Input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_core::e2ee;
use tidings_fuzz::{roster_alice, roster_all, Input, World};

const DECODERS: u8 = 3;

thread_local! {
    static WORLD: World = World::new();
}

fuzz_target!(
    init: WORLD.with(|w| tidings_fuzz::write_seeds("mls_join", DECODERS, &w.templates)),
    |data: &[u8]| WORLD.with(|w| run(w, data))
);

fn run(w: &World, data: &[u8]) {
    let Some(input) = Input::new(data, DECODERS) else { return };
    let bytes = input.bytes(&w.templates);
    let stranger_only = input.params & 1 != 0;
    let roster = if stranger_only { roster_alice() } else { roster_all() };
    let carol = &w.carol;
    match input.decoder {
        0 => {
            let joined = carol.rolled_back(|c| e2ee::join(c, &bytes, &roster));
            assert!(!(stranger_only && joined.is_ok()), "joined a group of strangers");
        }
        1 => {
            let joined = carol.rolled_back(|c| carol.device.join_external(c, &bytes, &roster));
            assert!(!(stranger_only && joined.is_ok()), "joined a group of strangers");
        }
        _ => {
            let _ = e2ee::check_key_package(&bytes);
        }
    }
}
