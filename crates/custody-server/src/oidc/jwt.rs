//! JSON Web Tokens (RFC 7519) signed with JWS compact serialisation (RFC
//! 7515), verified with `ring` against a JSON Web Key set (RFC 7517). Pure:
//! no IO, no clock (the time is an argument).
//!
//! Only asymmetric algorithms are accepted: RS256/384/512, PS256/384/512,
//! ES256, ES384 and EdDSA (Ed25519). `none` and every HS* are refused
//! before any key is looked at, so a token can never be checked with a
//! shared secret, nor with an RSA public key used as an HMAC secret (the
//! classic HS/RS key confusion). The key must also agree with the header:
//! its `kty` (and curve) must be the algorithm's, its `alg` (when it has
//! one) the header's, and its `use` (when it has one) `sig`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

/// The longest token looked at, in bytes. ID and access tokens of real
/// issuers are a few kilobytes; Entra's with many groups stay under 8 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most keys a key set may hold.
pub const MAX_KEYS: usize = 64;

/// A signature algorithm Custody accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every accepted algorithm, in the order the configuration's default lists them.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The algorithm named `name` in a JOSE header, if Custody accepts it.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
    }

    /// Its JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The key type (`kty`) and, for elliptic curves, the curve (`crv`) a
    /// key must have to verify this algorithm.
    fn key_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => ("RSA", None),
            Algorithm::ES256 => ("EC", Some("P-256")),
            Algorithm::ES384 => ("EC", Some("P-384")),
            Algorithm::EdDSA => ("OKP", Some("Ed25519")),
        }
    }
}

/// Why a token is refused. The text never holds the token or a claim's
/// value beyond the names Custody compares (issuer, audience), so it can be
/// answered and logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts, bad base64, or not JSON objects.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// Larger than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// `alg: none`, an HS* algorithm or another Custody does not accept.
    #[error("the token's algorithm `{0}` is not accepted")]
    Algorithm(String),
    /// No key of the set has the token's `kid` (or, without a `kid`, no
    /// key fits the algorithm).
    #[error("no key of the issuer's key set has the token's key ID{0}")]
    UnknownKey(String),
    /// The key found does not fit the header's algorithm.
    #[error("the key {kid} cannot verify {alg}: {reason}")]
    KeyMismatch {
        /// The key's ID.
        kid: String,
        /// The header's algorithm.
        alg: &'static str,
        /// What does not fit.
        reason: String,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("the token expired at {0} (unix seconds)")]
    Expired(i64),
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("the token is not valid yet: its {0} is in the future")]
    NotYetValid(&'static str),
    /// A required claim is missing or of the wrong type.
    #[error("the token's `{0}` claim is missing or not of the right type")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer, not by {expected}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not hold the configured audience, or `azp` names another party.
    #[error("the token is not meant for this server: {0}")]
    WrongAudience(String),
}

/// A key of a key set, parsed and checked enough to verify with.
#[derive(Clone, Debug)]
pub struct Jwk {
    /// `kid`, when the key has one.
    pub kid: Option<String>,
    /// `kty`.
    pub kty: String,
    /// `crv`, for EC and OKP keys.
    pub crv: Option<String>,
    /// `alg`, when the key pins one.
    pub alg: Option<String>,
    /// `use`, when the key has one.
    pub usage: Option<String>,
    /// The public key material, as `ring` takes it: `(n, e)` for RSA, the
    /// uncompressed point for EC, the 32 bytes for Ed25519.
    material: KeyMaterial,
}

#[derive(Clone, Debug)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Point(Vec<u8>),
    /// A key of a type Custody does not verify with (`oct`, an unknown
    /// curve): kept so that a token naming it is refused as a mismatch, not
    /// as an unknown key.
    Unusable,
}

/// A key set: the issuer's `jwks_uri` document, or a file.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// The keys, in the document's order.
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<BTreeMap<String, Value>>,
}

impl KeySet {
    /// Parses a JWKS document. A key that is malformed is left out (an
    /// issuer may publish key types Custody does not use); a document that
    /// is not a key set, or holds more than [`MAX_KEYS`] keys, is refused.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let raw: RawKeySet = serde_json::from_slice(bytes)
            .map_err(|error| format!("not a JSON Web Key set: {error}"))?;
        if raw.keys.len() > MAX_KEYS {
            return Err(format!(
                "the key set holds {} keys, more than {MAX_KEYS}",
                raw.keys.len()
            ));
        }
        let keys = raw.keys.iter().filter_map(parse_key).collect();
        Ok(KeySet { keys })
    }

    /// Whether a key has ID `kid`.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }
}

fn text(map: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_string)
}

fn bytes(map: &BTreeMap<String, Value>, name: &str) -> Option<Vec<u8>> {
    map.get(name)
        .and_then(Value::as_str)
        .and_then(|value| URL_SAFE_NO_PAD.decode(value).ok())
}

fn parse_key(map: &BTreeMap<String, Value>) -> Option<Jwk> {
    let kty = text(map, "kty")?;
    let crv = text(map, "crv");
    let material = match kty.as_str() {
        "RSA" => KeyMaterial::Rsa {
            n: bytes(map, "n")?,
            e: bytes(map, "e")?,
        },
        "EC" => {
            let x = bytes(map, "x")?;
            let y = bytes(map, "y")?;
            let size = match crv.as_deref() {
                Some("P-256") => 32,
                Some("P-384") => 48,
                _ => 0,
            };
            if size == 0 || x.len() != size || y.len() != size {
                KeyMaterial::Unusable
            } else {
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Point(point)
            }
        }
        "OKP" => {
            let x = bytes(map, "x")?;
            if crv.as_deref() == Some("Ed25519") && x.len() == 32 {
                KeyMaterial::Point(x)
            } else {
                KeyMaterial::Unusable
            }
        }
        _ => KeyMaterial::Unusable,
    };
    Some(Jwk {
        kid: text(map, "kid"),
        kty,
        crv,
        alg: text(map, "alg"),
        usage: text(map, "use"),
        material,
    })
}

/// A token whose signature verified, with its claims not yet judged.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The header's algorithm.
    pub algorithm: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The claims.
    pub claims: serde_json::Map<String, Value>,
}

/// The parts of a token before its signature is checked.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The header's algorithm.
    pub algorithm: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    claims: serde_json::Map<String, Value>,
}

/// Parses a compact JWS: three base64url parts, a header naming an
/// accepted algorithm, claims that are a JSON object.
pub fn parse(token: &str) -> Result<Parsed, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "a signed token has three parts separated by `.`".to_string(),
        ));
    };
    let decode = |what: &str, part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed(format!("its {what} is not base64url")))
    };
    let header_bytes = decode("header", header_part)?;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwtError::Malformed("its header is not a JSON object".to_string()))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("its header has no `alg`".to_string()))?;
    let algorithm = Algorithm::parse(alg).ok_or_else(|| {
        // Only a short, printable name is repeated.
        let shown: String = alg
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        JwtError::Algorithm(shown)
    })?;
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "its header has `crit` extensions, which Custody does not understand".to_string(),
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(JwtError::Malformed(
                "its header's `kid` is not a string".to_string(),
            ))
        }
    };
    let claims_bytes = decode("payload", payload)?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&claims_bytes)
        .map_err(|_| JwtError::Malformed("its payload is not a JSON object".to_string()))?;
    let signature = decode("signature", signature)?;
    let signing_input = token.as_bytes()[..header_part.len() + 1 + payload.len()].to_vec();
    Ok(Parsed {
        algorithm,
        kid,
        signing_input,
        signature,
        claims,
    })
}

impl Parsed {
    /// Verifies the signature with the key of `keys` the header names (or,
    /// without a `kid`, the only key that fits the algorithm).
    pub fn verify(self, keys: &KeySet) -> Result<Verified, JwtError> {
        let key = match &self.kid {
            Some(kid) => keys
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| JwtError::UnknownKey(format!(" ({})", shown_kid(kid))))?,
            None => {
                let (kty, crv) = self.algorithm.key_type();
                let mut fitting = keys
                    .keys
                    .iter()
                    .filter(|key| key.kty == kty && (crv.is_none() || key.crv.as_deref() == crv));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => key,
                    (None, _) => return Err(JwtError::UnknownKey(" (it names none)".to_string())),
                    (Some(_), Some(_)) => {
                        return Err(JwtError::UnknownKey(
                            " (it names none, and several keys fit)".to_string(),
                        ))
                    }
                }
            }
        };
        check_key_fits(key, self.algorithm)?;
        verify_signature(key, self.algorithm, &self.signing_input, &self.signature)?;
        Ok(Verified {
            algorithm: self.algorithm,
            kid: self.kid,
            claims: self.claims,
        })
    }
}

/// A `kid` as a message may show it: printable ASCII, at most 64 characters.
fn shown_kid(kid: &str) -> String {
    kid.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

fn check_key_fits(key: &Jwk, algorithm: Algorithm) -> Result<(), JwtError> {
    let mismatch = |reason: String| JwtError::KeyMismatch {
        kid: shown_kid(key.kid.as_deref().unwrap_or("(no kid)")),
        alg: algorithm.name(),
        reason,
    };
    let (kty, crv) = algorithm.key_type();
    if key.kty != kty {
        return Err(mismatch(format!(
            "it is a {} key, not {kty}",
            shown_kid(&key.kty)
        )));
    }
    if crv.is_some() && key.crv.as_deref() != crv {
        return Err(mismatch(format!("its curve is not {}", crv.unwrap_or(""))));
    }
    if let Some(alg) = &key.alg {
        if alg != algorithm.name() {
            return Err(mismatch(format!(
                "the key is for {}, not {}",
                shown_kid(alg),
                algorithm.name()
            )));
        }
    }
    if let Some(usage) = &key.usage {
        if usage != "sig" {
            return Err(mismatch("the key's `use` is not `sig`".to_string()));
        }
    }
    if matches!(key.material, KeyMaterial::Unusable) {
        return Err(mismatch("the key's material is malformed".to_string()));
    }
    Ok(())
}

fn verify_signature(
    key: &Jwk,
    algorithm: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), JwtError> {
    use ring::signature as sig;
    let verified = match (&key.material, algorithm) {
        (KeyMaterial::Rsa { n, e }, _) => {
            let parameters: &sig::RsaParameters = match algorithm {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => {
                    return Err(JwtError::BadSignature)
                }
            };
            sig::RsaPublicKeyComponents { n, e }.verify(parameters, message, signature)
        }
        (KeyMaterial::Point(point), Algorithm::ES256) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
        }
        (KeyMaterial::Point(point), Algorithm::ES384) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, signature)
        }
        (KeyMaterial::Point(point), Algorithm::EdDSA) => {
            sig::UnparsedPublicKey::new(&sig::ED25519, point).verify(message, signature)
        }
        _ => return Err(JwtError::BadSignature),
    };
    verified.map_err(|_| JwtError::BadSignature)
}

/// What the claims of a verified token must say.
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    /// The issuer, exactly.
    pub issuer: &'a str,
    /// An audience `aud` must hold.
    pub audience: &'a str,
    /// When `aud` holds several audiences, `azp` must be present and one of
    /// these (the client itself for an ID token; for an API token, `None`
    /// skips the check, as RFC 9068 access tokens carry no `azp` rule).
    pub authorized_parties: Option<&'a [String]>,
    /// Now, in unix seconds.
    pub now: i64,
    /// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: i64,
}

impl Verified {
    /// Judges the registered claims: `iss`, `aud` (and `azp`), `exp`
    /// (required), `nbf` and `iat` (when present), and `sub` (required).
    pub fn check(&self, expected: &Expectations<'_>) -> Result<(), JwtError> {
        let issuer = self
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(JwtError::MissingClaim("iss"))?;
        if issuer != expected.issuer {
            return Err(JwtError::WrongIssuer {
                expected: expected.issuer.to_string(),
            });
        }
        let audiences: Vec<&str> = match self.claims.get("aud") {
            Some(Value::String(audience)) => vec![audience.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => return Err(JwtError::MissingClaim("aud")),
        };
        if !audiences.contains(&expected.audience) {
            return Err(JwtError::WrongAudience(format!(
                "its `aud` does not name `{}`",
                expected.audience
            )));
        }
        if let Some(parties) = expected.authorized_parties {
            let azp = self.claims.get("azp").and_then(Value::as_str);
            match azp {
                Some(azp) if !parties.iter().any(|party| party == azp) => {
                    return Err(JwtError::WrongAudience(
                        "its `azp` names another client".to_string(),
                    ))
                }
                None if audiences.len() > 1 => {
                    return Err(JwtError::WrongAudience(
                        "it names several audiences and no `azp`".to_string(),
                    ))
                }
                _ => {}
            }
        }
        let expires = self
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(JwtError::MissingClaim("exp"))?;
        if expected.now > expires.saturating_add(expected.leeway) {
            return Err(JwtError::Expired(expires));
        }
        for claim in ["nbf", "iat"] {
            match self.claims.get(claim) {
                None => {}
                Some(value) => {
                    let at = value
                        .as_i64()
                        .ok_or(JwtError::MissingClaim(if claim == "nbf" {
                            "nbf"
                        } else {
                            "iat"
                        }))?;
                    if at > expected.now.saturating_add(expected.leeway) {
                        return Err(JwtError::NotYetValid(if claim == "nbf" {
                            "`nbf`"
                        } else {
                            "`iat`"
                        }));
                    }
                }
            }
        }
        match self.claims.get("sub").and_then(Value::as_str) {
            Some(subject) if !subject.is_empty() && subject.len() <= 255 => Ok(()),
            _ => Err(JwtError::MissingClaim("sub")),
        }
    }

    /// The `sub` claim (present once [`Verified::check`] passed).
    pub fn subject(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token_with(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    fn claims(now: i64) -> Value {
        serde_json::json!({"iss": "https://idp.example", "aud": "custody", "sub": "u1",
            "exp": now + 300, "iat": now})
    }

    fn expectations(now: i64) -> Expectations<'static> {
        Expectations {
            issuer: "https://idp.example",
            audience: "custody",
            authorized_parties: None,
            now,
            leeway: 60,
        }
    }

    struct Keys {
        ed: Ed25519KeyPair,
        ec: EcdsaKeyPair,
        set: KeySet,
    }

    fn keys() -> Keys {
        let random = SystemRandom::new();
        let ed = Ed25519KeyPair::from_pkcs8(
            Ed25519KeyPair::generate_pkcs8(&random)
                .expect("generate")
                .as_ref(),
        )
        .expect("ed25519");
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let ec = EcdsaKeyPair::from_pkcs8(
            alg,
            EcdsaKeyPair::generate_pkcs8(alg, &random)
                .expect("generate")
                .as_ref(),
            &random,
        )
        .expect("p256");
        let point = ec.public_key().as_ref();
        let set = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig",
             "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "oct", "kid": "secret", "k": b64(b"shared")},
        ]});
        Keys {
            ed,
            ec,
            set: KeySet::parse(set.to_string().as_bytes()).expect("key set"),
        }
    }

    #[test]
    fn good_tokens_verify_and_each_forgery_is_refused() {
        let keys = keys();
        let now = 1_800_000_000;
        let random = SystemRandom::new();
        let ed = |header: &Value, claims: &Value| {
            token_with(header, claims, |input| {
                keys.ed.sign(input).as_ref().to_vec()
            })
        };
        let ec = |header: &Value, claims: &Value| {
            token_with(header, claims, |input| {
                keys.ec
                    .sign(&random, input)
                    .expect("sign")
                    .as_ref()
                    .to_vec()
            })
        };
        let check = |token: &str| -> Result<(), JwtError> {
            let verified = parse(token)?.verify(&keys.set)?;
            verified.check(&expectations(now))
        };
        let ed_header = serde_json::json!({"alg": "EdDSA", "kid": "ed"});
        let ec_header = serde_json::json!({"alg": "ES256", "kid": "ec"});
        assert_eq!(check(&ed(&ed_header, &claims(now))), Ok(()));
        assert_eq!(check(&ec(&ec_header, &claims(now))), Ok(()));
        // The table of refusals: each token is built for one.
        let mut expired = claims(now);
        expired["exp"] = (now - 61).into();
        let mut early = claims(now);
        early["nbf"] = (now + 61).into();
        let mut future_iat = claims(now);
        future_iat["iat"] = (now + 3600).into();
        let mut wrong_iss = claims(now);
        wrong_iss["iss"] = "https://evil.example".into();
        let mut wrong_aud = claims(now);
        wrong_aud["aud"] = serde_json::json!(["other", "another"]);
        let mut no_sub = claims(now);
        no_sub.as_object_mut().expect("object").remove("sub");
        let good = ed(&ed_header, &claims(now));
        let mut tampered = good.clone();
        tampered.replace_range(good.len() - 4.., "AAAA");
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(claims(now).to_string().as_bytes())
        );
        let hs = token_with(
            &serde_json::json!({"alg": "HS256", "kid": "secret"}),
            &claims(now),
            |_| vec![0; 32],
        );
        type Case = (&'static str, String, fn(&JwtError) -> bool);
        let cases: Vec<Case> = vec![
            ("expired", ed(&ed_header, &expired), |e| {
                matches!(e, JwtError::Expired(_))
            }),
            ("nbf in the future", ed(&ed_header, &early), |e| {
                matches!(e, JwtError::NotYetValid(_))
            }),
            ("iat in the future", ed(&ed_header, &future_iat), |e| {
                matches!(e, JwtError::NotYetValid(_))
            }),
            ("wrong issuer", ed(&ed_header, &wrong_iss), |e| {
                matches!(e, JwtError::WrongIssuer { .. })
            }),
            ("wrong audience", ed(&ed_header, &wrong_aud), |e| {
                matches!(e, JwtError::WrongAudience(_))
            }),
            ("no subject", ed(&ed_header, &no_sub), |e| {
                matches!(e, JwtError::MissingClaim("sub"))
            }),
            ("bad signature", tampered, |e| {
                matches!(e, JwtError::BadSignature)
            }),
            ("alg none", none, |e| matches!(e, JwtError::Algorithm(_))),
            ("HS256", hs, |e| matches!(e, JwtError::Algorithm(_))),
            (
                "unknown kid",
                ed(
                    &serde_json::json!({"alg": "EdDSA", "kid": "gone"}),
                    &claims(now),
                ),
                |e| matches!(e, JwtError::UnknownKey(_)),
            ),
            (
                "EdDSA header, EC key",
                ed(
                    &serde_json::json!({"alg": "EdDSA", "kid": "ec"}),
                    &claims(now),
                ),
                |e| matches!(e, JwtError::KeyMismatch { .. }),
            ),
            (
                "ES384 header, ES256 key",
                ec(
                    &serde_json::json!({"alg": "ES384", "kid": "ec"}),
                    &claims(now),
                ),
                |e| matches!(e, JwtError::KeyMismatch { .. }),
            ),
            ("two parts", "a.b".to_string(), |e| {
                matches!(e, JwtError::Malformed(_))
            }),
            ("four parts", "a.b.c.d".to_string(), |e| {
                matches!(e, JwtError::Malformed(_))
            }),
            ("not base64", "!!.??.**".to_string(), |e| {
                matches!(e, JwtError::Malformed(_))
            }),
            ("too long", "a".repeat(MAX_TOKEN_BYTES + 1), |e| {
                matches!(e, JwtError::TooLong)
            }),
            (
                "header not an object",
                format!("{}.{}.", b64(b"[]"), b64(b"{}")),
                |e| matches!(e, JwtError::Malformed(_)),
            ),
        ];
        for (name, token, expected) in cases {
            let error = check(&token).expect_err(name);
            assert!(expected(&error), "{name}: refused as {error:?}");
            assert!(
                !error.to_string().contains(&token),
                "{name}: the message repeats the token"
            );
        }
    }

    #[test]
    fn a_key_set_with_too_many_keys_is_refused() {
        let keys: Vec<Value> = (0..=MAX_KEYS)
            .map(|index| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": index.to_string(), "x": b64(&[0; 32])}))
            .collect();
        let document = serde_json::json!({ "keys": keys }).to_string();
        assert!(KeySet::parse(document.as_bytes()).is_err());
        assert!(KeySet::parse(b"{}").is_err());
    }
}
