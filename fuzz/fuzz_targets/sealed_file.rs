//! Sealed attachments (core's e2ee::file) come from the server's media store, which may hand
//! back anything, and their key, length and digest from a message, which a member gone bad
//! may have written anyhow. Opening must never panic, whatever the length claims, and must
//! give bytes only when they are exactly the sealed file (then all of it, nothing else).
//!
//! Byte 0 picks the mode (bit 0) and the digest (bit 1):
//! - raw: key (32) ‖ claimed length (8, big-endian) ‖ digest (32, or with bit 1 the SHA-256 of
//!   the download) ‖ the download. What opens must reseal to the same bytes.
//! - sealed here: a plaintext (the rest of the input repeated byte 1 mod 64 times, to reach
//!   several 64 KiB chunks) is sealed under a fixed key by `FileCipher::seal_range`, then one
//!   edit is made (byte 4: a flipped byte, a cut, an inserted byte, another claimed length,
//!   another key; bytes 2–3 the place, scaled to the file, byte 5 the value) and the result is
//!   opened with the digest of the original (or with bit 1, of the edited bytes: a member who
//!   made the damaged file). It must open if and only if nothing was changed.
//!
//! Both go through `FileKey::from_bytes`, `FileCipher::new` and `FileCipher::open_all`, as
//! media.rs opens a download.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tidings_core::e2ee::file::{padded_len, sealed_len, FileCipher, FileKey, KEY_BYTES};

/// The key files are sealed with here (and raw seeds are sealed with).
const KEY: [u8; KEY_BYTES] = [7; KEY_BYTES];

fuzz_target!(init: write_seeds(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        raw(mode & 2 != 0, rest);
    } else {
        sealed_here(mode & 2 != 0, rest);
    }
});

fn open(key: &FileKey, len: u64, digest: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    FileCipher::new(key, len).open_all(digest, &mut Cursor::new(sealed), &mut out).ok()?;
    Some(out)
}

fn seal(key: &FileKey, plain: &[u8]) -> Vec<u8> {
    FileCipher::new(key, plain.len() as u64)
        .seal_range(&mut Cursor::new(plain), 0..u64::MAX)
        .expect("sealing from memory")
}

fn raw(digest_of_download: bool, data: &[u8]) {
    let Some((key, data)) = data.split_first_chunk::<KEY_BYTES>() else { return };
    let Some((len, data)) = data.split_first_chunk::<8>() else { return };
    let len = u64::from_be_bytes(*len);
    let (digest, sealed) = if digest_of_download {
        (Sha256::digest(data).to_vec(), data)
    } else {
        let Some((digest, sealed)) = data.split_first_chunk::<32>() else { return };
        (digest.to_vec(), sealed)
    };
    let key = FileKey::from_bytes(key).expect("32 bytes are a key");
    // A claimed length is anyone's: the sizes derived from it must not overflow.
    assert!(padded_len(len) >= len && sealed_len(len) >= padded_len(len));
    if let Some(plain) = open(&key, len, &digest, sealed) {
        assert_eq!(plain.len() as u64, len, "opened to another length than claimed");
        assert_eq!(seal(&key, &plain), sealed, "what opened does not reseal to the download");
    }
}

fn sealed_here(digest_of_edited: bool, data: &[u8]) {
    let [reps, at_hi, at_lo, edit, value, payload @ ..] = data else { return };
    let plain = payload.repeat(usize::from(*reps % 64));
    let key = FileKey::from_bytes(&KEY).expect("a key");
    let good = seal(&key, &plain);
    let len = plain.len() as u64;
    assert_eq!(good.len() as u64, sealed_len(len));
    let at = (usize::from(u16::from_be_bytes([*at_hi, *at_lo])) * (good.len() + 1)) >> 16;
    let (mut bytes, mut claimed, mut open_key) = (good.clone(), len, key.clone());
    match edit % 6 {
        0 => {}
        1 => {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= value | 1;
            }
        }
        2 => bytes.truncate(at),
        3 => bytes.insert(at, *value),
        4 => {
            claimed = match value {
                0 => u64::MAX,
                1 => u64::MAX - len,
                v => len.wrapping_add_signed(i64::from(*v as i8)),
            }
        }
        _ => open_key = FileKey::from_bytes(&[*value; KEY_BYTES]).expect("a key"),
    }
    let digest = Sha256::digest(if digest_of_edited { &bytes } else { &good });
    let opened = open(&open_key, claimed, &digest, &bytes);
    let unchanged = bytes == good && claimed == len && open_key == key;
    match opened {
        Some(out) => {
            assert!(unchanged, "a changed file opened (edit {edit})");
            assert!(out == plain, "opened to other bytes than were sealed");
        }
        None => assert!(!unchanged, "the file as sealed did not open (length {len})"),
    }
}

/// With `TIDINGS_FUZZ_SEEDS` naming a directory, writes seeds into its `sealed_file/`:
/// valid raw files and inputs for the files sealed here.
fn write_seeds() {
    let Some(root) = std::env::var_os("TIDINGS_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&root).join("sealed_file");
    std::fs::create_dir_all(&dir).expect("seed directory");
    let key = FileKey::from_bytes(&KEY).expect("a key");
    for len in [0usize, 1, 2, 100, 1000, 3000] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = seal(&key, &plain);
        let mut seed = vec![0];
        seed.extend_from_slice(&KEY);
        seed.extend_from_slice(&(len as u64).to_be_bytes());
        seed.extend_from_slice(&Sha256::digest(&sealed));
        seed.extend_from_slice(&sealed);
        std::fs::write(dir.join(format!("raw-{len}")), seed).expect("seed");
    }
    for (name, head) in [
        ("here-one-chunk", [1u8, 1, 0, 0, 0, 0]),
        ("here-three-chunks", [1, 40, 0, 0, 0, 0]),
        ("here-flip", [1, 40, 0x80, 0, 1, 1]),
        ("here-cut", [3, 40, 0x40, 0, 2, 0]),
        ("here-longer-claim", [1, 20, 0, 0, 4, 1]),
    ] {
        let mut seed = head.to_vec();
        seed.extend((0..4000u32).map(|i| (i % 253) as u8));
        std::fs::write(dir.join(name), seed).expect("seed");
    }
}
