//! The profile at rest (docs/storage.md): real profiles, written through the public API
//! against the real server, then read as a thief would — the files' raw bytes, and the
//! database file copied alone.

use std::{io::Write, path::Path, time::Duration};

use tidings_core::{
    endpoint::Endpoint, profile_key::KeyError, store::OpenError, sync, Client, Error,
};
use tidings_proto::RoomKind;
use tidings_testkit::TestServer;

const PASSWORD: &str = "correct horse battery";

/// What the profiles say, to look for in their files.
const SECRET: &str = "meet me at the old lighthouse at dawn";

/// The key goes to the fallback file in these tests, wherever they run (a developer's
/// desktop keychain is left alone; cli/tests/keychain.rs tests the keychain).
fn no_keychain() {
    std::env::set_var("TIDINGS_KEYCHAIN", "off");
}

/// Ann and Bob, signed up, in a room where Ann has said [`SECRET`] and Bob has it.
/// `open` opens a profile (encrypted or not).
async fn conversation(
    server: &TestServer,
    dirs: [&Path; 2],
    open: fn(&Path) -> Result<Client, Error>,
) -> anyhow::Result<(Client, Client)> {
    let url = Endpoint::parse(&server.http_url())?;
    let (ann, bob) = (open(dirs[0])?, open(dirs[1])?);
    ann.sessions().sign_up(&url, "ann", PASSWORD).await?;
    bob.sessions().sign_up(&url, "bob", PASSWORD).await?;
    let members = vec![ann.contacts().lookup("bob").await?];
    let room = ann.rooms().create(RoomKind::Group, Some("plans"), members).await?;
    for i in 0..20 {
        ann.room(room).send_queue().send_text(&format!("{SECRET} ({i})")).await?;
    }
    sync::sync_until_idle(&ann).await?;
    sync::sync_until_idle(&bob).await?;
    assert_eq!(texts(&bob).await?.len(), 20, "Bob has the messages");
    Ok((ann, bob))
}

/// The texts of the messages in the profile's first room, oldest first.
async fn texts(client: &Client) -> anyhow::Result<Vec<String>> {
    let room = client.rooms().list().await?.first().map(|r| r.room).expect("a room");
    let page = client.room(room).timeline().page(None, 100).await?;
    Ok(page.into_iter().map(|m| m.text).filter(|t| t.starts_with(SECRET)).collect())
}

/// Closes a profile and waits until nothing has its files open (the background checkpoint's
/// connection closes within a second of the last handle).
async fn close(client: Client) {
    drop(client);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

/// Every file of a profile but its key file, as (name, bytes).
fn profile_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in walk(dir) {
        let name = entry.strip_prefix(dir).unwrap_or(&entry).display().to_string();
        if name != tidings_core::profile_key::KEY_FILE {
            files.push((name, std::fs::read(&entry).expect("readable")));
        }
    }
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Pearson's chi-squared statistic of the byte histogram against the uniform distribution
/// (255 degrees of freedom: about 255 ± 23 for random bytes; thousands for SQLite pages).
fn chi_squared(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    let expected = bytes.len() as f64 / 256.0;
    counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
}

/// The size of `bytes` deflated at the best level.
fn deflated(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory").len()
}

#[tokio::test]
async fn a_stolen_profile_file_reveals_nothing() -> anyhow::Result<()> {
    no_keychain();
    let server = TestServer::start().await?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let (ann, bob) = conversation(&server, [dirs[0].path(), dirs[1].path()], Client::open).await?;
    let token = bob.account().await?.expect("signed in").token;
    assert!(bob.key_home().is_some(), "encrypted");
    close(ann).await;
    close(bob).await;

    for dir in &dirs {
        let files = profile_files(dir.path());
        let db = &files.iter().find(|(n, _)| n == "tidings.sqlite").expect("the database").1;
        assert!(db.len() > 100_000, "a real profile: {} bytes", db.len());
        assert_ne!(&db[..16], b"SQLite format 3\0", "no SQLite header");
        // Nothing it holds is in any file of the profile (the WAL, the cache, …).
        for (name, bytes) in &files {
            for needle in [SECRET.as_bytes(), b"lighthouse", b"plans", b"bob", token.as_bytes()] {
                assert!(
                    !contains(bytes, needle),
                    "{name} holds {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
        // And it looks random: a flat byte histogram, and it does not compress.
        let chi = chi_squared(db);
        assert!(chi < 400.0, "byte histogram χ² = {chi:.0} (random: ~255)");
        let packed = deflated(db);
        assert!(packed as f64 >= db.len() as f64 * 0.99, "{} bytes deflate to {packed}", db.len());
    }

    // The database file copied alone: refused, with a typed error, and nothing replaces it.
    let stolen = tempfile::tempdir()?;
    let db = stolen.path().join("tidings.sqlite");
    std::fs::copy(dirs[1].path().join("tidings.sqlite"), &db)?;
    let before = std::fs::read(&db)?;
    let err = Client::open(stolen.path()).expect_err("no key");
    assert!(matches!(err, Error::Open(OpenError::Key(KeyError::Missing))), "{err:?}");
    assert!(err.to_string().contains("its key is missing"), "{err}");
    // With another profile's key: the typed wrong-key error.
    std::fs::copy(
        dirs[0].path().join(tidings_core::profile_key::KEY_FILE),
        stolen.path().join(tidings_core::profile_key::KEY_FILE),
    )?;
    let err = Client::open(stolen.path()).expect_err("a wrong key");
    assert!(matches!(err, Error::Open(OpenError::WrongKey)), "{err:?}");
    // Plain SQLite sees no database at all.
    let plain = rusqlite::Connection::open(&db)?;
    let read = plain.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0));
    assert!(read.is_err(), "{read:?}");
    assert_eq!(std::fs::read(&db)?, before, "the file is left as it was");

    // With its own key the same copy opens, messages and all.
    std::fs::copy(
        dirs[1].path().join(tidings_core::profile_key::KEY_FILE),
        stolen.path().join(tidings_core::profile_key::KEY_FILE),
    )?;
    let bob = Client::open(stolen.path())?;
    assert_eq!(texts(&bob).await?.len(), 20);
    Ok(())
}

#[tokio::test]
async fn unencrypted_the_same_profile_shows_all_the_checks_look_for() -> anyhow::Result<()> {
    // The control: what the test above must not find is there when the profile is not
    // encrypted, so the checks can see it.
    let server = TestServer::start().await?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let (ann, bob) =
        conversation(&server, [dirs[0].path(), dirs[1].path()], Client::open_unencrypted).await?;
    close(ann).await;
    close(bob).await;
    let files = profile_files(dirs[1].path());
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(contains(&all, SECRET.as_bytes()));
    let db = &files.iter().find(|(n, _)| n == "tidings.sqlite").expect("the database").1;
    assert_eq!(&db[..16], b"SQLite format 3\0");
    assert!(chi_squared(db) > 10_000.0, "χ² = {:.0}", chi_squared(db));
    assert!(deflated(db) < db.len() / 2);
    Ok(())
}

#[tokio::test]
async fn a_profile_from_before_encryption_is_encrypted_and_keeps_everything() -> anyhow::Result<()>
{
    no_keychain();
    let server = TestServer::start().await?;
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    // Profiles as every build before encryption wrote them.
    let (ann, bob) =
        conversation(&server, [dirs[0].path(), dirs[1].path()], Client::open_unencrypted).await?;
    let before = texts(&bob).await?;
    let rooms_before = bob.rooms().list().await?.len();
    close(ann).await;
    close(bob).await;
    let db = dirs[1].path().join("tidings.sqlite");
    assert!(tidings_core::store::is_plaintext(&db)?);

    // The new build opens it: encrypted, everything kept, still signed in, still syncing.
    let bob = Client::open(dirs[1].path())?;
    assert!(!tidings_core::store::is_plaintext(&db)?, "encrypted in place");
    assert_eq!(texts(&bob).await?, before);
    assert_eq!(bob.rooms().list().await?.len(), rooms_before);
    assert_eq!(bob.account().await?.expect("signed in").username, "bob");
    let ann = Client::open(dirs[0].path())?;
    let room = ann.rooms().list().await?.first().map(|r| r.room).expect("a room");
    ann.room(room).send_queue().send_text(&format!("{SECRET} (after)")).await?;
    sync::sync_until_idle(&ann).await?;
    sync::sync_until_idle(&bob).await?;
    assert_eq!(texts(&bob).await?.len(), before.len() + 1, "the MLS group survived");
    close(ann).await;
    close(bob).await;

    let files = profile_files(dirs[1].path());
    for (name, bytes) in &files {
        assert!(!contains(bytes, SECRET.as_bytes()), "{name} holds a message");
        assert!(!name.ends_with(".encrypting"), "{name} left behind");
    }
    Ok(())
}

#[test]
fn processes_opening_a_new_profile_at_once_agree_on_one_key() {
    no_keychain();
    let dir = tempfile::tempdir().expect("a directory");
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let dir = dir.path().to_owned();
            std::thread::spawn(move || Client::open(&dir).map(drop))
        })
        .collect();
    for thread in opened {
        thread.join().expect("no panic").expect("every one opens it");
    }
    drop(Client::open(dir.path()).expect("and again"));
}
