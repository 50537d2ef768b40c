//! Creating a data directory: the embedded database, the log's signing key
//! and the first admin principal.

use std::path::{Path, PathBuf};

use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_store::{Store, StoreError, DATABASE_FILE};
use serde::Serialize;

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
///
/// `origin` names the log in every checkpoint (and its signing key); the
/// default, `custody.local/<16 random hex digits>`, is unique per deployment.
pub async fn initialise(
    data_dir: &Path,
    origin: Option<&str>,
) -> Result<(Store, InitReport), InitError> {
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
    let origin = match origin {
        Some(origin) if custody_log::note::is_valid_key_name(origin) => origin.to_string(),
        Some(origin) => {
            return Err(InitError::Key(format!(
                "`{origin}` cannot be a log origin: use a non-empty name without spaces or '+', such as example.com/custody"
            )))
        }
        None => {
            let mut suffix = [0u8; 8];
            getrandom_fill(&mut suffix)?;
            // Unique per deployment, so checkpoints of two deployments can
            // never be confused for one another.
            format!("custody.local/{}", custody_core::hex::encode(&suffix))
        }
    };
    let verifier = crate::keys::create(data_dir, &origin)
        .map_err(|error| InitError::Key(error.to_string()))?;

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
            verifier_key: verifier.to_string(),
        },
    ))
}

fn getrandom_fill(buffer: &mut [u8]) -> Result<(), InitError> {
    getrandom::fill(buffer)
        .map_err(|error| InitError::Key(format!("no randomness available: {error}")))
}
