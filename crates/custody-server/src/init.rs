//! Creating a data directory: the embedded database, the log's signing key
//! and the first admin principal.

use std::io::Write;
use std::path::{Path, PathBuf};

use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_log::note::SignerKey;
use custody_store::{Store, StoreError, DATABASE_FILE};
use serde::Serialize;

/// The file holding the log's private signing key (mode 0600).
pub const SIGNING_KEY_FILE: &str = "log-signing.key";
/// The name of the first admin principal.
pub const ADMIN_PRINCIPAL: &str = "admin";

/// What `custody init` reports; the token is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The first admin's bearer token.
    pub admin_token: String,
    /// The log's verifier key (`name+keyid+base64`), for offline verification.
    pub verifier_key: String,
}

/// Why a data directory could not be initialised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The directory already holds a Custody database.
    #[error("{0} is already initialised (it holds {DATABASE_FILE})")]
    AlreadyInitialised(String),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The signing key could not be made.
    #[error("cannot create the log signing key: {0}")]
    Key(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `data_dir` already holds a Custody database.
pub fn is_initialised(data_dir: &Path) -> bool {
    data_dir.join(DATABASE_FILE).exists()
}

/// Initialises a new data directory and returns the open store and the report.
pub async fn initialise(data_dir: &Path) -> Result<(Store, InitReport), InitError> {
    if is_initialised(data_dir) {
        return Err(InitError::AlreadyInitialised(
            data_dir.display().to_string(),
        ));
    }
    let io_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| InitError::Io { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    let mut origin_suffix = [0u8; 8];
    getrandom_fill(&mut origin_suffix)?;
    // A unique key name per deployment, so checkpoints from two deployments
    // can never be confused for one another.
    let key_name = format!(
        "custody.local/{}",
        custody_core::hex::encode(&origin_suffix)
    );
    let signer =
        SignerKey::generate(&key_name).map_err(|error| InitError::Key(error.to_string()))?;
    let key_path = data_dir.join(SIGNING_KEY_FILE);
    write_private_file(&key_path, signer.to_secret_string().as_bytes())
        .map_err(io_error(&key_path))?;

    let store = Store::open(data_dir).await?;
    // Safe: a constant that satisfies the naming rule.
    let admin_id: PrincipalId = ADMIN_PRINCIPAL
        .parse()
        .expect("`admin` is a valid principal name");
    store
        .add_principal(
            Principal {
                id: admin_id.clone(),
                display_name: "Administrator".to_string(),
                kind: PrincipalKind::Human,
                groups: vec![crate::ADMINS_GROUP.to_string()],
                org: None,
            },
            None,
        )
        .await?;
    let token = store.create_token(admin_id, None, None).await?;
    Ok((
        store,
        InitReport {
            data_dir: data_dir.to_path_buf(),
            admin_token: token.token,
            verifier_key: signer.verifier_key().to_string(),
        },
    ))
}

fn getrandom_fill(buffer: &mut [u8]) -> Result<(), InitError> {
    getrandom::fill(buffer)
        .map_err(|error| InitError::Key(format!("no randomness available: {error}")))
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}
