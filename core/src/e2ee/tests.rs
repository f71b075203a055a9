//! MLS through the profile's own SQLite files: every step reopens the database, as an app
//! restart would, so what openmls keeps is what it wrote to disk.

use super::*;

struct Profile {
    dir: tempfile::TempDir,
    id: LeafId,
}

impl Profile {
    fn new(user: i64, device: i64) -> Self {
        let profile = Self { dir: tempfile::tempdir().unwrap(), id: LeafId { user, device } };
        Device::for_session(&profile.open(), profile.id).unwrap();
        profile
    }

    fn open(&self) -> Connection {
        crate::store::open(&self.dir.path().join("profile.sqlite"), None).unwrap()
    }

    /// Runs `f` with this device's keys on a freshly opened database.
    fn with<T>(&self, f: impl FnOnce(&Device, &Connection) -> T) -> T {
        let conn = self.open();
        let device = Device::load(&conn).unwrap().unwrap();
        f(&device, &conn)
    }

    fn key_package(&self) -> Vec<u8> {
        self.with(|d, c| d.key_packages(c, 1, false).unwrap().remove(0))
    }
}

const GROUP: &[u8; 16] = b"room-0000000001\0";

/// Every user these tests make, members of the room now and before.
fn everyone() -> Roster {
    let users: std::collections::BTreeSet<i64> = (1..=9).collect();
    Roster { now: users.clone(), ever: users }
}

/// [`super::process`] in a room whose members are [`everyone`].
fn process(c: &Connection, group: &[u8], message: &[u8]) -> Result<Processed, E2eeError> {
    super::process(c, group, message, &everyone())
}

/// [`super::join`] into a room whose members are [`everyone`].
fn join(c: &Connection, welcome: &[u8]) -> Result<Vec<u8>, E2eeError> {
    super::join(c, welcome, &everyone())
}

/// Alice sets up a group with Bob and Carol; everyone has merged the setup.
fn three() -> (Profile, Profile, Profile) {
    let (alice, bob, carol) = (Profile::new(1, 1), Profile::new(2, 2), Profile::new(3, 3));
    let kps = [bob.key_package(), carol.key_package()];
    let setup = alice.with(|d, c| d.create_group(c, GROUP, &kps).unwrap());
    assert_eq!(setup.epoch, 0);
    assert!(setup.commit.is_empty(), "a setup sends no commit, only the Welcome");
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    let welcome = setup.welcome.unwrap();
    for p in [&bob, &carol] {
        assert_eq!(p.with(|_, c| join(c, &welcome).unwrap()), GROUP.to_vec());
    }
    (alice, bob, carol)
}

#[test]
fn messages_reach_every_member_across_restarts_and_the_sender_meets_its_own_as_own() {
    let (alice, bob, carol) = three();
    for p in [&alice, &bob, &carol] {
        assert_eq!(p.with(|_, c| epoch(c, GROUP).unwrap()), Some(1));
        let mut leaves = p.with(|_, c| members(c, GROUP).unwrap());
        leaves.sort();
        assert_eq!(leaves, vec![alice.id, bob.id, carol.id]);
    }
    let auth = alice.with(|_, c| authenticator(c, GROUP).unwrap());
    assert_eq!(bob.with(|_, c| authenticator(c, GROUP).unwrap()), auth);

    let sealed = bob.with(|d, c| d.encrypt(c, GROUP, b"hello from bob").unwrap());
    assert!(!sealed.windows(5).any(|w| w == b"hello"), "the text is not in the ciphertext");
    let short = bob.with(|d, c| d.encrypt(c, GROUP, b"k").unwrap());
    assert_eq!(short.len(), sealed.len(), "padded: a 1-byte and a 14-byte text look the same");
    assert_eq!(
        alice.with(|_, c| process(c, GROUP, &short).unwrap()),
        Processed::Application { sender: bob.id, plaintext: b"k".to_vec() }
    );
    for p in [&alice, &carol] {
        assert_eq!(
            p.with(|_, c| process(c, GROUP, &sealed).unwrap()),
            Processed::Application { sender: bob.id, plaintext: b"hello from bob".to_vec() }
        );
    }
    assert_eq!(bob.with(|_, c| process(c, GROUP, &sealed).unwrap()), Processed::OwnMessage);
}

#[test]
fn a_message_decrypted_in_a_rolled_back_transaction_decrypts_again_and_once_committed_never() {
    let (alice, bob, _carol) = three();
    let sealed = alice.with(|d, c| d.encrypt(c, GROUP, b"only once").unwrap());
    let mut conn = bob.open();
    {
        // A crash before the commit: openmls' writes go with the transaction.
        let tx = conn.transaction().unwrap();
        assert!(matches!(process(&tx, GROUP, &sealed).unwrap(), Processed::Application { .. }));
        tx.rollback().unwrap();
    }
    let tx = conn.transaction().unwrap();
    assert!(matches!(process(&tx, GROUP, &sealed).unwrap(), Processed::Application { .. }));
    tx.commit().unwrap();
    drop(conn);
    // The key is gone: the same message cannot be decrypted twice.
    assert!(matches!(bob.with(|_, c| process(c, GROUP, &sealed)), Err(E2eeError::Refused(_))));
}

#[test]
fn a_page_opens_its_messages_against_one_loaded_group_across_a_commit_and_a_rollback() {
    let (alice, bob, _carol) = three();
    let before: Vec<_> = (0..3)
        .map(|i| alice.with(|d, c| d.encrypt(c, GROUP, format!("before {i}").as_bytes()).unwrap()))
        .collect();
    let removal = alice.with(|d, c| d.remove(c, GROUP, |leaf| leaf.user == 3).unwrap());
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    let after = alice.with(|d, c| d.encrypt(c, GROUP, b"after the commit").unwrap());
    let mut conn = bob.open();
    let page = |tx: &Connection| {
        let mut loaded = Loaded::default();
        let mut texts = Vec::new();
        for sealed in &before {
            match loaded.open(tx, GROUP, sealed).unwrap() {
                Processed::Application { plaintext, .. } => texts.push(plaintext),
                other => panic!("{other:?}"),
            }
        }
        // A handshake goes through storage: the loaded state is let go first (as apply does).
        loaded.forget(GROUP);
        assert!(matches!(process(tx, GROUP, &removal.commit).unwrap(), Processed::Commit { .. }));
        match loaded.open(tx, GROUP, &after).unwrap() {
            Processed::Application { plaintext, .. } => texts.push(plaintext),
            other => panic!("{other:?}"),
        }
        texts
    };
    // A crash before the page's commit: everything opens again, once.
    let tx = conn.transaction().unwrap();
    assert_eq!(page(&tx).len(), 4);
    tx.rollback().unwrap();
    let tx = conn.transaction().unwrap();
    let texts = page(&tx);
    tx.commit().unwrap();
    assert_eq!(texts.last().unwrap(), b"after the commit");
    assert_eq!(texts[0], b"before 0");
    drop(conn);
    assert_eq!(bob.with(|_, c| epoch(c, GROUP).unwrap()), Some(2));
    assert!(bob.with(|_, c| process(c, GROUP, &after)).is_err(), "its key was used up");
}

#[test]
fn of_two_commits_on_one_epoch_the_loser_discards_applies_the_winner_and_rebuilds() {
    let (alice, bob, carol) = three();
    let dave = Profile::new(4, 4);
    let erin = Profile::new(5, 5);
    let (dave_kp, erin_kp) = (dave.key_package(), erin.key_package());
    // Both commit on epoch 1; the server logs Alice's and refuses Bob's (stale epoch).
    let won = alice.with(|d, c| d.add(c, GROUP, std::slice::from_ref(&dave_kp)).unwrap());
    let lost = bob.with(|d, c| d.add(c, GROUP, std::slice::from_ref(&erin_kp)).unwrap());
    assert_eq!((won.epoch, lost.epoch), (1, 1));
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    bob.with(|d, c| d.discard(c, GROUP).unwrap());
    for p in [&bob, &carol] {
        let processed = p.with(|_, c| process(c, GROUP, &won.commit).unwrap());
        assert_eq!(
            processed,
            Processed::Commit { by: alice.id, added: vec![dave.id], removed: vec![] }
        );
    }
    dave.with(|_, c| join(c, won.welcome.as_ref().unwrap()).unwrap());
    // Bob rebuilds on epoch 2 and wins this time.
    let rebuilt = bob.with(|d, c| d.add(c, GROUP, std::slice::from_ref(&erin_kp)).unwrap());
    assert_eq!(rebuilt.epoch, 2);
    bob.with(|d, c| d.confirm(c, GROUP).unwrap());
    for p in [&alice, &carol, &dave] {
        p.with(|_, c| process(c, GROUP, &rebuilt.commit).unwrap());
    }
    erin.with(|_, c| join(c, rebuilt.welcome.as_ref().unwrap()).unwrap());
    let auth = alice.with(|_, c| authenticator(c, GROUP).unwrap());
    for p in [&bob, &carol, &dave, &erin] {
        assert_eq!(p.with(|_, c| authenticator(c, GROUP).unwrap()), auth);
    }
    let sealed = erin.with(|d, c| d.encrypt(c, GROUP, b"hi all").unwrap());
    for p in [&alice, &bob, &carol, &dave] {
        assert!(matches!(
            p.with(|_, c| process(c, GROUP, &sealed).unwrap()),
            Processed::Application { .. }
        ));
    }
}

#[test]
fn a_removed_member_cannot_read_what_follows() {
    let (alice, bob, carol) = three();
    let removal = alice.with(|d, c| d.remove(c, GROUP, |leaf| leaf.user == 3).unwrap());
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    assert_eq!(
        bob.with(|_, c| process(c, GROUP, &removal.commit).unwrap()),
        Processed::Commit { by: alice.id, added: vec![], removed: vec![carol.id] }
    );
    // Carol sees her own removal; afterwards her group is inactive.
    carol.with(|_, c| process(c, GROUP, &removal.commit).unwrap());
    assert_eq!(carol.with(|_, c| epoch(c, GROUP).unwrap()), None);
    let sealed = alice.with(|d, c| d.encrypt(c, GROUP, b"after carol").unwrap());
    assert!(matches!(
        bob.with(|_, c| process(c, GROUP, &sealed).unwrap()),
        Processed::Application { .. }
    ));
    assert!(carol.with(|_, c| process(c, GROUP, &sealed)).is_err());
}

#[test]
fn a_lost_reply_is_recovered_by_meeting_my_own_commit_in_the_log() {
    let (alice, bob, _carol) = three();
    let commit = alice.with(|d, c| d.remove(c, GROUP, |leaf| leaf.user == 3).unwrap());
    // No confirmation reached Alice; she reads the log instead.
    assert_eq!(alice.with(|_, c| process(c, GROUP, &commit.commit).unwrap()), Processed::OwnCommit);
    bob.with(|_, c| process(c, GROUP, &commit.commit).unwrap());
    assert_eq!(alice.with(|_, c| epoch(c, GROUP).unwrap()), Some(2));
    assert_eq!(
        alice.with(|_, c| authenticator(c, GROUP).unwrap()),
        bob.with(|_, c| authenticator(c, GROUP).unwrap())
    );
}

#[test]
fn a_last_resort_key_package_adds_a_device_like_a_one_time_one() {
    let (alice, _bob, _carol) = three();
    let dave = Profile::new(4, 4);
    let kp = dave.with(|d, c| d.key_packages(c, 0, true).unwrap());
    let commit = alice.with(|d, c| d.add(c, GROUP, &kp).unwrap());
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    dave.with(|_, c| join(c, commit.welcome.as_ref().unwrap()).unwrap());
    assert_eq!(dave.with(|_, c| epoch(c, GROUP).unwrap()), Some(2));
}

#[test]
fn a_new_device_joins_by_external_commit_and_reads_what_follows() {
    let (alice, bob, carol) = three();
    // The GroupInfo the server keeps: from the last handshake (here a removal of nobody's
    // leaf would do; Alice's add of Dave gives one).
    let dave = Profile::new(4, 4);
    let add = alice.with(|d, c| d.add(c, GROUP, &[dave.key_package()]).unwrap());
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    for p in [&bob, &carol] {
        p.with(|_, c| process(c, GROUP, &add.commit).unwrap());
    }
    // Bob's second device was in no Welcome: it joins from the GroupInfo alone.
    let bob2 = Profile::new(2, 22);
    let join = bob2.with(|d, c| d.join_external(c, &add.group_info, &everyone()).unwrap());
    assert_eq!((join.group.as_slice(), join.epoch), (&GROUP[..], 2));
    bob2.with(|d, c| d.confirm(c, GROUP).unwrap());
    for p in [&alice, &bob, &carol] {
        let processed = p.with(|_, c| process(c, GROUP, &join.commit).unwrap());
        assert!(
            matches!(processed, Processed::Commit { by, .. } if by == bob2.id),
            "{processed:?}"
        );
    }
    let sealed = carol.with(|d, c| d.encrypt(c, GROUP, b"welcome, second device").unwrap());
    assert_eq!(
        bob2.with(|_, c| process(c, GROUP, &sealed).unwrap()),
        Processed::Application { sender: carol.id, plaintext: b"welcome, second device".to_vec() }
    );
    assert_eq!(
        alice.with(|_, c| authenticator(c, GROUP).unwrap()),
        bob2.with(|_, c| authenticator(c, GROUP).unwrap())
    );
}

#[test]
fn garbage_is_a_typed_error_and_leaves_the_group_working() {
    let (alice, bob, _carol) = three();
    for junk in [&b""[..], b"\x00\x01", &[0xff; 300]] {
        assert!(matches!(bob.with(|_, c| process(c, GROUP, junk)), Err(E2eeError::Malformed(_))));
        assert!(matches!(bob.with(|_, c| join(c, junk)), Err(E2eeError::Malformed(_))));
        assert!(matches!(
            alice.with(|d, c| d.add(c, GROUP, &[junk.to_vec()])),
            Err(E2eeError::Malformed(_))
        ));
    }
    // A real message, mangled in its ciphertext, is refused.
    let mut sealed = alice.with(|d, c| d.encrypt(c, GROUP, b"intact").unwrap());
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert!(bob.with(|_, c| process(c, GROUP, &sealed)).is_err());
    assert!(matches!(
        bob.with(|_, c| process(c, b"no such group!!!", &sealed)),
        Err(E2eeError::NoGroup)
    ));
    let sealed = alice.with(|d, c| d.encrypt(c, GROUP, b"still fine").unwrap());
    assert!(matches!(
        bob.with(|_, c| process(c, GROUP, &sealed).unwrap()),
        Processed::Application { .. }
    ));
}

#[test]
fn a_group_set_up_alone_starts_at_epoch_zero_and_a_refused_setup_is_forgotten() {
    let alice = Profile::new(1, 1);
    let setup = alice.with(|d, c| d.create_group(c, GROUP, &[]).unwrap());
    assert!(setup.commit.is_empty() && setup.welcome.is_none());
    assert_eq!(alice.with(|_, c| epoch(c, GROUP).unwrap()), Some(0));
    alice.with(|_, c| forget(c, GROUP).unwrap());
    assert_eq!(alice.with(|_, c| epoch(c, GROUP).unwrap()), None);
}

/// A device of user 4 whose credential carries Alice's certificate — made for another
/// signature key — as a server inventing a device would have to.
fn forged(alice: &Profile) -> (Profile, Device) {
    let mallory = Profile::new(4, 4);
    let conn = mallory.open();
    let own = Device::load(&conn).unwrap().unwrap();
    let stolen = alice.with(|d, _| d.credential.clone());
    let mut credential = stolen.clone();
    credential[..8].copy_from_slice(&4i64.to_be_bytes());
    credential[8..16].copy_from_slice(&4i64.to_be_bytes());
    assert_ne!(credential, stolen);
    (mallory, Device { id: LeafId { user: 4, device: 4 }, signer: own.signer, credential })
}

#[test]
fn a_leaf_its_identity_did_not_certify_is_refused_where_it_enters_a_group() {
    let (alice, bob, _carol) = three();
    let (mallory, device) = forged(&alice);
    let conn = mallory.open();
    let package = device.key_packages(&conn, 1, false).unwrap().remove(0);
    // Claimed from the directory: left out.
    assert!(matches!(check_key_package(&package), Err(E2eeError::Uncertified(_))));
    assert!(check_key_package(&bob.key_package()).is_ok(), "a certified one passes");
    // Added anyway by a member: the others do not merge the commit.
    let commit = alice.with(|d, c| d.add(c, GROUP, std::slice::from_ref(&package)).unwrap());
    let refused = bob.with(|_, c| process(c, GROUP, &commit.commit));
    assert!(matches!(refused, Err(E2eeError::Uncertified(_))), "{refused:?}");
    assert_eq!(bob.with(|_, c| epoch(c, GROUP).unwrap()), Some(1), "still at the old epoch");
    // Joining from that commit's Welcome, or by external commit from its GroupInfo, fails too.
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    let fresh = Profile::new(5, 5);
    let welcome_for_forger = commit.welcome.unwrap();
    assert!(matches!(
        mallory.with(|_, c| join(c, &welcome_for_forger)),
        Err(E2eeError::Uncertified(_))
    ));
    let external = fresh.with(|d, c| d.join_external(c, &commit.group_info, &everyone()));
    assert!(matches!(external, Err(E2eeError::Uncertified(_))), "{external:?}");
    assert_eq!(fresh.with(|_, c| epoch(c, GROUP).unwrap()), None, "nothing kept");
}

#[test]
fn every_leaf_carries_its_users_identity_and_a_new_profile_gets_a_new_one() {
    let (alice, bob, _carol) = three();
    let seen = bob.with(|_, c| identities(c, GROUP).unwrap());
    let alices = alice.with(|d, _| d.identity());
    assert!(seen.contains(&(alice.id, alices)), "{seen:?}");
    assert_eq!(seen.len(), 3);
    assert_ne!(Profile::new(1, 9).with(|d, _| d.identity()), alices, "a new identity");
}

#[test]
fn a_call_signal_opens_only_in_its_call_from_the_device_that_sealed_it() {
    use super::signal::open_signal;
    let (alice, bob, carol) = three();
    let earlier = alice.with(|d, c| d.encrypt(c, GROUP, b"sent before the call").unwrap());
    let sdp = b"v=0\r\no=- 4611731400430051336 2 IN IP4 192.0.2.7";
    let sealed = alice.with(|d, c| d.seal_signal(c, GROUP, 77, 1, sdp).unwrap());
    assert!(!sealed.windows(9).any(|w| w == b"192.0.2.7"), "the address is not readable");
    assert_eq!(bob.with(|_, c| open_signal(c, GROUP, 77, 1, alice.id, &sealed).unwrap()), sdp);
    // Opening a signal leaves the message ratchets alone: what came before still opens.
    assert!(matches!(
        bob.with(|_, c| process(c, GROUP, &earlier).unwrap()),
        Processed::Application { .. }
    ));
    // Another call, another kind, another sender than the one that signed, changed bytes.
    assert!(bob.with(|_, c| open_signal(c, GROUP, 78, 1, alice.id, &sealed)).is_err());
    assert!(bob.with(|_, c| open_signal(c, GROUP, 77, 2, alice.id, &sealed)).is_err());
    assert!(bob.with(|_, c| open_signal(c, GROUP, 77, 1, carol.id, &sealed)).is_err());
    for at in [5, 14, 30, sealed.len() - 1] {
        let mut changed = sealed.clone();
        changed[at] ^= 1;
        let opened = bob.with(|_, c| open_signal(c, GROUP, 77, 1, alice.id, &changed));
        assert!(opened.is_err(), "byte {at} changed");
    }
    for garbage in [&b""[..], b"TSS1", &sealed[..40]] {
        assert!(bob.with(|_, c| open_signal(c, GROUP, 77, 1, alice.id, garbage)).is_err());
    }
    // Someone not in the group cannot open it; after Carol is removed she cannot open what
    // is sealed at the new epoch.
    let outsider = Profile::new(9, 9);
    assert!(outsider.with(|_, c| open_signal(c, GROUP, 77, 1, alice.id, &sealed)).is_err());
    let removal = alice.with(|d, c| d.remove(c, GROUP, |leaf| leaf.user == 3).unwrap());
    alice.with(|d, c| d.confirm(c, GROUP).unwrap());
    bob.with(|_, c| process(c, GROUP, &removal.commit).unwrap());
    let after = alice.with(|d, c| d.seal_signal(c, GROUP, 79, 3, b"candidate").unwrap());
    assert_eq!(
        bob.with(|_, c| open_signal(c, GROUP, 79, 3, alice.id, &after).unwrap()),
        b"candidate"
    );
    assert!(carol.with(|_, c| open_signal(c, GROUP, 79, 3, alice.id, &after)).is_err());
}

#[test]
fn a_device_of_someone_not_in_the_room_is_refused_where_it_enters_a_group() {
    let (alice, bob, _carol) = three();
    let dave = Profile::new(4, 4);
    // The room's log has Alice, Bob and Carol; Dave never joined it.
    let room: std::collections::BTreeSet<i64> = [1, 2, 3].into();
    let roster = Roster { now: room.clone(), ever: room.clone() };

    // Alice (or a server that has her keys' help) commits adding Dave's device: Bob refuses
    // the commit, typed, and stays on his epoch.
    let add = alice.with(|d, c| d.add(c, GROUP, &[dave.key_package()]).unwrap());
    let refused = bob.with(|_, c| super::process(c, GROUP, &add.commit, &roster));
    assert!(matches!(refused, Err(E2eeError::NotAMember(LeafId { user: 4, device: 4 }))));
    assert_eq!(bob.with(|_, c| epoch(c, GROUP).unwrap()), Some(1));
    // Once the log has Dave as a member, the same commit is taken.
    let with_dave = Roster { now: [1, 2, 3, 4].into(), ever: [1, 2, 3, 4].into() };
    assert!(bob.with(|_, c| super::process(c, GROUP, &add.commit, &with_dave)).is_ok());

    // Dave's device cannot join from that Welcome where the log does not have him (nothing of
    // it kept), nor from the GroupInfo where the tree holds someone who never was a member.
    let welcome = add.welcome.unwrap();
    let refused = dave.with(|_, c| super::join(c, &welcome, &roster));
    assert!(matches!(refused, Err(E2eeError::NotAMember(_))), "{refused:?}");
    assert_eq!(dave.with(|_, c| epoch(c, GROUP).unwrap()), None);
    let erin = Profile::new(5, 5);
    let five = Roster { now: [1, 2, 3, 5].into(), ever: [1, 2, 3, 5].into() };
    let refused = erin.with(|d, c| d.join_external(c, &add.group_info, &five));
    assert!(matches!(refused, Err(E2eeError::NotAMember(LeafId { user: 4, .. }))));
    assert_eq!(erin.with(|_, c| epoch(c, GROUP).unwrap()), None);
    // Someone who was a member and left may still have a leaf (the next sender removes it).
    let left = Roster { now: [1, 2, 3, 5].into(), ever: [1, 2, 3, 4, 5].into() };
    assert!(erin.with(|d, c| d.join_external(c, &add.group_info, &left)).is_ok());
}

#[test]
fn a_handshake_where_a_message_belongs_is_refused_and_changes_nothing() {
    let (alice, bob, _carol) = three();
    let update = alice.with(|d, c| d.add(c, GROUP, &[Profile::new(4, 4).key_package()]).unwrap());
    let refused = bob.with(|_, c| Loaded::default().open(c, GROUP, &update.commit));
    assert!(matches!(refused, Err(E2eeError::Misplaced(_))), "{refused:?}");
    assert_eq!(bob.with(|_, c| epoch(c, GROUP).unwrap()), Some(1));
}

#[test]
fn a_page_checked_beside_fails_on_one_bad_signature_and_checked_in_line_only_that_message_does() {
    let (alice, bob, _carol) = three();
    let seal = |text: &[u8]| bob.with(|d, c| d.encrypt(c, GROUP, text).unwrap());
    let first = seal(b"one");
    // Bob's ratchet, another key's signature.
    let forged = bob.with(|_, c| {
        let provider = Provider::new(c);
        let mut mls = load(&provider, GROUP).unwrap();
        let stranger = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).unwrap();
        mls.create_message(&provider, &stranger, b"forged").unwrap().to_bytes().unwrap()
    });
    let last = seal(b"three");
    let page = [first, forged, last];
    let text = |p: Result<Processed, E2eeError>| match p {
        Ok(Processed::Application { plaintext, .. }) => Ok(plaintext),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };

    let conn = alice.open();
    conn.execute_batch("BEGIN").unwrap();
    let mut loaded = Loaded::checking_beside();
    for message in &page {
        // Decrypted, signature not checked yet.
        text(loaded.open(&conn, GROUP, message)).unwrap();
    }
    assert!(matches!(loaded.finish(), Err(E2eeError::BadSignature)));
    conn.execute_batch("ROLLBACK").unwrap();

    // Rolled back, the page opens again, every signature checked in line.
    let mut loaded = Loaded::default();
    let opened: Vec<_> = page.iter().map(|m| text(loaded.open(&conn, GROUP, m))).collect();
    assert_eq!(opened[0].as_ref().unwrap(), b"one");
    assert!(matches!(opened[1], Err(E2eeError::BadSignature)), "{:?}", opened[1]);
    assert_eq!(opened[2].as_ref().unwrap(), b"three");
    loaded.finish().unwrap();

    // A good page checked beside is good.
    let more = [seal(b"four"), seal(b"five")];
    let mut loaded = Loaded::checking_beside();
    for message in &more {
        text(loaded.open(&conn, GROUP, message)).unwrap();
    }
    loaded.finish().unwrap();
}
