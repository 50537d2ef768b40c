//! HTTPS served by `custody serve` itself (`--tls-cert`, `--tls-key`, or
//! `[server] tls_cert` and `tls_key`), with rustls on the ring provider.
//!
//! The certificate chain and its key are PEM files. They are read and
//! checked before anything is served: a missing or unreadable file, a file
//! without a PEM certificate or key, a key that is not the certificate's,
//! and a certificate outside its validity period each stop the start with
//! what to do. [`Tls::reload`] reads them again (the binary calls it on
//! SIGHUP): a good pair replaces the one served for every new handshake; a
//! bad pair is refused and the served one stays.
//!
//! The connection loop ([`crate::connections`]) does the handshake under the
//! same limits as a request: the connection limit counts it, the
//! header-read timeout bounds it, and a client that speaks plain HTTP to
//! the TLS port is answered `400` in plain HTTP, naming `https://`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use custody_core::time::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The PEM files of the served certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub cert: PathBuf,
    /// The leaf's private key (PEM PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both files or neither: one alone is a usage error that says which is
    /// missing.
    pub fn pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "--tls-cert (server.tls_cert)",
                missing: "--tls-key (server.tls_key)",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: "--tls-key (server.tls_key)",
                missing: "--tls-cert (server.tls_cert)",
            }),
        }
    }
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// One of the two files was given without the other.
    #[error("{given} is set but {missing} is not\nhint: HTTPS needs both the certificate chain and its private key; give both, or neither to serve plain HTTP")]
    Incomplete {
        /// The setting that was given.
        given: &'static str,
        /// The setting that is missing.
        missing: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read the TLS {what} {path}: {source}\nhint: check the path and that this user may read it")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("the TLS certificate {path} holds no PEM certificate ({detail})\nhint: give a PEM file of `-----BEGIN CERTIFICATE-----` blocks, the server's certificate first")]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        detail: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("the TLS private key {path} holds no PEM private key ({detail})\nhint: give an unencrypted PEM key (`-----BEGIN PRIVATE KEY-----`, RSA or EC)")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader or the crypto provider said.
        detail: String,
    },
    /// The key is not the certificate's.
    #[error("the TLS private key {key} does not belong to the certificate {cert}\nhint: give the key the certificate was issued for")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate is past its validity period.
    #[error("the TLS certificate {path} expired at {not_after}\nhint: renew it; a client would refuse it")]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its `notAfter`.
        not_after: Timestamp,
    },
    /// The certificate's validity period has not begun.
    #[error("the TLS certificate {path} is not valid before {not_before}\nhint: check the clock of this machine, or wait; a client would refuse it")]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Its `notBefore`.
        not_before: Timestamp,
    },
    /// The certificate is not an X.509 certificate this server can read.
    #[error("the TLS certificate {path} is not a readable X.509 certificate ({detail})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// The certificate being served, as [`Tls::summary`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Certificates in the chain, the leaf included.
    pub chain_length: usize,
    /// The leaf's `notBefore`.
    pub not_before: Timestamp,
    /// The leaf's `notAfter`.
    pub not_after: Timestamp,
}

/// What the server serves HTTPS with: the rustls configuration (ALPN
/// `http/1.1`) over a certificate that [`Tls::reload`] can replace.
#[derive(Clone, Debug)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<CurrentCertificate>,
    config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Reads and checks the files at `now`.
    pub fn load(files: TlsFiles, now: Timestamp) -> Result<Tls, TlsError> {
        install_crypto_provider();
        let (certified, summary) = read_pair(&files, now)?;
        let current = Arc::new(CurrentCertificate {
            served: RwLock::new((Arc::new(certified), summary)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // Safe: the ring provider supports the default protocol versions.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// Reads the files again; a good pair is served from the next
    /// handshake on, a bad one is refused and the served pair stays.
    pub fn reload(&self, now: Timestamp) -> Result<CertificateSummary, TlsError> {
        let (certified, summary) = read_pair(&self.files, now)?;
        *self
            .current
            .served
            .write()
            .unwrap_or_else(PoisonError::into_inner) = (Arc::new(certified), summary.clone());
        Ok(summary)
    }

    /// The certificate being served.
    pub fn summary(&self) -> CertificateSummary {
        self.current
            .served
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// The files it serves.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The acceptor the connection loop hands each connection to.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// The certificate every new handshake gets.
#[derive(Debug)]
struct CurrentCertificate {
    served: RwLock<(Arc<CertifiedKey>, CertificateSummary)>,
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.served
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .clone(),
        )
    }
}

/// rustls is built without a default provider: the process's is ring.
/// Installing twice is harmless (the first one stays).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(
    files: &TlsFiles,
    now: Timestamp,
) -> Result<(CertifiedKey, CertificateSummary), TlsError> {
    let cert_pem = read_file("certificate", &files.cert)?;
    let key_pem = read_file("private key", &files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::NoCertificate {
            path: files.cert.clone(),
            detail: error.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
            detail: "no CERTIFICATE block".to_string(),
        });
    };
    let (not_before, not_after) = validity(leaf).map_err(|detail| TlsError::Malformed {
        path: files.cert.clone(),
        detail,
    })?;
    if now > not_after {
        return Err(TlsError::Expired {
            path: files.cert.clone(),
            not_after,
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: files.cert.clone(),
            not_before,
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::NoKey {
        path: files.key.clone(),
        detail: error.to_string(),
    })?;
    let summary = CertificateSummary {
        chain_length: chain.len(),
        not_before,
        not_after,
    };
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::NoKey {
            path: files.key.clone(),
            detail: error.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok((certified, summary)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(error) => Err(TlsError::Malformed {
            path: files.cert.clone(),
            detail: error.to_string(),
        }),
    }
}

/// The leaf's validity period, read from its DER: `Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } ...}`
/// (RFC 5280, section 4.1).
fn validity(certificate: &[u8]) -> Result<(Timestamp, Timestamp), String> {
    let malformed = |what: &str| format!("cannot read its {what}");
    let (certificate, _) =
        der_element(certificate, SEQUENCE).ok_or_else(|| malformed("outer SEQUENCE"))?;
    let (mut tbs, _) =
        der_element(certificate, SEQUENCE).ok_or_else(|| malformed("tbsCertificate"))?;
    if tbs.first() == Some(&VERSION) {
        tbs = der_element(tbs, VERSION)
            .ok_or_else(|| malformed("version"))?
            .1;
    }
    for (tag, what) in [
        (INTEGER, "serial number"),
        (SEQUENCE, "signature algorithm"),
        (SEQUENCE, "issuer"),
    ] {
        tbs = der_element(tbs, tag).ok_or_else(|| malformed(what))?.1;
    }
    let (validity, _) = der_element(tbs, SEQUENCE).ok_or_else(|| malformed("validity"))?;
    let (not_before, rest) = der_time(validity).ok_or_else(|| malformed("notBefore"))?;
    let (not_after, _) = der_time(rest).ok_or_else(|| malformed("notAfter"))?;
    Ok((not_before, not_after))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The contents of the DER element at the start of `input` if its tag is
/// `tag`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, input) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (length, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, input) = input.split_at_checked(count)?;
        let mut length = 0usize;
        for byte in bytes {
            length = length.checked_mul(256)?.checked_add(usize::from(*byte))?;
        }
        (length, input)
    };
    input.split_at_checked(length)
}

/// A `UTCTime` (`YYMMDDHHMMSSZ`, years 1950 to 2049) or `GeneralizedTime`
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 requires them, and what follows it.
fn der_time(input: &[u8]) -> Option<(Timestamp, &[u8])> {
    let (text, rest) = match *input.first()? {
        UTC_TIME => {
            let (text, rest) = der_element(input, UTC_TIME)?;
            let year: u32 = std::str::from_utf8(text.get(..2)?).ok()?.parse().ok()?;
            let century = if year < 50 { "20" } else { "19" };
            (
                format!("{century}{}", std::str::from_utf8(text).ok()?),
                rest,
            )
        }
        GENERALIZED_TIME => {
            let (text, rest) = der_element(input, GENERALIZED_TIME)?;
            (std::str::from_utf8(text).ok()?.to_string(), rest)
        }
        _ => return None,
    };
    if text.len() != 15 || !text.ends_with('Z') || !text[..14].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[8..10],
        &text[10..12],
        &text[12..14]
    );
    Timestamp::parse(&rfc3339).ok().map(|time| (time, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        assert!(TlsFiles::pair(None, None).unwrap().is_none());
        let error = TlsFiles::pair(Some("c.pem".into()), None).unwrap_err();
        assert!(error.to_string().contains("--tls-key"), "{error}");
        let error = TlsFiles::pair(None, Some("k.pem".into())).unwrap_err();
        assert!(error.to_string().contains("--tls-cert"), "{error}");
    }

    #[test]
    fn asn1_times_of_both_kinds_are_read() {
        let utc = [&[UTC_TIME, 13][..], b"260102030405Z"].concat();
        let generalized = [&[GENERALIZED_TIME, 15][..], b"20610102030405Z"].concat();
        let (time, rest) = der_time(&utc).unwrap();
        assert_eq!(time, Timestamp::parse("2026-01-02T03:04:05Z").unwrap());
        assert!(rest.is_empty());
        let (time, _) = der_time(&generalized).unwrap();
        assert_eq!(time, Timestamp::parse("2061-01-02T03:04:05Z").unwrap());
        let old = [&[UTC_TIME, 13][..], b"990102030405Z"].concat();
        assert_eq!(
            der_time(&old).unwrap().0,
            Timestamp::parse("1999-01-02T03:04:05Z").unwrap()
        );
        for bad in [
            &b""[..],
            &[UTC_TIME, 13, b'x'],
            &[UTC_TIME, 3, b'2', b'6', b'Z'],
        ] {
            assert!(der_time(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn truncated_der_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            assert!(validity(bad).is_err(), "{bad:?}");
        }
    }
}
