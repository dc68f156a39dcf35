//! Secrets: API tokens (random, stored only as SHA-256 hashes) and values encrypted at rest
//! (ChaCha20-Poly1305 under the server key).

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use crate::ids::{hex, random_bytes};

/// Prefix of every token Styrmin issues, so a leaked one is recognisable in logs and scans.
pub const TOKEN_PREFIX: &str = "stm_";

/// A new bearer token: 32 random bytes as hex behind the prefix.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex(&random_bytes::<32>()))
}

/// What the database keeps of a token. Tokens are high-entropy, so a plain SHA-256 is the
/// right tool (a password hash would only slow every request down).
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The key that encrypts secrets at rest (BSL secret keys, secret parameter values).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Any text given in `STYRMIN_SECRET_KEY` is stretched to a key by SHA-256, so operators
    /// can paste a long random string from their secret manager.
    pub fn from_passphrase(text: &str) -> SecretKey {
        SecretKey(Sha256::digest(text.as_bytes()).into())
    }

    /// The key in `path`, created (mode 0600) with a random key the first time.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
        if path.exists() {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the server key {}", path.display()))?;
            let bytes = B64
                .decode(text.trim())
                .with_context(|| format!("{} is not a base64 server key", path.display()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes of key", path.display()))?;
            return Ok(SecretKey(key));
        }
        let key = random_bytes::<32>();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("cannot create the server key {}", path.display()))?;
        writeln!(file, "{}", B64.encode(key))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(SecretKey(key))
    }

    /// HMAC-SHA256 of `message` under a key derived for `purpose`, as hex.
    pub fn mac(&self, purpose: &str, message: &str) -> String {
        hex(ring::hmac::sign(&self.hmac_key(purpose), message.as_bytes()).as_ref())
    }

    /// Whether `tag` is [`SecretKey::mac`] of `message` (compared in constant time).
    pub fn verify_mac(&self, purpose: &str, message: &str, tag: &str) -> bool {
        let Some(tag) = from_hex(tag) else {
            return false;
        };
        ring::hmac::verify(&self.hmac_key(purpose), message.as_bytes(), &tag).is_ok()
    }

    fn hmac_key(&self, purpose: &str) -> ring::hmac::Key {
        let mut derived = Sha256::new();
        derived.update(self.0);
        derived.update(purpose.as_bytes());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &derived.finalize())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.0).expect("32-byte key"))
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut data = plaintext.as_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .expect("sealing cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend(data);
        B64.encode(out)
    }

    pub fn decrypt(&self, sealed: &str) -> anyhow::Result<String> {
        let bytes = B64.decode(sealed).context("sealed secret is not base64")?;
        if bytes.len() < NONCE_LEN {
            bail!("sealed secret is too short");
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).expect("length checked");
        let mut data = data.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| {
                anyhow::anyhow!("cannot decrypt a stored secret: was the server key changed?")
            })?;
        Ok(String::from_utf8(plain.to_vec())?)
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_round_trip_and_never_contain_the_plaintext() {
        let key = SecretKey::from_passphrase("correct horse");
        let sealed = key.encrypt("s3cr3t-value");
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(key.decrypt(&sealed).unwrap(), "s3cr3t-value");
        assert_ne!(key.encrypt("s3cr3t-value"), sealed, "nonces differ");
        let other = SecretKey::from_passphrase("battery staple");
        assert!(other.decrypt(&sealed).is_err());
    }

    #[test]
    fn macs_verify_only_for_their_key_purpose_and_message() {
        let key = SecretKey::from_passphrase("correct horse");
        let tag = key.mac("ui-csrf", "stm_abc");
        assert_eq!(tag.len(), 64);
        assert!(key.verify_mac("ui-csrf", "stm_abc", &tag));
        assert!(!key.verify_mac("ui-csrf", "stm_abd", &tag));
        assert!(!key.verify_mac("other", "stm_abc", &tag));
        assert!(!key.verify_mac("ui-csrf", "stm_abc", &tag[..62]));
        assert!(!key.verify_mac("ui-csrf", "stm_abc", "zz"));
        let other = SecretKey::from_passphrase("battery staple");
        assert!(!other.verify_mac("ui-csrf", "stm_abc", &tag));
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/server.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = new_token();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 4 + 64);
        assert_ne!(a, new_token());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
    }
}
