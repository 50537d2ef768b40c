//! C2SP cosignatures (<https://c2sp.org/tlog-cosignature>), the Ed25519
//! `cosignature/v1` type.
//!
//! A cosignature is a note signature line a witness adds to a checkpoint:
//!
//! ```text
//! — <witness name> base64(key ID || timestamp || Ed25519 signature)
//! ```
//!
//! * key ID: `SHA-256(name || "\n" || 0x04 || public key)[..4]`, big-endian;
//! * timestamp: the POSIX time of the cosignature, a big-endian `u64`
//!   no larger than `2^63 - 1`;
//! * signed message: `cosignature/v1\ntime <timestamp>\n` followed by the
//!   whole checkpoint text (final newline included, signature lines not).
//!
//! A witness's key is written as a C2SP verifier key with the signature type
//! 0x04, `<name>+<hex8 key ID>+<base64(0x04 || 32-byte public key)>`, and its
//! secret as `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x04 || seed)>`. The
//! 0x04 byte keeps a witness key from ever verifying a plain note signature
//! (type 0x01) and the reverse.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::encoding::b64_encode;
use crate::note::{
    decode_key_material, is_valid_key_name, key_id_for, parse_key_id_hex, Note, NoteError,
    NoteSignature,
};

/// Signature type byte of Ed25519 `cosignature/v1` keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The header line of the signed message, without its newline.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";

/// The largest timestamp a cosignature may carry (`2^63 - 1`).
pub const MAX_TIMESTAMP: u64 = i64::MAX.unsigned_abs();

/// Errors of cosignature keys, signing and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// A key string or signature line is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The signature is not 8 timestamp bytes and 64 signature bytes.
    #[error(
        "a cosignature/v1 signature must be 72 bytes (timestamp and Ed25519 signature), not {0}"
    )]
    WrongLength(usize),
    /// The timestamp exceeds `2^63 - 1`.
    #[error("cosignature timestamp {0} exceeds 2^63 - 1")]
    TimestampTooLarge(u64),
    /// The signature line names another key (name or key ID).
    #[error("the signature is by {name}+{key_id:08x}, not by this witness")]
    OtherKey {
        /// The line's key name.
        name: String,
        /// The line's key ID.
        key_id: u32,
    },
    /// The Ed25519 signature does not verify.
    #[error("the cosignature of {name}+{key_id:08x} does not verify")]
    Invalid {
        /// The witness's key name.
        name: String,
        /// The witness's key ID.
        key_id: u32,
    },
}

/// A witness's public key: verifies its cosignatures.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// A witness's private key. Its `Debug` output omits the secret.
#[derive(Clone)]
pub struct CosignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

/// One parsed cosignature: who, when, and the Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    name: String,
    key_id: u32,
    timestamp: u64,
    signature: [u8; 64],
}

/// The message a `cosignature/v1` signs: the header line, the time line and
/// the checkpoint text (which ends in a newline).
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// The key ID of a cosignature/v1 key.
pub fn cosignature_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    key_id_for(ALG_COSIGNATURE_V1, name, public_key)
}

impl CosignatureVerifier {
    /// Creates a verifier from a name and a 32-byte Ed25519 public key.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::InvalidPublicKey`].
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, CosignatureError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName.into());
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey.into());
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: cosignature_key_id(name, public_key),
            key,
        })
    }

    /// Parses `name+hex8+base64(0x04 || public key)`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::UnsupportedAlgorithm`] (a plain note key, type 0x01,
    /// included), [`NoteError::InvalidPublicKey`] or
    /// [`NoteError::KeyIdMismatch`].
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey {
                reason: "expected name+keyid+key",
            }
            .into());
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName.into());
        }
        let id = parse_key_id_hex(id_hex)?;
        let public_key = decode_key_material(ALG_COSIGNATURE_V1, key_b64)?;
        let key = Self::from_public_key(name, &public_key)?;
        if key.key_id != id {
            return Err(NoteError::KeyIdMismatch.into());
        }
        Ok(key)
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether a signature line names this key (name and key ID).
    pub fn matches(&self, signature: &NoteSignature) -> bool {
        signature.name() == self.name && signature.key_id() == self.key_id
    }

    /// Verifies a cosignature line (already parsed) on `checkpoint_text`.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::OtherKey`], [`CosignatureError::WrongLength`],
    /// [`CosignatureError::TimestampTooLarge`] or
    /// [`CosignatureError::Invalid`].
    pub fn verify(
        &self,
        checkpoint_text: &str,
        signature: &NoteSignature,
    ) -> Result<Cosignature, CosignatureError> {
        if !self.matches(signature) {
            return Err(CosignatureError::OtherKey {
                name: signature.name().to_owned(),
                key_id: signature.key_id(),
            });
        }
        let cosignature = Cosignature::from_note_signature(signature)?;
        let message = signed_message(checkpoint_text, cosignature.timestamp);
        let ed = ed25519_dalek::Signature::from_bytes(&cosignature.signature);
        self.key
            .verify_strict(&message, &ed)
            .map_err(|_| CosignatureError::Invalid {
                name: self.name.clone(),
                key_id: self.key_id,
            })?;
        Ok(cosignature)
    }

    /// The cosignatures of this witness on `note` that verify, and whether
    /// one of its lines failed. Lines of other keys are ignored.
    pub fn verify_note(&self, note: &Note) -> (Option<Cosignature>, bool) {
        let mut good = None;
        let mut failed = false;
        for line in note.signatures().iter().filter(|s| self.matches(s)) {
            match self.verify(note.text(), line) {
                Ok(cosignature) => {
                    if good.is_none() {
                        good = Some(cosignature);
                    }
                }
                Err(_) => failed = true,
            }
        }
        (good, failed)
    }
}

impl fmt::Display for CosignatureVerifier {
    /// Writes `name+hex8+base64(0x04 || key)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(33);
        material.push(ALG_COSIGNATURE_V1);
        material.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            b64_encode(&material)
        )
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CosignatureVerifier")
            .field(&self.to_string())
            .finish()
    }
}

impl FromStr for CosignatureVerifier {
    type Err = CosignatureError;

    fn from_str(s: &str) -> Result<Self, CosignatureError> {
        Self::parse(s)
    }
}

impl CosignerKey {
    /// Creates a witness key from a name and a 32-byte Ed25519 seed.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`].
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CosignatureError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName.into());
        }
        let key = SigningKey::from_bytes(seed);
        let public_key = key.verifying_key().to_bytes();
        Ok(Self {
            name: name.to_owned(),
            key_id: cosignature_key_id(name, &public_key),
            key,
        })
    }

    /// Generates a new key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::Randomness`].
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| NoteError::Randomness)?;
        Self::from_seed(name, &seed)
    }

    /// Parses `PRIVATE+KEY+name+hex8+base64(0x04 || seed)`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::UnsupportedAlgorithm`] or [`NoteError::KeyIdMismatch`].
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let mut parts = text.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id_hex), Some(key_b64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NoteError::MalformedKey {
                reason: "expected PRIVATE+KEY+name+keyid+key",
            }
            .into());
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName.into());
        }
        let id = parse_key_id_hex(id_hex)?;
        let seed = Zeroizing::new(decode_key_material(ALG_COSIGNATURE_V1, key_b64)?);
        let key = Self::from_seed(name, &seed)?;
        if key.key_id != id {
            return Err(NoteError::KeyIdMismatch.into());
        }
        Ok(key)
    }

    /// The secret key string. Handle it as a secret.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut material = Zeroizing::new(Vec::with_capacity(33));
        material.push(ALG_COSIGNATURE_V1);
        material.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            Zeroizing::new(b64_encode(&material)).as_str()
        ))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns a checkpoint text (origin, size, root and extension lines,
    /// final newline included) at `timestamp` (POSIX seconds).
    ///
    /// # Errors
    ///
    /// [`CosignatureError::TimestampTooLarge`].
    pub fn cosign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<Cosignature, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        let signature = self
            .key
            .sign(&signed_message(checkpoint_text, timestamp))
            .to_bytes();
        Ok(Cosignature {
            name: self.name.clone(),
            key_id: self.key_id,
            timestamp,
            signature,
        })
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosignature {
    /// Reads the timestamp and Ed25519 signature out of a note signature.
    ///
    /// # Errors
    ///
    /// [`CosignatureError::WrongLength`] or
    /// [`CosignatureError::TimestampTooLarge`].
    pub fn from_note_signature(signature: &NoteSignature) -> Result<Self, CosignatureError> {
        let bytes = signature.signature();
        let (Some(time), Some(sig)) = (bytes.get(..8), bytes.get(8..)) else {
            return Err(CosignatureError::WrongLength(bytes.len()));
        };
        let (Ok(time), Ok(sig)) = (<[u8; 8]>::try_from(time), <[u8; 64]>::try_from(sig)) else {
            return Err(CosignatureError::WrongLength(bytes.len()));
        };
        let timestamp = u64::from_be_bytes(time);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        Ok(Self {
            name: signature.name().to_owned(),
            key_id: signature.key_id(),
            timestamp,
            signature: sig,
        })
    }

    /// Parses a signature line (without its newline) as a cosignature; the
    /// line is not verified.
    ///
    /// # Errors
    ///
    /// A signature line error, [`CosignatureError::WrongLength`] or
    /// [`CosignatureError::TimestampTooLarge`].
    pub fn parse_line(line: &str) -> Result<Self, CosignatureError> {
        Self::from_note_signature(&NoteSignature::parse_line(line)?)
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// When the witness cosigned (POSIX seconds).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// As a note signature (`key ID || timestamp || signature`).
    pub fn to_note_signature(&self) -> NoteSignature {
        let mut bytes = Vec::with_capacity(72);
        bytes.extend_from_slice(&self.timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        // The name was checked when the key was made or the line parsed.
        NoteSignature::from_checked_parts(&self.name, self.key_id, bytes)
    }

    /// The signature line, with its trailing newline.
    pub fn to_line(&self) -> String {
        self.to_note_signature().to_line()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::note::SignerKey;

    fn witness() -> CosignerKey {
        CosignerKey::from_seed("witness.example/w1", &[7; 32]).unwrap()
    }

    fn checkpoint_text() -> String {
        Checkpoint::new("example.com/log", 5, [3; 32])
            .unwrap()
            .to_text()
    }

    #[test]
    fn signed_message_is_the_spec_layout() {
        assert_eq!(
            signed_message("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", 1679315147),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".to_vec()
        );
    }

    #[test]
    fn cosign_verify_round_trip_and_line_layout() {
        let key = witness();
        let text = checkpoint_text();
        let cosignature = key.cosign(&text, 1_700_000_000).unwrap();
        let line = cosignature.to_line();
        assert!(line.starts_with("\u{2014} witness.example/w1 "));
        let parsed = NoteSignature::parse_line(line.trim_end_matches('\n')).unwrap();
        // key ID (4) + timestamp (8) + signature (64).
        assert_eq!(parsed.signature().len(), 72);
        assert_eq!(
            parsed.signature().get(..8).unwrap(),
            1_700_000_000u64.to_be_bytes()
        );
        let verified = key.verifier().verify(&text, &parsed).unwrap();
        assert_eq!(verified.timestamp(), 1_700_000_000);
        // Another checkpoint, another time, another key: refused.
        let other = Checkpoint::new("example.com/log", 6, [3; 32])
            .unwrap()
            .to_text();
        assert!(matches!(
            key.verifier().verify(&other, &parsed),
            Err(CosignatureError::Invalid { .. })
        ));
        let mut bytes = parsed.signature().to_vec();
        bytes[7] ^= 1;
        let retimed = NoteSignature::new(parsed.name(), parsed.key_id(), bytes).unwrap();
        assert!(key.verifier().verify(&text, &retimed).is_err());
        let stranger = CosignerKey::from_seed("witness.example/w1", &[8; 32]).unwrap();
        assert!(matches!(
            stranger.verifier().verify(&text, &parsed),
            Err(CosignatureError::OtherKey { .. })
        ));
    }

    #[test]
    fn keys_round_trip_with_type_0x04() {
        let key = witness();
        let vkey = key.verifier().to_string();
        let material = vkey.rsplit('+').next().unwrap();
        let material = crate::encoding::b64_decode(material).unwrap();
        assert_eq!(material.len(), 33);
        assert_eq!(material[0], 0x04, "type byte 0x04: {vkey}");
        assert_eq!(CosignatureVerifier::parse(&vkey).unwrap(), key.verifier());
        let secret = key.to_secret_string();
        let parsed = CosignerKey::parse(&secret).unwrap();
        assert_eq!(parsed.verifier(), key.verifier());
        // A plain note key (type 0x01) is not a witness key, nor the reverse.
        let note_key = SignerKey::from_seed("witness.example/w1", &[7; 32])
            .unwrap()
            .verifier_key()
            .to_string();
        assert_eq!(
            CosignatureVerifier::parse(&note_key),
            Err(CosignatureError::Note(NoteError::UnsupportedAlgorithm(1)))
        );
        assert!(crate::note::VerifierKey::parse(&vkey).is_err());
        // The same name and public key give a different ID than type 0x01.
        assert_ne!(
            key.verifier().key_id(),
            crate::note::key_id("witness.example/w1", &key.verifier().key.to_bytes())
        );
    }

    #[test]
    fn malformed_cosignatures_are_rejected() {
        let key = witness();
        let short =
            NoteSignature::new("witness.example/w1", key.verifier().key_id(), vec![0; 71]).unwrap();
        assert_eq!(
            Cosignature::from_note_signature(&short),
            Err(CosignatureError::WrongLength(71))
        );
        let mut big = vec![0xff; 8];
        big.extend_from_slice(&[0; 64]);
        let big = NoteSignature::new("w", 1, big).unwrap();
        assert!(matches!(
            Cosignature::from_note_signature(&big),
            Err(CosignatureError::TimestampTooLarge(_))
        ));
        assert!(key.cosign(&checkpoint_text(), u64::MAX).is_err());
    }

    #[test]
    fn verify_note_counts_this_witness_only() {
        let log = SignerKey::from_seed("example.com/log", &[1; 32]).unwrap();
        let text = checkpoint_text();
        let mut note = Note::new(&text).unwrap();
        note.sign(&log).unwrap();
        let key = witness();
        assert_eq!(key.verifier().verify_note(&note), (None, false));
        note.add_signature(key.cosign(&text, 10).unwrap().to_note_signature())
            .unwrap();
        let (good, failed) = key.verifier().verify_note(&note);
        assert_eq!(good.map(|c| c.timestamp()), Some(10));
        assert!(!failed);
    }
}
