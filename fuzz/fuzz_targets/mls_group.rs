//! What the server relays to a member of a room's group: log events carrying MLS messages
//! (commits, proposals, application messages) and live call signals sealed for the group.
//! All of it is anyone's bytes as far as the member can tell — the server's, or a member's
//! gone bad — so decoding must never panic, and only what a member really sent may open.
//!
//! Each input goes to one of core's real entry points, against Alice's state in a real group
//! (tidings_fuzz::World, set up once per process), in a transaction rolled back afterwards:
//! - 0: `e2ee::process` (how sync applies a commit or proposal, with the room's roster);
//! - 1: `e2ee::Loaded::open`, twice on one `Loaded` (how a page of messages is opened: a
//!   message opens once, and a handshake is refused);
//! - 2: `e2ee::signal::open_signal` (a call signal, from a sender, call and kind the input
//!   picks among right and wrong ones).
//!
//! `e2ee::header` (what apply reads of a commit) runs on every input of 0 and 1, and must
//! agree with what processing made of it; most inputs whose header does not decode skip
//! processing, which would refuse them at the same decoding (`sampled`). Inputs may pick and
//! edit the valid messages this process's members made (tidings_fuzz::Input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_core::e2ee::{self, signal, LeafId, Loaded, Processed};
use tidings_fuzz::{roster_alice, roster_all, Input, World, ALICE, BOB, CALL, CAROL, GROUP, KIND};

const DECODERS: u8 = 3;

thread_local! {
    static WORLD: World = World::new();
}

fuzz_target!(
    init: WORLD.with(|w| tidings_fuzz::write_seeds("mls_group", DECODERS, &w.templates)),
    |data: &[u8]| WORLD.with(|w| run(w, data))
);

fn run(w: &World, data: &[u8]) {
    let Some(input) = Input::new(data, DECODERS) else { return };
    let bytes = input.bytes(&w.templates);
    let alice = &w.alice;
    match input.decoder {
        0 => {
            let header = e2ee::header(&bytes);
            if header.is_err() && !sampled(&bytes) {
                return;
            }
            let roster = if input.params & 1 == 0 { roster_all() } else { roster_alice() };
            let processed = alice.rolled_back(|c| e2ee::process(c, GROUP, &bytes, &roster));
            check_header(&header, &processed);
            if let Ok(Processed::Commit { by, added, .. }) = &processed {
                assert!(*by == BOB, "a commit processed as {by:?}'s");
                assert!(added.iter().all(|l| roster.now.contains(&l.user)), "added {added:?}");
            }
        }
        1 => {
            let header = e2ee::header(&bytes);
            if header.is_err() && !sampled(&bytes) {
                return;
            }
            let (first, second) = alice.rolled_back(|c| {
                let mut loaded = Loaded::default();
                (loaded.open(c, GROUP, &bytes), loaded.open(c, GROUP, &bytes))
            });
            check_header(&header, &first);
            match &first {
                Ok(Processed::Application { .. }) => assert!(
                    !matches!(second, Ok(Processed::Application { .. })),
                    "a message opened twice"
                ),
                Ok(Processed::OwnMessage) | Err(_) => {}
                Ok(other) => panic!("Loaded::open gave {other:?}"),
            }
        }
        _ => {
            let from = match input.params & 3 {
                0 => BOB,
                1 => ALICE,
                2 => CAROL,
                _ => LeafId { user: 9, device: 9 },
            };
            let kind = KIND ^ (input.params >> 2 & 1);
            let call = CALL + u64::from(input.params >> 3);
            let opened =
                alice.rolled_back(|c| signal::open_signal(c, GROUP, call, kind, from, &bytes));
            if let Ok(blob) = opened {
                assert!(from == BOB || from == ALICE, "a signal opened as {from:?}'s");
                assert!(kind == KIND && call == CALL, "a signal opened as another call's");
                assert_eq!(blob.len() + signal::OVERHEAD, bytes.len());
            }
        }
    }
}

/// Whether an input whose header does not decode goes to processing all the same: one in 64.
/// Processing loads the group (the most of its cost) and then decodes the message as
/// `header` does, so such an input is refused as malformed there too ([`check_header`]
/// checks it on these); the rest skip the load, which makes the target some times faster.
fn sampled(bytes: &[u8]) -> bool {
    bytes.iter().fold(bytes.len() as u8, |a, b| a.wrapping_add(*b)) % 64 == 0
}

/// What processing made of a message agrees with what its header says.
fn check_header(
    header: &Result<(Vec<u8>, u64, bool), e2ee::E2eeError>,
    processed: &Result<Processed, e2ee::E2eeError>,
) {
    let ((group, epoch, commit), processed) = match (header, processed) {
        (Ok(header), Ok(processed)) => (header, processed),
        (Ok(_), Err(_)) | (Err(_), Err(e2ee::E2eeError::Malformed(_))) => return,
        (Err(e), _) => panic!("{processed:?} for a message whose header does not decode: {e}"),
    };
    assert_eq!(group.as_slice(), GROUP, "processed a message of another group");
    assert_eq!(*epoch, 1, "processed a message of another epoch");
    match processed {
        Processed::Application { sender, .. } => {
            assert!(!commit, "an application message whose header says commit");
            assert!(*sender == BOB || *sender == ALICE, "a message from {sender:?}");
        }
        Processed::Commit { .. } | Processed::OwnCommit => assert!(commit, "a commit's header"),
        Processed::OwnMessage | Processed::Proposal => assert!(!commit, "not a commit's header"),
    }
}
