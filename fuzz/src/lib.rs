//! What the e2ee fuzz targets share: a real MLS group, set up once per fuzz process, and the
//! valid bytes its members sent, which an input may pick and edit.
//!
//! Three devices, each with its own profile (core's own `store::open`, in memory): Alice set
//! the group up with Bob; Carol is a newcomer with KeyPackages on the "server". The targets
//! feed bytes to Alice (a member: messages, call signals) and to Carol (a Welcome, a
//! GroupInfo), each input inside a transaction that is rolled back, so every input meets the
//! same state.
//!
//! An input cannot forge a signature, a membership tag or an AEAD tag, and the group's keys are
//! new in every process (openmls draws its own randomness), so stored seeds could not carry
//! valid messages from one run to the next. So an input may instead name one of the valid
//! [`Templates`] this process's members made and edit it ([`Input::bytes`]): the real Welcome,
//! commits, application messages, GroupInfos, KeyPackages and call signals reach every path
//! the decoders have, and their edits reach every check on the way.

use std::borrow::Cow;
use std::collections::BTreeSet;

use rusqlite::Connection;
use tidings_core::e2ee::{self, Device, LeafId, Roster};

/// The group's id.
pub const GROUP: &[u8; 16] = b"fuzz-group-00001";
/// The call whose signals the templates seal.
pub const CALL: u64 = 7;
/// The kind of the templates' call signals.
pub const KIND: u8 = 1;

/// Alice, the member whose state the group targets use.
pub const ALICE: LeafId = LeafId { user: 1, device: 1 };
/// Bob, the other member: most templates are his.
pub const BOB: LeafId = LeafId { user: 2, device: 2 };
/// Carol, who is not in the group: a Welcome adds her, a GroupInfo lets her join.
pub const CAROL: LeafId = LeafId { user: 3, device: 3 };

/// One profile: its database and its device keys.
pub struct Profile {
    /// The profile's database, migrated as the app's.
    pub conn: Connection,
    /// The device's keys.
    pub device: Device,
}

impl Profile {
    fn new(id: LeafId) -> Self {
        let conn = tidings_core::store::open(std::path::Path::new(":memory:"), None)
            .expect("an in-memory profile opens");
        let device = Device::for_session(&conn, id).expect("device keys");
        Self { conn, device }
    }

    /// Runs `f` inside a transaction that is rolled back: whatever `f` does to the profile
    /// (openmls keeps its group state in the same database) is undone.
    pub fn rolled_back<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let tx = self.conn.unchecked_transaction().expect("begin");
        let out = f(&tx);
        tx.rollback().expect("rollback");
        out
    }
}

/// Valid bytes made by this process's devices, by what they are.
pub struct Templates {
    /// Every template, with its name (for seeds and messages).
    pub all: Vec<(&'static str, Vec<u8>)>,
}

/// The three profiles, Alice and Bob in the group at epoch 1, and the templates.
pub struct World {
    /// A member, at epoch 1 with nothing pending.
    pub alice: Profile,
    /// The other member (its state is not used by the targets).
    pub bob: Profile,
    /// Not in the group; holds the private keys of the KeyPackages Bob's add commit used.
    pub carol: Profile,
    /// What the members made.
    pub templates: Templates,
}

/// Everyone, members now and before.
pub fn roster_all() -> Roster {
    let users: BTreeSet<i64> = [ALICE.user, BOB.user, CAROL.user].into();
    Roster { now: users.clone(), ever: users }
}

/// A room whose only member is Alice: every leaf of Bob or Carol is a stranger's.
pub fn roster_alice() -> Roster {
    let users: BTreeSet<i64> = [ALICE.user].into();
    Roster { now: users.clone(), ever: users }
}

impl World {
    /// Sets the group up and makes the templates (once per fuzz process).
    pub fn new() -> Self {
        let (alice, bob, carol) = (Profile::new(ALICE), Profile::new(BOB), Profile::new(CAROL));
        let roster = roster_all();
        let mut all: Vec<(&'static str, Vec<u8>)> = Vec::new();

        // Alice sets the group up with Bob (epoch 1 once merged).
        let bob_kp = bob.device.key_packages(&bob.conn, 1, false).expect("kp").remove(0);
        let setup = alice.device.create_group(&alice.conn, GROUP, &[bob_kp]).expect("setup");
        alice.device.confirm(&alice.conn, GROUP).expect("confirm setup");
        let setup_welcome = setup.welcome.expect("a setup welcome");
        assert_eq!(e2ee::join(&bob.conn, &setup_welcome, &roster).expect("bob joins"), GROUP);

        // Carol's KeyPackages, as the server's directory hands them out.
        let carol_kps = carol.device.key_packages(&carol.conn, 1, true).expect("carol's kps");

        // Application messages: Bob's (short and long) and Alice's own.
        let hello = bob.device.encrypt(&bob.conn, GROUP, b"hello from bob").expect("encrypt");
        let long = bob.device.encrypt(&bob.conn, GROUP, &[b'x'; 600]).expect("encrypt");
        let own = alice.device.encrypt(&alice.conn, GROUP, b"my own").expect("encrypt");

        // Commits of Bob's at epoch 1, each thrown away again so the next builds on epoch 1:
        // adding Carol (with her Welcome and the new GroupInfo), an empty one (an update
        // path: Bob's new leaf), and removing Alice.
        let add = bob.device.add(&bob.conn, GROUP, &carol_kps[..1]).expect("add carol");
        bob.device.discard(&bob.conn, GROUP).expect("discard");
        let update = bob.device.remove(&bob.conn, GROUP, |_| false).expect("empty commit");
        bob.device.discard(&bob.conn, GROUP).expect("discard");
        let remove = bob.device.remove(&bob.conn, GROUP, |l| l == ALICE).expect("remove");
        bob.device.discard(&bob.conn, GROUP).expect("discard");
        // Alice's own commit, not kept pending (she meets it as someone else's would be).
        let alice_commit = alice.device.remove(&alice.conn, GROUP, |_| false).expect("commit");
        alice.device.discard(&alice.conn, GROUP).expect("discard");

        // Call signals at epoch 1.
        let signal = bob.device.seal_signal(&bob.conn, GROUP, CALL, KIND, b"v=0 offer").unwrap();
        let own_signal = alice.device.seal_signal(&alice.conn, GROUP, CALL, KIND, b"v=0").unwrap();

        all.push(("app_bob_short", hello));
        all.push(("app_bob_long", long));
        all.push(("app_alice_own", own));
        all.push(("commit_bob_add_carol", add.commit));
        all.push(("commit_bob_update", update.commit));
        all.push(("commit_bob_remove_alice", remove.commit));
        all.push(("commit_alice_own", alice_commit.commit));
        all.push(("welcome_carol", add.welcome.expect("a welcome for carol")));
        all.push(("welcome_setup", setup_welcome));
        all.push(("group_info_epoch1", setup.group_info));
        all.push(("group_info_epoch2", add.group_info));
        all.push(("key_package_carol", carol_kps[0].clone()));
        all.push(("key_package_carol_last_resort", carol_kps[1].clone()));
        all.push(("signal_bob", signal));
        all.push(("signal_alice_own", own_signal));

        assert_eq!(e2ee::epoch(&alice.conn, GROUP).expect("epoch"), Some(1));
        Self { alice, bob, carol, templates: Templates { all } }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// One input, read as: decoder (byte 0), template (byte 1), edit (the rest).
///
/// ```text
/// byte 0   low 4 bits: which decoder (modulo the target's count); high 4: its parameters
/// byte 1   0 or 0x80: the rest is the bytes, raw
///          else template ((byte & 0x7f) - 1) modulo their count, edited by the rest:
///          offset (2 bytes, big-endian, modulo the template's length + 1), then a patch —
///          XORed in at the offset (extending the template past its end) or, when byte 1
///          has 0x80, replacing everything from the offset on
/// ```
///
/// So `[decoder, k + 1]` is template k exactly.
pub struct Input<'a> {
    /// Which decoder (already reduced modulo the target's count).
    pub decoder: u8,
    /// The decoder's parameters (4 bits).
    pub params: u8,
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits `data` for a target with `decoders` decoders; `None` for an empty input.
    pub fn new(data: &'a [u8], decoders: u8) -> Option<Self> {
        let (&first, data) = data.split_first()?;
        Some(Self { decoder: (first & 0x0f) % decoders, params: first >> 4, data })
    }

    /// The bytes to decode.
    pub fn bytes(&self, templates: &Templates) -> Cow<'a, [u8]> {
        let Some((&mode, rest)) = self.data.split_first() else { return Cow::Borrowed(&[]) };
        let which = mode & 0x7f;
        if which == 0 {
            return Cow::Borrowed(rest);
        }
        let all = &templates.all;
        let mut bytes = all[usize::from(which - 1) % all.len()].1.clone();
        let (offset, patch) = match rest {
            [a, b, patch @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), patch),
            _ => (0, &[][..]),
        };
        let offset = offset % (bytes.len() + 1);
        if mode & 0x80 != 0 {
            bytes.truncate(offset);
            bytes.extend_from_slice(patch);
        } else {
            for (i, p) in patch.iter().enumerate() {
                match bytes.get_mut(offset + i) {
                    Some(b) => *b ^= p,
                    None => bytes.push(*p),
                }
            }
        }
        Cow::Owned(bytes)
    }
}

/// Writes seeds for a target with `decoders` decoders into `dir` when `TIDINGS_FUZZ_SEEDS`
/// names a directory (`TIDINGS_FUZZ_SEEDS=fuzz/corpus cargo xtask fuzz mls_group 1`): every
/// template under every decoder, and every template's bytes raw.
pub fn write_seeds(target: &str, decoders: u8, templates: &Templates) {
    let Some(root) = std::env::var_os("TIDINGS_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&root).join(target);
    std::fs::create_dir_all(&dir).expect("seed directory");
    for d in 0..decoders {
        for (k, (name, bytes)) in templates.all.iter().enumerate() {
            let k = u8::try_from(k + 1).expect("fewer than 127 templates");
            std::fs::write(dir.join(format!("{d}-{name}")), [d, k]).expect("seed");
            let mut raw = vec![d, 0];
            raw.extend_from_slice(bytes);
            std::fs::write(dir.join(format!("{d}-{name}-raw")), raw).expect("seed");
        }
    }
}
