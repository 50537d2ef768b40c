//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, then one
//! or more signature lines `— <key name> <base64(key ID || signature)>`,
//! where the dash is U+2014 EM DASH followed by a space. The signature covers
//! the text including its final newline.
//!
//! Keys are written as in Go's `golang.org/x/mod/sumdb/note`, so Go
//! witnesses and monitors accept them:
//!
//! * verifier key: `<name>+<hex8 key ID>+<base64(0x01 || 32-byte public key)>`
//! * signer key: `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || 32-byte seed)>`
//! * key ID: the first 4 bytes (big-endian) of
//!   `SHA-256(name || "\n" || 0x01 || public key)`.
//!
//! Verification ([`Note::verify`], [`open_note`]) ignores signatures from
//! unknown keys, verifies every signature whose name and key ID match a
//! trusted key with `verify_strict`, rejects the whole note if any of those
//! fails, and requires at least one to succeed.
//!
//! Parsing is stricter than Go in two harmless ways: base64 must be
//! canonical (Go tolerates non-zero trailing bits), and a repeated signature
//! from a known key is verified rather than skipped.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::{b64_decode, b64_encode};

/// Signature type byte of Ed25519 keys in key IDs and key strings.
pub const ALG_ED25519: u8 = 0x01;

/// Most signature lines a note may carry. The spec requires accepting at
/// least 16; Go's implementation stops at 100, and so do we.
pub const MAX_SIGNATURES: usize = 100;

/// Largest signed note, in bytes, that parsing accepts. Checkpoints and
/// proofs are a few hundred bytes; the bound stops hostile input early.
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// The separator that starts every signature line: U+2014 EM DASH, space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Errors of signed-note parsing, signing, verification and key handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note is {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than newline.
    #[error("note contains a control character other than newline")]
    ControlCharacter,
    /// The note text is empty or does not end in a newline.
    #[error("note text must end with a newline")]
    TextMustEndWithNewline,
    /// No blank line separates the text from a newline-terminated signature
    /// block.
    #[error("note has no signature block after a blank line")]
    MissingSignatures,
    /// A signature line does not have the form `— name base64`.
    #[error("malformed signature line")]
    MalformedSignatureLine,
    /// A key name is empty or contains whitespace, `+` or a control
    /// character.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A signature or key is not canonical standard base64.
    #[error("invalid base64")]
    InvalidBase64,
    /// A signature is too short to hold a key ID and any signature bytes.
    #[error("signature is too short")]
    SignatureTooShort,
    /// The note carries more than [`MAX_SIGNATURES`] signatures.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// Signing was asked for with no signer.
    #[error("at least one signer is required")]
    NoSigners,
    /// A verifier or signer key string is malformed.
    #[error("malformed key: {reason}")]
    MalformedKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key string's key ID does not match its name and public key.
    #[error("key ID does not match the key")]
    KeyIdMismatch,
    /// A key uses a signature type other than Ed25519 (0x01).
    #[error("unsupported key algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// The public key is not a valid Ed25519 point, or is of small order.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// Two different trusted keys share a name and key ID, so a signature
    /// cannot be attributed.
    #[error("ambiguous trusted key {name}+{key_id:08x}")]
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// A signature from a trusted key does not verify.
    #[error("invalid signature from {name}+{key_id:08x}")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// No signature from a trusted key is present.
    #[error("note has no signature from a trusted key")]
    NoTrustedSignature,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Randomness,
}

/// A public Ed25519 note verifier key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// A private Ed25519 note signer key. Its `Debug` output omits the secret.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

/// A note text with its signature lines, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// A note at least one trusted key has signed. Only [`Note::verify`] and
/// [`open_note`] construct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    note: Note,
    verified: Vec<NoteSignature>,
    unverified: Vec<NoteSignature>,
}

/// Reports whether `name` may name a key: non-empty, no whitespace, no `+`,
/// no control characters.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Computes the key ID of an Ed25519 key:
/// `SHA-256(name || "\n" || 0x01 || public key)[..4]` as a big-endian `u32`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    key_id_for(ALG_ED25519, name, public_key)
}

/// Computes a key ID for signature type `alg`:
/// `SHA-256(name || "\n" || alg || public key)[..4]` as a big-endian `u32`.
pub(crate) fn key_id_for(alg: u8, name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([alg]);
    hasher.update(public_key);
    let digest: [u8; 32] = hasher.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// Signs `text` with every signer and returns the signed note.
///
/// # Errors
///
/// [`NoteError::NoSigners`], or a text error from [`Note::new`].
pub fn sign_note(text: &str, signers: &[&SignerKey]) -> Result<String, NoteError> {
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = Note::new(text)?;
    for signer in signers {
        note.sign(signer)?;
    }
    note.to_signed_string()
}

/// Parses a signed note and verifies it against the trusted keys.
///
/// # Errors
///
/// Any parse error of [`Note::parse`] or verification error of
/// [`Note::verify`].
pub fn open_note(msg: &[u8], trusted: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
    Note::parse(msg)?.verify(trusted)
}

impl VerifierKey {
    /// Creates a verifier key from a name and a 32-byte Ed25519 public key.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::InvalidPublicKey`].
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::InvalidPublicKey)?;
        // A small-order key verifies forged signatures under lax rules;
        // verify_strict rejects them anyway, refusing here fails earlier.
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            key,
        })
    }

    /// Parses `name+hex8+base64(0x01 || public key)`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::UnsupportedAlgorithm`], [`NoteError::InvalidPublicKey`]
    /// or [`NoteError::KeyIdMismatch`].
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // base64 itself may contain '+', so split at most twice.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey {
                reason: "expected name+keyid+key",
            });
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let id = parse_key_id_hex(id_hex)?;
        let public_key = decode_ed25519_key_material(key_b64)?;
        let key = Self::from_public_key(name, &public_key)?;
        if key.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Reports whether `signature` is a valid strict Ed25519 signature of
    /// `msg` by this key.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify_strict(msg, &signature).is_ok()
    }
}

impl fmt::Display for VerifierKey {
    /// Writes the verifier key string `name+hex8+base64(0x01 || key)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(33);
        material.push(ALG_ED25519);
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

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifierKey")
            .field(&self.to_string())
            .finish()
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::parse(s)
    }
}

impl SignerKey {
    /// Creates a signer key from a name and a 32-byte Ed25519 seed.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`].
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let key = SigningKey::from_bytes(seed);
        let public_key = key.verifying_key().to_bytes();
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            key,
        })
    }

    /// Generates a new key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`] or [`NoteError::Randomness`].
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| NoteError::Randomness)?;
        Self::from_seed(name, &seed)
    }

    /// Parses `PRIVATE+KEY+name+hex8+base64(0x01 || seed)`.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedKey`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::UnsupportedAlgorithm`] or [`NoteError::KeyIdMismatch`]
    /// (the ID must match the public key derived from the seed).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
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
            });
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let id = parse_key_id_hex(id_hex)?;
        let seed = Zeroizing::new(decode_ed25519_key_material(key_b64)?);
        let key = Self::from_seed(name, &seed)?;
        if key.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The secret signer key string `PRIVATE+KEY+name+hex8+base64(0x01 || seed)`.
    /// Handle it as a secret: anyone holding it can sign as this key.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut material = Zeroizing::new(Vec::with_capacity(33));
        material.push(ALG_ED25519);
        material.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            Zeroizing::new(b64_encode(&material)).as_str()
        ))
    }

    /// Signs `msg` (deterministic Ed25519) and returns the 64-byte signature.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSignature {
    /// Creates a signature line from its parts.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidKeyName`], or [`NoteError::SignatureTooShort`]
    /// for an empty signature.
    pub fn new(name: &str, key_id: u32, signature: Vec<u8>) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        if signature.is_empty() {
            return Err(NoteError::SignatureTooShort);
        }
        Ok(Self {
            name: name.to_owned(),
            key_id,
            signature,
        })
    }

    /// A signature line from parts already checked (a valid key name, a
    /// non-empty signature).
    pub(crate) fn from_checked_parts(name: &str, key_id: u32, signature: Vec<u8>) -> Self {
        Self {
            name: name.to_owned(),
            key_id,
            signature,
        }
    }

    /// Parses one signature line, without its trailing newline.
    ///
    /// # Errors
    ///
    /// [`NoteError::MalformedSignatureLine`], [`NoteError::InvalidKeyName`],
    /// [`NoteError::InvalidBase64`] or [`NoteError::SignatureTooShort`].
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::MalformedSignatureLine)?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::MalformedSignatureLine)?;
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        let bytes = b64_decode(b64).ok_or(NoteError::InvalidBase64)?;
        match bytes.as_slice() {
            [a, b, c, d, sig @ ..] if !sig.is_empty() => Ok(Self {
                name: name.to_owned(),
                key_id: u32::from_be_bytes([*a, *b, *c, *d]),
                signature: sig.to_vec(),
            }),
            _ => Err(NoteError::SignatureTooShort),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes, without the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signature line `— name base64(key ID || signature)` with its
    /// trailing newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, b64_encode(&bytes))
    }
}

impl Note {
    /// Creates an unsigned note from its text.
    ///
    /// # Errors
    ///
    /// [`NoteError::TooLarge`], [`NoteError::ControlCharacter`] or
    /// [`NoteError::TextMustEndWithNewline`].
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_size(text.len())?;
        check_characters(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::TextMustEndWithNewline);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note without verifying any signature. The text ends
    /// at the last blank line.
    ///
    /// # Errors
    ///
    /// [`NoteError::TooLarge`], [`NoteError::NotUtf8`],
    /// [`NoteError::ControlCharacter`], [`NoteError::MissingSignatures`],
    /// [`NoteError::TooManySignatures`] or a signature line error.
    pub fn parse(msg: &[u8]) -> Result<Self, NoteError> {
        check_size(msg.len())?;
        let msg = std::str::from_utf8(msg).map_err(|_| NoteError::NotUtf8)?;
        check_characters(msg)?;
        let split = msg.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
        // The text keeps its final newline; the blank line belongs to neither.
        let text = msg.get(..split + 1).ok_or(NoteError::MissingSignatures)?;
        let block = msg.get(split + 2..).ok_or(NoteError::MissingSignatures)?;
        let block = block
            .strip_suffix('\n')
            .ok_or(NoteError::MissingSignatures)?;
        if block.is_empty() {
            return Err(NoteError::MissingSignatures);
        }
        let mut signatures = Vec::new();
        for line in block.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends a signature line (for example a witness cosignature).
    ///
    /// # Errors
    ///
    /// [`NoteError::TooManySignatures`].
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// Signs the text with `signer`, replacing any earlier signature by the
    /// same key name and ID.
    ///
    /// # Errors
    ///
    /// [`NoteError::TooManySignatures`].
    pub fn sign(&mut self, signer: &SignerKey) -> Result<(), NoteError> {
        self.signatures
            .retain(|s| !(s.name == signer.name && s.key_id == signer.key_id));
        let signature = signer.sign(self.text.as_bytes());
        self.add_signature(NoteSignature {
            name: signer.name.clone(),
            key_id: signer.key_id,
            signature: signature.to_vec(),
        })
    }

    /// Formats the signed note: text, blank line, signature lines.
    ///
    /// # Errors
    ///
    /// [`NoteError::MissingSignatures`] if the note has no signature, since
    /// that would not be a signed note.
    pub fn to_signed_string(&self) -> Result<String, NoteError> {
        if self.signatures.is_empty() {
            return Err(NoteError::MissingSignatures);
        }
        let mut out = String::with_capacity(self.text.len() + 1 + 120 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        Ok(out)
    }

    /// Verifies the note against the trusted keys.
    ///
    /// Signatures whose name and key ID match no trusted key are ignored
    /// (kept as unverified). Every signature that matches one is verified;
    /// one failure rejects the note, and at least one must succeed.
    ///
    /// # Errors
    ///
    /// [`NoteError::InvalidSignature`], [`NoteError::AmbiguousKey`] or
    /// [`NoteError::NoTrustedSignature`].
    pub fn verify(&self, trusted: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
        let mut verified: Vec<NoteSignature> = Vec::new();
        let mut unverified: Vec<NoteSignature> = Vec::new();
        for signature in &self.signatures {
            let mut matching = trusted
                .iter()
                .filter(|k| k.name == signature.name && k.key_id == signature.key_id);
            let Some(key) = matching.next() else {
                if !unverified.contains(signature) {
                    unverified.push(signature.clone());
                }
                continue;
            };
            if matching.any(|other| other.key != key.key) {
                return Err(NoteError::AmbiguousKey {
                    name: signature.name.clone(),
                    key_id: signature.key_id,
                });
            }
            if !key.verify(self.text.as_bytes(), &signature.signature) {
                return Err(NoteError::InvalidSignature {
                    name: signature.name.clone(),
                    key_id: signature.key_id,
                });
            }
            if !verified
                .iter()
                .any(|v| v.name == signature.name && v.key_id == signature.key_id)
            {
                verified.push(signature.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoTrustedSignature);
        }
        Ok(VerifiedNote {
            note: self.clone(),
            verified,
            unverified,
        })
    }
}

impl VerifiedNote {
    /// The verified note text.
    pub fn text(&self) -> &str {
        self.note.text()
    }

    /// The whole note, all signatures included.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// Signatures by trusted keys, each verified (one per key).
    pub fn verified_signatures(&self) -> &[NoteSignature] {
        &self.verified
    }

    /// Signatures by keys that are not trusted; not verified.
    pub fn unverified_signatures(&self) -> &[NoteSignature] {
        &self.unverified
    }

    /// Whether the key `name` with ID `key_id` verified the note.
    pub fn is_signed_by(&self, name: &str, key_id: u32) -> bool {
        self.verified
            .iter()
            .any(|s| s.name == name && s.key_id == key_id)
    }
}

fn check_size(size: usize) -> Result<(), NoteError> {
    if size > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge {
            size,
            max: MAX_NOTE_SIZE,
        });
    }
    Ok(())
}

/// The spec forbids ASCII control characters other than newline.
fn check_characters(text: &str) -> Result<(), NoteError> {
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

pub(crate) fn parse_key_id_hex(text: &str) -> Result<u32, NoteError> {
    // from_str_radix alone would accept a leading '+'. Lowercase only: a
    // key has one text form (the one `Display` writes, as Go's note package
    // does), so a key read from a bundle or `--key` prints as it was given
    // (found by the `roundtrip` fuzz target).
    if text.len() != 8
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(NoteError::MalformedKey {
            reason: "key ID must be 8 lowercase hex digits",
        });
    }
    u32::from_str_radix(text, 16).map_err(|_| NoteError::MalformedKey {
        reason: "key ID must be 8 lowercase hex digits",
    })
}

/// Decodes `base64(0x01 || 32 bytes)` into the 32 key bytes.
fn decode_ed25519_key_material(text: &str) -> Result<[u8; 32], NoteError> {
    decode_key_material(ALG_ED25519, text)
}

/// Decodes `base64(alg || 32 bytes)` into the 32 key bytes.
pub(crate) fn decode_key_material(alg: u8, text: &str) -> Result<[u8; 32], NoteError> {
    let bytes = Zeroizing::new(b64_decode(text).ok_or(NoteError::InvalidBase64)?);
    match bytes.as_slice() {
        [first, rest @ ..] if *first == alg => {
            <[u8; 32]>::try_from(rest).map_err(|_| NoteError::MalformedKey {
                reason: "Ed25519 key must be 32 bytes",
            })
        }
        [alg, ..] => Err(NoteError::UnsupportedAlgorithm(*alg)),
        [] => Err(NoteError::MalformedKey {
            reason: "empty key",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, byte: u8) -> SignerKey {
        SignerKey::from_seed(name, &[byte; 32]).unwrap()
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let a = signer("a.example/log", 1);
        let b = signer("b.example", 2);
        let signed = sign_note("hello\n\nworld\n", &[&a, &b]).unwrap();
        let note = Note::parse(signed.as_bytes()).unwrap();
        assert_eq!(note.text(), "hello\n\nworld\n");
        assert_eq!(note.signatures().len(), 2);
        assert_eq!(note.to_signed_string().unwrap(), signed);

        let verified = note.verify(&[b.verifier_key()]).unwrap();
        assert!(verified.is_signed_by("b.example", b.key_id()));
        assert_eq!(verified.unverified_signatures().len(), 1);
        assert_eq!(
            note.verify(&[signer("c", 3).verifier_key()]),
            Err(NoteError::NoTrustedSignature)
        );
    }

    #[test]
    fn key_strings_round_trip() {
        let k = signer("example.com/log", 9);
        let secret = k.to_secret_string();
        let parsed = SignerKey::parse(&secret).unwrap();
        assert_eq!(parsed.verifier_key(), k.verifier_key());
        let vkey = k.verifier_key().to_string();
        assert_eq!(VerifierKey::parse(&vkey).unwrap(), k.verifier_key());
        assert!(!format!("{k:?}").contains(&secret[20..]));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let vkey = signer("n", 1).verifier_key().to_string();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();
        for bad in [
            String::new(),
            "n".into(),
            format!("{name}+{id}"),
            format!("{name}+{id}+"),
            format!("+{id}+{key}"),
            format!("a b+{id}+{key}"),
            format!("{name}+{}+{key}", &id[1..]),
            format!("{name}++{}+{key}", &id[1..]),
            format!("{name}+{id}0+{key}"),
            format!("{name}+00000000+{key}"),
            format!("other+{id}+{key}"),
            format!("{name}+{id}+{}", &key[1..]),
            format!("{name}+{id}+AQ=="),
            format!("{name}+{id}+Ag=="),
        ] {
            assert!(VerifierKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let k = signer("k", 5);
        let good = sign_note("text\n", &[&k]).unwrap();
        let sig_line = good.strip_prefix("text\n\n").unwrap();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"text\n".to_vec(),
            b"text\n\n".to_vec(),
            format!("text\n{sig_line}").into_bytes(),
            format!("text\n\n{}", sig_line.trim_end()).into_bytes(),
            format!("text\n\n{sig_line}\n").into_bytes(),
            format!("te\txt\n\n{sig_line}").into_bytes(),
            format!("text\n\n{}", sig_line.replace('\u{2014}', "-")).into_bytes(),
            format!("text\n\n{}", sig_line.replacen(' ', "", 1)).into_bytes(),
            format!("text\n\n{}", sig_line.replacen(" k ", " k  ", 1)).into_bytes(),
            format!("text\n\n{}", sig_line.replacen(" k ", " k+ ", 1)).into_bytes(),
            b"text\n\n\xe2\x80\x94 k AAAAAA==\n".to_vec(),
            b"text\n\n\xe2\x80\x94 k !!!!\n".to_vec(),
            b"te\xffxt\n\n\xe2\x80\x94 k AAAAAAA=\n".to_vec(),
            format!("text\n\n{}", sig_line.repeat(MAX_SIGNATURES + 1)).into_bytes(),
        ];
        for case in cases {
            assert!(
                Note::parse(&case).is_err(),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
        let many = format!("text\n\n{}", sig_line.repeat(MAX_SIGNATURES));
        assert_eq!(
            Note::parse(many.as_bytes()).unwrap().signatures().len(),
            MAX_SIGNATURES
        );
    }

    #[test]
    fn tampering_is_detected() {
        let k = signer("k", 5);
        let good = sign_note("text\n", &[&k]).unwrap();
        let trusted = [k.verifier_key()];
        assert!(open_note(good.as_bytes(), &trusted).is_ok());
        let tampered = good.replacen("text", "test", 1);
        assert!(matches!(
            open_note(tampered.as_bytes(), &trusted),
            Err(NoteError::InvalidSignature { .. })
        ));
        // A valid signature plus a bad one by the same trusted key fails.
        let bad_line = NoteSignature::new("k", k.key_id(), vec![0u8; 64])
            .unwrap()
            .to_line();
        let mixed = format!("{good}{bad_line}");
        assert!(matches!(
            open_note(mixed.as_bytes(), &trusted),
            Err(NoteError::InvalidSignature { ref name, key_id })
                if name == "k" && key_id == k.key_id()
        ));
    }

    #[test]
    fn text_rules_for_signing() {
        let k = signer("k", 5);
        assert_eq!(
            sign_note("no newline", &[&k]),
            Err(NoteError::TextMustEndWithNewline)
        );
        assert_eq!(sign_note("", &[&k]), Err(NoteError::TextMustEndWithNewline));
        assert_eq!(sign_note("a\rb\n", &[&k]), Err(NoteError::ControlCharacter));
        assert_eq!(sign_note("a\n", &[]), Err(NoteError::NoSigners));
        // Texts ending in a blank line still round-trip: the last blank line
        // is the separator.
        let signed = sign_note("a\n\n", &[&k]).unwrap();
        assert_eq!(Note::parse(signed.as_bytes()).unwrap().text(), "a\n\n");
        assert!(SignerKey::from_seed("bad name", &[0; 32]).is_err());
        assert!(SignerKey::from_seed("", &[0; 32]).is_err());
        assert!(SignerKey::from_seed("a+b", &[0; 32]).is_err());
    }

    #[test]
    fn ambiguous_trusted_keys_are_refused() {
        // Two different keys can only collide on name and ID by brute force;
        // construct the collision directly.
        let a = signer("k", 1).verifier_key();
        let mut b = signer("k", 2).verifier_key();
        b.key_id = a.key_id;
        let signed = sign_note("x\n", &[&signer("k", 1)]).unwrap();
        assert!(matches!(
            open_note(signed.as_bytes(), &[a.clone(), b]),
            Err(NoteError::AmbiguousKey { .. })
        ));
        // The same key listed twice is fine.
        assert!(open_note(signed.as_bytes(), &[a.clone(), a]).is_ok());
    }

    #[test]
    fn generate_makes_working_keys() {
        let k = SignerKey::generate("gen.example").unwrap();
        let signed = sign_note("x\n", &[&k]).unwrap();
        assert!(open_note(signed.as_bytes(), &[k.verifier_key()]).is_ok());
    }
}
