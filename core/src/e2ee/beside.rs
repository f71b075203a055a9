//! Signatures checked beside decryption, for a page of messages opened in one transaction.
//!
//! Every `PrivateMessage` carries its sender's Ed25519 signature, and checking it costs about
//! as much as everything else opening the message does (docs/performance.md, "End-to-end
//! encryption"). Decryption must go in log order — each message moves its sender's ratchet —
//! but the signatures need not: while a catch-up page is opened, the page's signatures are
//! handed to a second thread, which checks them with `verify_strict` (what openmls' own
//! RustCrypto check does, with each sender's key decompressed once), while this thread
//! decrypts and stores the next messages; when the page is opened, this thread checks what
//! is left beside it.
//!
//! Nothing of the page is visible before every signature is good: the page is applied inside
//! a savepoint, and [`Beside::finish`] reports any bad signature before the transaction
//! commits, so the caller rolls the savepoint back and opens the page again with signatures
//! checked in line — the message with the bad one then fails on its own, as it always did
//! (crate::apply::page). Only application messages opened through
//! [`super::Loaded::checking_beside`] are checked this way: commits, proposals, Welcomes and
//! key packages are always checked in line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use ed25519_dalek::{Signature, VerifyingKey};
use openmls::prelude::tls_codec::SecretVLBytes;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig,
    HpkeKeyPair, KemOutput, SignatureScheme,
};

/// One signature to check.
struct Check {
    key: [u8; 32],
    data: Vec<u8>,
    signature: [u8; 64],
}

/// The signatures handed over, shared by the checking thread and — once the page is
/// opened — by the thread that opened it.
struct Queue {
    checks: Mutex<mpsc::Receiver<Check>>,
    all_good: AtomicBool,
}

/// The second thread, started by the first signature handed over.
struct Checker {
    checks: mpsc::Sender<Check>,
    queue: Arc<Queue>,
    thread: JoinHandle<()>,
}

/// Signatures being checked beside decryption. [`Beside::finish`] gives the verdict.
pub(super) struct Beside {
    checker: Mutex<Option<Checker>>,
    /// False from the first bad signature on, whichever `finish` found it: a verdict is
    /// never lost to a second call.
    all_good: AtomicBool,
}

impl Default for Beside {
    fn default() -> Self {
        Self { checker: Mutex::default(), all_good: AtomicBool::new(true) }
    }
}

impl Beside {
    /// Hands one Ed25519 signature to the checking thread; gives it back if no thread can
    /// be started (the caller then checks it in line).
    fn hand(&self, check: Check) -> Result<(), Check> {
        let mut checker = self.checker.lock().unwrap_or_else(|e| e.into_inner());
        if checker.is_none() {
            let (checks, receiver) = mpsc::channel();
            let queue =
                Arc::new(Queue { checks: Mutex::new(receiver), all_good: AtomicBool::new(true) });
            let started = std::thread::Builder::new().name("signatures".into()).spawn({
                let queue = queue.clone();
                move || check_all(&queue)
            });
            match started {
                Ok(thread) => *checker = Some(Checker { checks, queue, thread }),
                Err(_) => return Err(check),
            }
        }
        if let Some(checker) = checker.as_ref() {
            // Cannot fail: the checker's own queue keeps the receiving end alive.
            let _ = checker.checks.send(check);
        }
        Ok(())
    }

    /// Checks what is left of the signatures handed over, on this thread beside the checking
    /// one, and waits for it: true when every signature handed over so far was good (or none
    /// was). A checking thread that panicked counts as a bad signature: the caller checks
    /// the page again in line.
    pub(super) fn finish(&self) -> bool {
        let checker = self.checker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Checker { checks, queue, thread }) = checker {
            drop(checks);
            check_all(&queue);
            if !(thread.join().is_ok() && queue.all_good.load(Ordering::Acquire)) {
                self.all_good.store(false, Ordering::Release);
            }
        }
        self.all_good.load(Ordering::Acquire)
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        // Never leave the thread behind, whatever the caller did.
        self.finish();
    }
}

/// Checks signatures from `queue` until it is empty and nothing more can come, each
/// sender's key decompressed once.
fn check_all(queue: &Queue) {
    let mut keys: HashMap<[u8; 32], Option<VerifyingKey>> = HashMap::new();
    loop {
        // The lock is held while waiting for a check, not while checking one.
        let next = queue.checks.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(check) = next else { return };
        let key =
            keys.entry(check.key).or_insert_with(|| VerifyingKey::from_bytes(&check.key).ok());
        let good = key.as_ref().is_some_and(|key| {
            key.verify_strict(&check.data, &Signature::from_bytes(&check.signature)).is_ok()
        });
        if !good {
            queue.all_good.store(false, Ordering::Release);
        }
    }
}

/// openmls' cryptography: RustCrypto's, except that with signatures checked [`Beside`], an
/// Ed25519 check is handed over and reported good here — the page's verdict comes at
/// [`Beside::finish`].
pub(super) struct Crypto<'b> {
    pub(super) rust: RustCrypto,
    pub(super) beside: Option<&'b Beside>,
}

impl OpenMlsCrypto for Crypto<'_> {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        self.rust.supports(ciphersuite)
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        self.rust.supported_ciphersuites()
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        self.rust.hkdf_extract(hash_type, salt, ikm)
    }

    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        self.rust.hmac(hash_type, key, message)
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        self.rust.hkdf_expand(hash_type, prk, info, okm_len)
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.rust.hash(hash_type, data)
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.rust.aead_encrypt(alg, key, data, nonce, aad)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.rust.aead_decrypt(alg, key, ct_tag, nonce, aad)
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        self.rust.signature_key_gen(alg)
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if let (Some(beside), SignatureScheme::ED25519, Ok(key), Ok(signature)) =
            (self.beside, alg, <[u8; 32]>::try_from(pk), <[u8; 64]>::try_from(signature))
        {
            let check = Check { key, data: data.to_vec(), signature };
            let Err(check) = beside.hand(check) else { return Ok(()) };
            return self.rust.verify_signature(alg, &check.data, &check.key, &check.signature);
        }
        self.rust.verify_signature(alg, data, pk, signature)
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.rust.sign(alg, data, key)
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        self.rust.hpke_seal(config, pk_r, info, aad, ptxt)
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.rust.hpke_open(config, input, sk_r, info, aad)
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        self.rust.hpke_setup_sender_and_export(
            config,
            pk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        self.rust.hpke_setup_receiver_and_export(
            config,
            enc,
            sk_r,
            info,
            exporter_context,
            exporter_length,
        )
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        self.rust.derive_hpke_keypair(config, ikm)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn crypto(beside: &Beside) -> Crypto<'_> {
        Crypto { rust: RustCrypto::default(), beside: Some(beside) }
    }

    #[test]
    fn a_page_is_good_only_if_every_signature_handed_over_is() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pk = key.verifying_key().to_bytes();
        let good = |data: &[u8]| key.sign(data).to_bytes();

        let beside = Beside::default();
        assert!(beside.finish(), "no signature: nothing to fail");
        for i in 0..100u8 {
            crypto(&beside)
                .verify_signature(SignatureScheme::ED25519, &[i], &pk, &good(&[i]))
                .unwrap();
        }
        assert!(beside.finish());

        let beside = Beside::default();
        crypto(&beside).verify_signature(SignatureScheme::ED25519, b"a", &pk, &good(b"a")).unwrap();
        // Reported good here — the verdict is the page's.
        crypto(&beside).verify_signature(SignatureScheme::ED25519, b"b", &pk, &good(b"a")).unwrap();
        assert!(!beside.finish(), "a signature over other bytes fails the page");
        assert!(!beside.finish(), "and the verdict stays");

        // A key that is no curve point fails the page too.
        let beside = Beside::default();
        crypto(&beside)
            .verify_signature(SignatureScheme::ED25519, b"a", &[0xff; 32], &good(b"a"))
            .unwrap();
        assert!(!beside.finish());

        // Checked in line, a bad signature is refused at once, as RustCrypto does.
        let inline = Crypto { rust: RustCrypto::default(), beside: None };
        assert!(inline.verify_signature(SignatureScheme::ED25519, b"b", &pk, &good(b"a")).is_err());
        assert!(inline.verify_signature(SignatureScheme::ED25519, b"a", &pk, &good(b"a")).is_ok());
        // Bytes of the wrong length are not handed over: refused in line.
        let beside = Beside::default();
        assert!(crypto(&beside)
            .verify_signature(SignatureScheme::ED25519, b"a", &pk, &[0; 10])
            .is_err());
        assert!(beside.finish());
    }
}
