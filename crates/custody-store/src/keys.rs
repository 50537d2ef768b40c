//! The log's signing keys in the data directory, and their rotation.
//!
//! `log-signing.key` holds one or more C2SP signer keys, one per line; every
//! key signs every checkpoint, so a new key can be added, published and
//! trusted by verifiers before the old one is retired (no flag day). All keys
//! share one name, which is the log's origin line. `log-retired-keys` holds
//! the verifier keys of retired signers, so checkpoints they signed stay
//! verifiable.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use custody_log::note::{SignerKey, VerifierKey};

/// The file of private signer keys (mode 0600).
pub const SIGNING_KEY_FILE: &str = "log-signing.key";
/// The file of retired verifier keys (public).
pub const RETIRED_KEYS_FILE: &str = "log-retired-keys";

/// The keys that sign this deployment's checkpoints.
#[derive(Clone)]
pub struct LogSigner {
    /// The origin line of every checkpoint (the keys' shared name).
    pub origin: String,
    /// The signers, oldest first.
    pub signers: Arc<Vec<SignerKey>>,
}

/// Why the keys could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A key file holds something that is not a key.
    #[error("{path} line {line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The signing key file holds no key, or keys with different names.
    #[error("{0}")]
    Inconsistent(String),
    /// No signer has that key ID.
    #[error("no signing key has ID {0}; `custody log keys` lists them")]
    UnknownKey(String),
}

impl LogSigner {
    /// Reads the signing keys of a data directory.
    pub fn load(data_dir: &Path) -> Result<LogSigner, KeyError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let signers = read_lines(&path)?
            .into_iter()
            .map(|(line, text)| {
                SignerKey::parse(&text).map_err(|error| KeyError::Malformed {
                    path: path.display().to_string(),
                    line,
                    message: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let origin = signers
            .first()
            .map(|signer| signer.name().to_string())
            .ok_or_else(|| {
                KeyError::Inconsistent(format!("{} holds no signing key", path.display()))
            })?;
        if signers.iter().any(|signer| signer.name() != origin) {
            return Err(KeyError::Inconsistent(format!(
                "the keys in {} have different names; every key must be named after the origin `{origin}`",
                path.display()
            )));
        }
        Ok(LogSigner {
            origin,
            signers: Arc::new(signers),
        })
    }

    /// Verifier keys of the current signers.
    pub fn verifier_keys(&self) -> Vec<VerifierKey> {
        self.signers.iter().map(SignerKey::verifier_key).collect()
    }
}

/// Every verifier key of a data directory: current signers, then retired ones.
pub fn trusted_keys(data_dir: &Path) -> Result<Vec<VerifierKey>, KeyError> {
    let mut keys = LogSigner::load(data_dir)?.verifier_keys();
    keys.extend(retired_keys(data_dir)?);
    Ok(keys)
}

/// The verifier keys of retired signers.
pub fn retired_keys(data_dir: &Path) -> Result<Vec<VerifierKey>, KeyError> {
    let path = data_dir.join(RETIRED_KEYS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_lines(&path)?
        .into_iter()
        .map(|(line, text)| {
            VerifierKey::parse(&text).map_err(|error| KeyError::Malformed {
                path: path.display().to_string(),
                line,
                message: error.to_string(),
            })
        })
        .collect()
}

/// Writes a new signing key file with one key named `origin`.
pub fn create(data_dir: &Path, origin: &str) -> Result<VerifierKey, KeyError> {
    let signer = SignerKey::generate(origin).map_err(|error| {
        KeyError::Inconsistent(format!(
            "cannot create a signing key named `{origin}`: {error}"
        ))
    })?;
    let path = data_dir.join(SIGNING_KEY_FILE);
    write_private(
        &path,
        &format!("{}\n", signer.to_secret_string().as_str()),
        true,
    )?;
    Ok(signer.verifier_key())
}

/// Adds a signing key with the same name; from the next server start, both
/// sign every checkpoint.
pub fn add(data_dir: &Path) -> Result<VerifierKey, KeyError> {
    let current = LogSigner::load(data_dir)?;
    let signer = SignerKey::generate(&current.origin)
        .map_err(|error| KeyError::Inconsistent(format!("cannot create a signing key: {error}")))?;
    let mut text = String::new();
    for existing in current.signers.iter() {
        text.push_str(existing.to_secret_string().as_str());
        text.push('\n');
    }
    text.push_str(signer.to_secret_string().as_str());
    text.push('\n');
    write_private(&data_dir.join(SIGNING_KEY_FILE), &text, false)?;
    Ok(signer.verifier_key())
}

/// Retires the signer with `key_id` (8 hex digits): it stops signing, and its
/// verifier key moves to the retired file so its checkpoints stay verifiable.
pub fn retire(data_dir: &Path, key_id: &str) -> Result<VerifierKey, KeyError> {
    let current = LogSigner::load(data_dir)?;
    let wanted =
        u32::from_str_radix(key_id, 16).map_err(|_| KeyError::UnknownKey(key_id.to_string()))?;
    let (retired, kept): (Vec<&SignerKey>, Vec<&SignerKey>) = current
        .signers
        .iter()
        .partition(|signer| signer.key_id() == wanted);
    let retired = retired
        .first()
        .ok_or_else(|| KeyError::UnknownKey(key_id.to_string()))?;
    if kept.is_empty() {
        return Err(KeyError::Inconsistent(
            "cannot retire the last signing key; add a new one first with `custody log add-key`"
                .to_string(),
        ));
    }
    let verifier = retired.verifier_key();
    let retired_path = data_dir.join(RETIRED_KEYS_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&retired_path)
        .map_err(io_error(&retired_path))?;
    writeln!(file, "{verifier}").map_err(io_error(&retired_path))?;
    file.sync_all().map_err(io_error(&retired_path))?;
    let mut text = String::new();
    for signer in kept {
        text.push_str(signer.to_secret_string().as_str());
        text.push('\n');
    }
    write_private(&data_dir.join(SIGNING_KEY_FILE), &text, false)?;
    Ok(verifier)
}

fn read_lines(path: &Path) -> Result<Vec<(usize, String)>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line.trim().to_string()))
        .collect())
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a private file with mode 0600, atomically (a new temporary file,
/// fsync, rename, fsync of the directory); with `create_new`, refuses a
/// file that exists.
pub fn write_private(path: &Path, contents: &str, create_new: bool) -> Result<(), KeyError> {
    if create_new && path.exists() {
        return Err(KeyError::Inconsistent(format!(
            "{} already exists",
            path.display()
        )));
    }
    let temporary = path.with_extension("tmp");
    // A temporary file left by a crash is replaced, never reused: its mode
    // could be wider than 0600.
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(&temporary)(error)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(io_error(&temporary))?;
    file.write_all(contents.as_bytes())
        .map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io_error(path))?;
    // The rename is durable only once the directory is synced.
    #[cfg(unix)]
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io_error(directory))?;
    }
    Ok(())
}
