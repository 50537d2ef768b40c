//! Creating a deployment: the ledger (the embedded database in the data
//! directory, or the schema in PostgreSQL), the log's signing key in the
//! data directory, and the first admin principal; and opening it again,
//! checking that the data directory's key signs for the ledger's log.

use std::path::{Path, PathBuf};

use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_store::{Location, Store, StoreError, StoreOptions, DATABASE_FILE};
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
    /// The directory already holds a Custody database or signing key.
    #[error("{0} is already initialised")]
    AlreadyInitialised(String),
    /// The database already holds a deployment's ledger.
    #[error("{location} already holds the ledger of log `{origin}`\nhint: to add a node to that deployment, copy {key_file} from one of its nodes' data directories into {data_dir} and run `custody serve`")]
    DatabaseInUse {
        /// The database.
        location: String,
        /// Its log's origin.
        origin: String,
        /// The data directory that has no key.
        data_dir: String,
        /// The signing key's file name.
        key_file: &'static str,
    },
    /// The data directory's signing key signs for another log.
    #[error("the signing key in {data_dir} signs for log `{key_origin}`, but {location} holds the ledger of log `{ledger_origin}`\nhint: use the data directory of a node of that deployment, or copy its {key_file}")]
    WrongLog {
        /// The data directory.
        data_dir: String,
        /// The origin its key signs for.
        key_origin: String,
        /// The database.
        location: String,
        /// The origin of its log.
        ledger_origin: String,
        /// The signing key's file name.
        key_file: &'static str,
    },
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

/// Whether `data_dir` already holds a Custody database or signing key.
pub fn is_initialised(data_dir: &Path) -> bool {
    data_dir.join(DATABASE_FILE).exists() || data_dir.join(crate::keys::SIGNING_KEY_FILE).exists()
}

/// Initialises a new deployment and returns the open store and the report:
/// the ledger at `location`, and the signing key in `data_dir`.
///
/// `origin` names the log in every checkpoint (and its signing key); the
/// default, `custody.local/<16 random hex digits>`, is unique per deployment.
pub async fn initialise(
    data_dir: &Path,
    location: &Location,
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
    let store = Store::open_at(location, StoreOptions::default()).await?;
    if let Some(ledger_origin) = store.log_origin().await? {
        return Err(InitError::DatabaseInUse {
            location: location.to_string(),
            origin: ledger_origin,
            data_dir: data_dir.display().to_string(),
            key_file: crate::keys::SIGNING_KEY_FILE,
        });
    }
    let verifier = crate::keys::create(data_dir, &origin)
        .map_err(|error| InitError::Key(error.to_string()))?;
    let claimed = store.claim_log_origin(&origin).await?;
    if claimed != origin {
        // Another node initialised the same database a moment ago.
        let _ = std::fs::remove_file(data_dir.join(crate::keys::SIGNING_KEY_FILE));
        return Err(InitError::DatabaseInUse {
            location: location.to_string(),
            origin: claimed,
            data_dir: data_dir.display().to_string(),
            key_file: crate::keys::SIGNING_KEY_FILE,
        });
    }
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

/// What [`open_or_initialise`] did.
pub enum Opened {
    /// The deployment existed; its store is open.
    Existing(Store),
    /// The deployment was created now; the report holds the admin token.
    Created(Store, InitReport),
}

/// Opens the deployment for `custody serve`: initialises it when both the
/// data directory and the ledger are new, and otherwise checks that the data
/// directory's signing key signs for the ledger's log (recording the origin
/// for ledgers made before origins were recorded).
pub async fn open_or_initialise(data_dir: &Path, location: &Location) -> Result<Opened, InitError> {
    let has_key = data_dir.join(crate::keys::SIGNING_KEY_FILE).exists();
    if !has_key && !data_dir.join(DATABASE_FILE).exists() {
        let store = Store::open_at(location, StoreOptions::default()).await?;
        let ledger_origin = store.log_origin().await?;
        drop(store);
        if let Some(origin) = ledger_origin {
            return Err(InitError::DatabaseInUse {
                location: location.to_string(),
                origin,
                data_dir: data_dir.display().to_string(),
                key_file: crate::keys::SIGNING_KEY_FILE,
            });
        }
        let (store, report) = initialise(data_dir, location, None).await?;
        return Ok(Opened::Created(store, report));
    }
    let signer = crate::keys::LogSigner::load(data_dir)
        .map_err(|error| InitError::Key(error.to_string()))?;
    let store = Store::open_at(location, StoreOptions::default()).await?;
    let ledger_origin = store.claim_log_origin(&signer.origin).await?;
    if ledger_origin != signer.origin {
        return Err(InitError::WrongLog {
            data_dir: data_dir.display().to_string(),
            key_origin: signer.origin,
            location: location.to_string(),
            ledger_origin,
            key_file: crate::keys::SIGNING_KEY_FILE,
        });
    }
    Ok(Opened::Existing(store))
}
