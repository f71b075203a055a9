//! Attachments sealed for the server: every photo, file and video is encrypted with a key of
//! its own before it is uploaded, and the key travels inside the message, which MLS encrypts.
//! The server stores and serves bytes it cannot read; resumable uploads and ranged downloads
//! work on those bytes as before.
//!
//! The format is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over
//! ChaCha20-Poly1305, RustCrypto's `aead::stream::StreamBE32`:
//! - the plaintext is padded with zeros to [`padded_len`] (Padmé: at most 12 % more, and a
//!   size reveals O(log log n) bits), then cut into chunks of [`CHUNK_BYTES`]; each chunk is
//!   sealed on its own under a nonce made of its index and a flag set only on the last one,
//!   with the plaintext length as associated data. Truncating, reordering, extending or
//!   splicing chunks of another file fails to open.
//! - Any byte range of the sealed file is a function of the key and the plaintext alone, so an
//!   upload resumed at any offset encrypts as it reads ([`FileCipher::seal_range`]) and every
//!   resend is the same bytes. The profile keeps attachments sealed at rest, sent and
//!   received alike, and opens them when they are shown (docs/storage.md): the file to
//!   upload is already these bytes.
//! - The key is 32 random bytes made for one file, so the nonce prefix can be constant.
//! - The SHA-256 of the sealed bytes travels beside the key: a download is checked whole
//!   before anything it holds is shown ([`FileCipher::open_all`]).
//!
//! Sans-IO like the rest of this module: readers and writers in, bytes out.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;

use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Plaintext bytes per sealed chunk.
pub const CHUNK_BYTES: u64 = 64 * 1024;

/// What sealing adds to each chunk (the Poly1305 tag).
pub const TAG_BYTES: u64 = 16;

/// Bytes of an attachment key and of the digest beside it.
pub const KEY_BYTES: usize = 32;

/// One attachment's key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey([u8; KEY_BYTES]);

impl FileKey {
    /// A fresh random key (for one file only).
    pub fn random() -> Self {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// The key in `bytes`, if they are one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FileError> {
        Ok(Self(bytes.try_into().map_err(|_| FileError::Damaged)?))
    }

    /// Its bytes, to put in a message.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(…)")
    }
}

/// Why a sealed attachment did not open.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The bytes are not what the message's key and digest say: damaged, cut, or replaced on
    /// the server (or the message's key is not a key).
    #[error("the attachment does not match its message (damaged or replaced on the server)")]
    Damaged,
    /// Reading or writing a file failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<FileError> for crate::Error {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Damaged => crate::Error::AttachmentDamaged,
            FileError::Io(e) => crate::Error::Io(e.to_string()),
        }
    }
}

/// The length `len` plaintext bytes are padded to before sealing (Padmé, Nikitin et al.
/// 2019): the low bits of the length are rounded up so that at most O(log log len) bits of
/// it remain, costing at most 12 % (less for large files).
pub fn padded_len(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = u64::from(len.ilog2());
    let s = u64::from(e.ilog2()) + 1;
    let mask = (1u64 << (e - s)) - 1;
    // A length from a message is anyone's: near u64::MAX it saturates instead of wrapping.
    len.checked_add(mask).map_or(u64::MAX, |l| l & !mask)
}

/// The size of the sealed file of `len` plaintext bytes: what is uploaded and downloaded
/// (saturating at `u64::MAX` for lengths no file has).
pub fn sealed_len(len: u64) -> u64 {
    let padded = padded_len(len);
    padded.saturating_add(TAG_BYTES.saturating_mul(chunk_count(padded)))
}

/// Chunks of a padded plaintext: at least one (an empty file is one empty, tagged chunk).
fn chunk_count(padded: u64) -> u64 {
    padded.div_ceil(CHUNK_BYTES).max(1)
}

/// Seals and opens the chunks of one file of a known plaintext length.
pub struct FileCipher {
    stream: StreamBE32<ChaCha20Poly1305>,
    len: u64,
    padded: u64,
}

impl std::fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCipher").field("len", &self.len).finish_non_exhaustive()
    }
}

impl FileCipher {
    /// The cipher of a file of `len` plaintext bytes under `key`.
    pub fn new(key: &FileKey, len: u64) -> Self {
        let aead = ChaCha20Poly1305::new(key.as_bytes().into());
        // The key serves one file: a constant nonce prefix never repeats a nonce.
        let stream = StreamBE32::from_aead(aead, &Default::default());
        Self { stream, len, padded: padded_len(len) }
    }

    /// Bytes of the sealed file.
    pub fn sealed_len(&self) -> u64 {
        sealed_len(self.len)
    }

    fn chunks(&self) -> u64 {
        chunk_count(self.padded)
    }

    /// The file's own bytes in chunk `i` (the padding excluded).
    fn plain_range(&self, i: u64) -> Range<u64> {
        let start = i.saturating_mul(CHUNK_BYTES).min(self.len);
        start..(i + 1).saturating_mul(CHUNK_BYTES).min(self.len)
    }

    fn padded_chunk_len(&self, i: u64) -> u64 {
        (i + 1).saturating_mul(CHUNK_BYTES).min(self.padded)
            - i.saturating_mul(CHUNK_BYTES).min(self.padded)
    }

    fn position(&self, i: u64) -> Result<(u32, bool), FileError> {
        let position = u32::try_from(i).map_err(|_| FileError::Damaged)?;
        Ok((position, i + 1 == self.chunks()))
    }

    /// Seals chunk `i` from the file's own bytes in it, padding them with zeros.
    fn seal(&self, i: u64, plain: &[u8]) -> Result<Vec<u8>, FileError> {
        let mut buffer = plain.to_vec();
        buffer.resize(self.padded_chunk_len(i) as usize, 0);
        let (position, last) = self.position(i)?;
        self.stream
            .encrypt_in_place(position, last, &self.len.to_be_bytes(), &mut buffer)
            .map_err(|_| FileError::Damaged)?;
        Ok(buffer)
    }

    /// Opens sealed chunk `i`, giving the file's own bytes in it (the padding, which must
    /// be zeros, dropped).
    fn open(&self, i: u64, sealed: &[u8]) -> Result<Vec<u8>, FileError> {
        if sealed.len() as u64 != self.padded_chunk_len(i) + TAG_BYTES {
            return Err(FileError::Damaged);
        }
        let mut buffer = sealed.to_vec();
        let (position, last) = self.position(i)?;
        self.stream
            .decrypt_in_place(position, last, &self.len.to_be_bytes(), &mut buffer)
            .map_err(|_| FileError::Damaged)?;
        let own = self.plain_range(i);
        let own = (own.end - own.start) as usize;
        if buffer[own..].iter().any(|b| *b != 0) {
            return Err(FileError::Damaged);
        }
        buffer.truncate(own);
        Ok(buffer)
    }

    /// The bytes `range` of the sealed file, sealing the chunks they fall in from `plain`
    /// (the whole plaintext file, read at the chunks' offsets).
    pub fn seal_range(
        &self,
        plain: &mut (impl Read + Seek),
        range: Range<u64>,
    ) -> Result<Vec<u8>, FileError> {
        let end = range.end.min(self.sealed_len());
        if range.start >= end {
            return Ok(Vec::new());
        }
        let step = CHUNK_BYTES + TAG_BYTES;
        let (first, last) = (range.start / step, (end - 1) / step);
        let mut out = Vec::with_capacity(((last - first + 1) * step) as usize);
        // The chunks' plaintext is contiguous: one seek, then read on.
        plain.seek(SeekFrom::Start(self.plain_range(first).start))?;
        self.seal_chunks(plain, first..last + 1, |sealed| out.extend_from_slice(sealed))?;
        let skip = (range.start - first * step) as usize;
        out.drain(..skip);
        out.truncate((end - range.start) as usize);
        Ok(out)
    }

    /// Seals the whole file read from `plain` into `out`; returns the SHA-256 of what was
    /// written (the same bytes [`Self::seal_range`] gives, and the digest [`Self::digest`]
    /// gives).
    pub fn seal_all(
        &self,
        plain: &mut impl Read,
        out: &mut impl Write,
    ) -> Result<[u8; KEY_BYTES], FileError> {
        let mut hash = Sha256::new();
        let mut written = Ok(());
        self.seal_chunks(plain, 0..self.chunks(), |sealed| {
            hash.update(sealed);
            if written.is_ok() {
                written = out.write_all(sealed);
            }
        })?;
        written?;
        Ok(hash.finalize().into())
    }

    /// The SHA-256 of the whole sealed file, sealing it from `plain` as it is read.
    pub fn digest(&self, plain: &mut impl Read) -> Result<[u8; KEY_BYTES], FileError> {
        let mut hash = Sha256::new();
        self.seal_chunks(plain, 0..self.chunks(), |sealed| hash.update(sealed))?;
        Ok(hash.finalize().into())
    }

    /// Seals `chunks` in order, reading their plaintext from `plain` (at the first one's
    /// start), and hands each to `each`.
    fn seal_chunks(
        &self,
        plain: &mut impl Read,
        chunks: Range<u64>,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), FileError> {
        let mut own = Vec::with_capacity(CHUNK_BYTES as usize);
        for i in chunks {
            let bytes = self.plain_range(i);
            own.resize((bytes.end - bytes.start) as usize, 0);
            plain.read_exact(&mut own)?;
            each(&self.seal(i, &own)?);
        }
        Ok(())
    }

    /// Opens the whole sealed file read from `sealed` into `out`. The download must be
    /// exactly [`Self::sealed_len`] bytes with SHA-256 `digest` and every chunk must open;
    /// otherwise [`FileError::Damaged`], and what was written to `out` must be thrown away.
    pub fn open_all(
        &self,
        digest: &[u8],
        sealed: &mut impl Read,
        out: &mut impl Write,
    ) -> Result<(), FileError> {
        let mut hash = Sha256::new();
        let mut chunk = Vec::with_capacity((CHUNK_BYTES + TAG_BYTES) as usize);
        for i in 0..self.chunks() {
            chunk.resize((self.padded_chunk_len(i) + TAG_BYTES) as usize, 0);
            sealed.read_exact(&mut chunk).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => FileError::Damaged,
                _ => FileError::Io(e),
            })?;
            hash.update(&chunk);
            out.write_all(&self.open(i, &chunk)?)?;
        }
        if sealed.read(&mut [0u8; 1])? != 0 || hash.finalize().as_slice() != digest {
            return Err(FileError::Damaged);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sealed(key: &FileKey, data: &[u8]) -> Vec<u8> {
        let cipher = FileCipher::new(key, data.len() as u64);
        cipher.seal_range(&mut Cursor::new(data), 0..u64::MAX).unwrap()
    }

    fn opened(key: &FileKey, len: u64, digest: &[u8], bytes: &[u8]) -> Result<Vec<u8>, FileError> {
        let mut out = Vec::new();
        FileCipher::new(key, len).open_all(digest, &mut Cursor::new(bytes), &mut out)?;
        Ok(out)
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn sealing_all_at_once_writes_the_bytes_and_digest_sealing_by_range_gives() {
        let key = FileKey::random();
        for len in [0, 1, CHUNK_BYTES as usize + 3, 200_001] {
            let data = plain(len);
            let cipher = FileCipher::new(&key, len as u64);
            let mut out = Vec::new();
            let digest = cipher.seal_all(&mut Cursor::new(&data), &mut out).unwrap();
            assert_eq!(out, sealed(&key, &data), "length {len}");
            assert_eq!(digest, sha(&out));
            assert_eq!(opened(&key, len as u64, &digest, &out).unwrap(), data);
        }
    }

    #[test]
    fn every_size_round_trips_and_the_digest_is_of_the_sealed_bytes() {
        let key = FileKey::random();
        let c = CHUNK_BYTES as usize;
        for len in [0, 1, 2, 100, c - 1, c, c + 1, 3 * c + 7, 1_000_003] {
            let data = plain(len);
            let bytes = sealed(&key, &data);
            assert_eq!(bytes.len() as u64, sealed_len(len as u64), "length {len}");
            let cipher = FileCipher::new(&key, len as u64);
            assert_eq!(cipher.digest(&mut Cursor::new(&data)).unwrap(), sha(&bytes));
            assert_eq!(opened(&key, len as u64, &sha(&bytes), &bytes).unwrap(), data);
            if len > 64 {
                let window = &data[len / 2..len / 2 + 32];
                assert!(!bytes.windows(32).any(|w| w == window), "plaintext visible at {len}");
            }
        }
    }

    #[test]
    fn any_range_is_the_same_bytes_as_the_whole() {
        let key = FileKey::random();
        let data = plain(5 * CHUNK_BYTES as usize + 123);
        let whole = sealed(&key, &data);
        let cipher = FileCipher::new(&key, data.len() as u64);
        let step = (CHUNK_BYTES + TAG_BYTES) as usize;
        for (start, end) in
            [(0, 1), (1, step), (step - 1, step + 1), (step, 3 * step + 5), (1000, whole.len())]
        {
            let range = cipher.seal_range(&mut Cursor::new(&data), start as u64..end as u64);
            assert_eq!(range.unwrap(), &whole[start..end], "{start}..{end}");
        }
        let past = cipher.seal_range(&mut Cursor::new(&data), whole.len() as u64..u64::MAX);
        assert!(past.unwrap().is_empty());
    }

    #[test]
    fn damage_of_any_kind_is_refused() {
        let key = FileKey::random();
        let data = plain(3 * CHUNK_BYTES as usize + 10);
        let len = data.len() as u64;
        let good = sealed(&key, &data);
        let step = (CHUNK_BYTES + TAG_BYTES) as usize;
        let damaged = |bytes: &[u8]| opened(&key, len, &sha(bytes), bytes);
        let mut flipped = good.clone();
        flipped[step + 5] ^= 1;
        assert!(matches!(damaged(&flipped), Err(FileError::Damaged)), "a flipped bit");
        assert!(matches!(damaged(&good[..good.len() - 1]), Err(FileError::Damaged)), "cut");
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(damaged(&longer), Err(FileError::Damaged)), "extended");
        let mut swapped = good[step..2 * step].to_vec();
        swapped.extend_from_slice(&good[..step]);
        swapped.extend_from_slice(&good[2 * step..]);
        assert!(matches!(damaged(&swapped), Err(FileError::Damaged)), "reordered");
        // The last full chunk dropped: the new last chunk is not flagged as last.
        let dropped = &good[..3 * step];
        let shorter = opened(&key, 3 * CHUNK_BYTES, &sha(dropped), dropped);
        assert!(matches!(shorter, Err(FileError::Damaged)), "truncated at a chunk boundary");
        let other = sealed(&FileKey::random(), &data);
        assert!(matches!(damaged(&other), Err(FileError::Damaged)), "another key");
        assert!(matches!(opened(&key, len, &[0; 32], &good), Err(FileError::Damaged)), "digest");
        assert!(matches!(opened(&key, len - 1, &sha(&good), &good), Err(FileError::Damaged)));
        assert!(FileKey::from_bytes(&[1; 31]).is_err());
    }

    proptest::proptest! {
        /// Whatever the server sends for an attachment, opening it never panics and never
        /// gives bytes unless they are the sealed file itself.
        #[test]
        fn any_download_opens_only_if_it_is_the_sealed_file(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..200_000),
            flip in proptest::option::of((0usize..300_000, 1u8..=255)),
            cut in proptest::option::of(0usize..300_000),
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let key = FileKey::from_bytes(&[7; KEY_BYTES]).unwrap();
            let good = sealed(&key, &data);
            let digest = sha(&good);
            let mut bad = good.clone();
            if let Some((at, bit)) = flip {
                let at = at % bad.len();
                bad[at] ^= bit;
            }
            if let Some(cut) = cut {
                bad.truncate(cut % bad.len());
            }
            let len = data.len() as u64;
            proptest::prop_assert_eq!(opened(&key, len, &digest, &good).unwrap(), data);
            if bad != good {
                proptest::prop_assert!(opened(&key, len, &digest, &bad).is_err());
                // Even with a digest that matches (a member who made the damaged file).
                proptest::prop_assert!(opened(&key, len, &sha(&bad), &bad).is_err());
            }
            proptest::prop_assert!(opened(&key, len, &sha(&junk), &junk).is_err() || junk == good);
        }
    }

    #[test]
    fn padding_hides_small_differences_at_a_bounded_cost() {
        assert_eq!((padded_len(0), padded_len(1), padded_len(2), padded_len(9)), (0, 1, 2, 10));
        let mut previous = 0;
        for len in (0..2_000_000u64).step_by(997).chain([100 << 20, u32::MAX as u64]) {
            let padded = padded_len(len);
            assert!(padded >= len && padded >= previous, "{len}");
            assert!(padded as f64 <= len as f64 * 1.12 + 1.0, "{len} → {padded}");
            previous = padded;
        }
        // Photos of nearby sizes look the same on the server.
        assert_eq!(padded_len(3_000_000), padded_len(3_010_000));
    }

    #[test]
    fn a_size_no_file_has_neither_overflows_nor_opens() {
        // A message may claim any size: nothing wraps or panics, and nothing opens.
        for len in [u64::MAX, u64::MAX - 1, 1 << 63, (1 << 62) + 1] {
            assert!(padded_len(len) >= len && sealed_len(len) >= padded_len(len), "{len}");
            let key = FileKey::random();
            let bytes = sealed(&key, b"a small file");
            assert!(matches!(opened(&key, len, &sha(&bytes), &bytes), Err(FileError::Damaged)));
        }
    }
}
