//! Creating a deployment: the ledger (the embedded database in the data
//! directory, or the schema in PostgreSQL), the log's signing key in the
//! data directory, and the first admin principal; and opening it again,
//! checking that the data directory's key signs for the ledger's log.
//!
//! # Crash safety
//!
//! Initialisation runs in this order, so that a crash at any point leaves a
//! state the next `custody serve` (or `custody init`) recognises:
//!
//! 1. the data directory (mode 0700) and, for the embedded store, an empty
//!    `custody.db` (mode 0600, so SQLite's WAL and SHM files inherit 0600);
//! 2. the schema;
//! 3. the `admin` principal and a bearer token for it;
//! 4. the signing key: written to a temporary file, fsynced, renamed into
//!    place, and the directory fsynced;
//! 5. last, the log's origin is recorded in the ledger
//!    ([`Store::claim_log_origin`]): this is what marks the deployment as
//!    initialised.
//!
//! A ledger without a recorded origin that has no case, no checkpoint and no
//! principal but `admin` has never been used: nobody was ever shown a token
//! that works on it, and no checkpoint was ever signed for it (its log may
//! hold the record of the admin's creation, never signed). Such
//! a half-initialised deployment is completed (a new admin token is issued
//! and shown; a key left by the interrupted attempt is kept), unless the
//! data directory's `checkpoints` file shows that its key has signed
//! before: an empty ledger (a zero-byte `custody.db`, or a new empty
//! database) beside a key that signed is a lost ledger, and completing it
//! would sign a second history with the same key. Every such state is
//! refused with a message that says what to do: a key without its
//! database, a key that signed beside an empty ledger, a ledger whose
//! origin is recorded but whose key is missing, a used ledger with neither
//! origin nor key.
//!
//! # File modes
//!
//! On Unix the data directory is 0700 and every file Custody writes in it is
//! 0600. On every start the data directory and the entries directly in it
//! lose any group and other permissions they were given (for example by an
//! older version), so the database, its WAL and SHM, the signing key and
//! the checkpoints file are readable by their owner only.

use std::path::{Path, PathBuf};

use custody_core::model::{Principal, PrincipalId, PrincipalKind};
use custody_store::checkpoint_file::CHECKPOINTS_FILE;
use custody_store::{Location, Store, StoreError, StoreOptions, DATABASE_FILE};
use serde::Serialize;

use crate::keys::{LogSigner, SIGNING_KEY_FILE};

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
    /// True when this completed an initialisation that was interrupted
    /// earlier (a crash, a kill) rather than starting a new one.
    #[serde(skip)]
    pub resumed: bool,
}

/// Why a data directory could not be initialised or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The deployment is already initialised.
    #[error("{0} is already initialised\nhint: start it with `custody serve --data {0}`; its admin token was printed when it was initialised, and admins can issue more with `custody token create`")]
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
    /// The data directory holds a signing key but no embedded database.
    #[error("{data_dir} holds the log signing key {key_file} but no ledger ({database_file} is missing): starting would begin a second history signed with the same key\nhint: restore {database_file} (with {database_file}-wal if there is one) from a backup of {data_dir}; if this node keeps its ledger in PostgreSQL, pass --database-url; to start a new deployment instead, move {data_dir} aside (keep {key_file} while checkpoints it signed must stay verifiable) and run the command again")]
    KeyWithoutDatabase {
        /// The data directory.
        data_dir: String,
        /// The signing key's file name.
        key_file: &'static str,
        /// The database's file name.
        database_file: &'static str,
    },
    /// The data directory's key has signed checkpoints (its `checkpoints`
    /// file holds them), but the ledger is empty.
    #[error("{data_dir} holds the log signing key {key_file} and checkpoints it signed ({checkpoints_file}), but its ledger is empty ({location} holds no history): starting would begin a second history signed with the same key\nhint: restore {database_file} (with {database_file}-wal if there is one) from a backup of {data_dir}; if this node keeps its ledger in PostgreSQL, pass the --database-url of that ledger; to start a new deployment instead, move {data_dir} aside (keep {key_file} and {checkpoints_file} while checkpoints it signed must stay verifiable) and run the command again")]
    KeySignedWithoutLedger {
        /// The data directory.
        data_dir: String,
        /// The signing key's file name.
        key_file: &'static str,
        /// The checkpoints file's name.
        checkpoints_file: &'static str,
        /// The ledger (the embedded file's name, or the database).
        location: String,
        /// The database's file name.
        database_file: &'static str,
    },
    /// The embedded ledger belongs to a log whose signing key is missing.
    #[error("{location} holds the ledger of log `{origin}` (log size {entries}), but {data_dir} has no {key_file}: no checkpoint can be signed for it\nhint: {hint}")]
    KeyMissing {
        /// The database.
        location: String,
        /// Its log's origin.
        origin: String,
        /// Entries in its log.
        entries: u64,
        /// The data directory.
        data_dir: String,
        /// The signing key's file name.
        key_file: &'static str,
        /// What to do.
        hint: String,
    },
    /// The ledger was used but has neither a recorded origin nor a key.
    #[error("{location} holds a ledger that was used (log size {entries}) without a recorded log origin, and {data_dir} has no {key_file}\nhint: copy the deployment's {key_file} into {data_dir} (from a backup, or from another node of the deployment) and run the command again")]
    LedgerWithoutKey {
        /// The database.
        location: String,
        /// Entries in its log.
        entries: u64,
        /// The data directory.
        data_dir: String,
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
    /// The signing key could not be read.
    #[error("cannot read the log signing key: {0}")]
    KeyUnreadable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `data_dir` holds a Custody database or signing key (complete or
/// not: [`open_or_initialise`] tells the two apart).
pub fn is_initialised(data_dir: &Path) -> bool {
    data_dir.join(DATABASE_FILE).exists() || data_dir.join(SIGNING_KEY_FILE).exists()
}

/// Initialises a new deployment and returns the open store and the report:
/// the ledger at `location`, and the signing key in `data_dir`. Completes
/// a deployment whose initialisation was interrupted before it was ever
/// used; refuses one that is initialised.
///
/// `origin` names the log in every checkpoint (and its signing key); the
/// default, `custody.local/<16 random hex digits>`, is unique per deployment.
pub async fn initialise(
    data_dir: &Path,
    location: &Location,
    origin: Option<&str>,
) -> Result<(Store, InitReport), InitError> {
    match open_deployment(data_dir, location, origin, StoreOptions::default()).await? {
        Opened::Created(store, report) => Ok((store, report)),
        Opened::Existing(_) => Err(InitError::AlreadyInitialised(
            data_dir.display().to_string(),
        )),
    }
}

/// What [`open_or_initialise`] did.
pub enum Opened {
    /// The deployment existed; its store is open.
    Existing(Store),
    /// The deployment was created now (or its interrupted initialisation
    /// was completed now); the report holds the admin token.
    Created(Store, InitReport),
}

/// Opens the deployment for `custody serve`: initialises it when it is new
/// (or completes an initialisation that was interrupted before the
/// deployment was ever used), and otherwise checks that the data
/// directory's signing key signs for the ledger's log (recording the origin
/// for ledgers made before origins were recorded). The store is opened with
/// `store_options` (`custody serve` gives the defaults; a test, its clock).
pub async fn open_or_initialise(
    data_dir: &Path,
    location: &Location,
    store_options: StoreOptions,
) -> Result<Opened, InitError> {
    open_deployment(data_dir, location, None, store_options).await
}

/// What the ledger holds, to judge whether it was ever used.
struct Usage {
    entries: u64,
    checkpointed: bool,
    has_cases: bool,
    principals: Vec<PrincipalId>,
}

impl Usage {
    async fn of(store: &Store) -> Result<Usage, InitError> {
        Ok(Usage {
            entries: store.log_size().await?,
            checkpointed: store.latest_checkpoint().await?.is_some(),
            has_cases: !store.cases(None, 1).await?.is_empty(),
            principals: store
                .principals()
                .await?
                .into_iter()
                .map(|principal| principal.id)
                .collect(),
        })
    }

    /// Never used: no case, no checkpoint (nothing in its log was ever
    /// signed), nobody but `admin`.
    fn unused(&self) -> bool {
        !self.has_cases
            && !self.checkpointed
            && self
                .principals
                .iter()
                .all(|id| id.as_str() == ADMIN_PRINCIPAL)
    }
}

async fn open_deployment(
    data_dir: &Path,
    location: &Location,
    origin: Option<&str>,
    store_options: StoreOptions,
) -> Result<Opened, InitError> {
    let data_dir_text = data_dir.display().to_string();
    let has_key = data_dir.join(SIGNING_KEY_FILE).exists();
    let embedded = matches!(location, Location::Embedded(_));
    if let Location::Embedded(directory) = location {
        if has_key && !directory.join(DATABASE_FILE).exists() {
            return Err(InitError::KeyWithoutDatabase {
                data_dir: data_dir_text,
                key_file: SIGNING_KEY_FILE,
                database_file: DATABASE_FILE,
            });
        }
    }
    // A key that has signed (its checkpoints are in the data directory)
    // beside an empty ledger: completing an "interrupted initialisation"
    // would sign a second history with the same key.
    let has_signed = has_key && has_signed_checkpoints(data_dir);
    let key_signed_without_ledger = |location: String| InitError::KeySignedWithoutLedger {
        data_dir: data_dir_text.clone(),
        key_file: SIGNING_KEY_FILE,
        checkpoints_file: CHECKPOINTS_FILE,
        location,
        database_file: DATABASE_FILE,
    };
    if let Location::Embedded(directory) = location {
        let empty_file = std::fs::metadata(directory.join(DATABASE_FILE))
            .is_ok_and(|metadata| metadata.len() == 0);
        if has_signed && empty_file {
            return Err(key_signed_without_ledger(DATABASE_FILE.to_string()));
        }
    }
    let signer = if has_key {
        Some(
            LogSigner::load(data_dir)
                .map_err(|error| InitError::KeyUnreadable(error.to_string()))?,
        )
    } else {
        None
    };
    if let Some(wanted) = origin {
        if !custody_log::note::is_valid_key_name(wanted) {
            return Err(InitError::Key(format!(
                "`{wanted}` cannot be a log origin: use a non-empty name without spaces or '+', such as example.com/custody"
            )));
        }
        if let Some(signer) = &signer {
            if signer.origin != wanted {
                return Err(InitError::Key(format!(
                    "{} already holds a signing key for log `{}`, not `{wanted}`",
                    data_dir.join(SIGNING_KEY_FILE).display(),
                    signer.origin
                )));
            }
        }
    }
    create_private_directory(data_dir)?;
    if let Location::Embedded(directory) = location {
        create_private_directory(directory)?;
        create_private_file(&directory.join(DATABASE_FILE))?;
    }
    let store = Store::open_at(location, store_options).await?;
    secure_directory(data_dir);
    if let Location::Embedded(directory) = location {
        if directory != data_dir {
            secure_directory(directory);
        }
    }
    let usage = Usage::of(&store).await?;
    match (store.log_origin().await?, signer) {
        (Some(ledger_origin), Some(signer)) if ledger_origin != signer.origin => {
            Err(InitError::WrongLog {
                data_dir: data_dir_text,
                key_origin: signer.origin,
                location: location.to_string(),
                ledger_origin,
                key_file: SIGNING_KEY_FILE,
            })
        }
        (Some(_), Some(_)) if has_signed && usage.unused() && usage.principals.is_empty() => {
            Err(key_signed_without_ledger(ledger_name(location)))
        }
        (Some(_), Some(signer)) => {
            if usage.unused() && usage.principals.is_empty() {
                // An initialisation by an older version, which recorded the
                // origin before adding the admin, stopped in between: there
                // is no principal, so nobody can have used it.
                complete(store, data_dir, location, Some(signer), None).await
            } else {
                Ok(Opened::Existing(store))
            }
        }
        (Some(ledger_origin), None) if embedded => {
            let hint = if usage.unused() {
                format!(
                    "it holds no case and no checkpoint, so it was left by an interrupted initialisation: remove {} (and {}-wal, {}-shm if present) and run the command again",
                    data_dir.join(DATABASE_FILE).display(),
                    DATABASE_FILE,
                    DATABASE_FILE
                )
            } else {
                format!(
                    "restore {SIGNING_KEY_FILE} into {data_dir_text} from a backup of this data directory; Custody will not make a new key for a ledger that was used"
                )
            };
            Err(InitError::KeyMissing {
                location: location.to_string(),
                origin: ledger_origin,
                entries: usage.entries,
                data_dir: data_dir_text,
                key_file: SIGNING_KEY_FILE,
                hint,
            })
        }
        (Some(ledger_origin), None) => Err(InitError::DatabaseInUse {
            location: location.to_string(),
            origin: ledger_origin,
            data_dir: data_dir_text,
            key_file: SIGNING_KEY_FILE,
        }),
        (None, Some(_)) if has_signed && usage.unused() => {
            Err(key_signed_without_ledger(ledger_name(location)))
        }
        (None, signer) if usage.unused() => {
            complete(store, data_dir, location, signer, origin).await
        }
        (None, Some(signer)) => {
            // A ledger made before origins were recorded: record it now.
            let ledger_origin = store.claim_log_origin(&signer.origin).await?;
            if ledger_origin != signer.origin {
                return Err(InitError::WrongLog {
                    data_dir: data_dir_text,
                    key_origin: signer.origin,
                    location: location.to_string(),
                    ledger_origin,
                    key_file: SIGNING_KEY_FILE,
                });
            }
            Ok(Opened::Existing(store))
        }
        (None, None) => Err(InitError::LedgerWithoutKey {
            location: location.to_string(),
            entries: usage.entries,
            data_dir: data_dir_text,
            key_file: SIGNING_KEY_FILE,
        }),
    }
}

/// Whether the data directory's `checkpoints` file holds anything: its key
/// has signed a checkpoint.
fn has_signed_checkpoints(data_dir: &Path) -> bool {
    std::fs::metadata(data_dir.join(CHECKPOINTS_FILE)).is_ok_and(|metadata| metadata.len() > 0)
}

/// How an empty ledger is named in a refusal: the embedded file's name, or
/// the database.
fn ledger_name(location: &Location) -> String {
    match location {
        Location::Embedded(_) => DATABASE_FILE.to_string(),
        Location::Postgres(_) => location.to_string(),
    }
}

/// Steps 3 to 5 of the initialisation (see the module documentation) on a
/// ledger that was never used: the admin and its token, the key (unless one
/// is given), and last the origin.
async fn complete(
    store: Store,
    data_dir: &Path,
    location: &Location,
    signer: Option<LogSigner>,
    origin: Option<&str>,
) -> Result<Opened, InitError> {
    // Safe: a constant that satisfies the naming rule.
    let admin_id: PrincipalId = ADMIN_PRINCIPAL
        .parse()
        .expect("`admin` is a valid principal name");
    // An interrupted attempt may have added the admin already (or another
    // node initialising the same PostgreSQL database just did).
    let resumed = signer.is_some() || store.principal(&admin_id).await?.is_some();
    match store
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
        .await
    {
        Ok(_) | Err(StoreError::PrincipalExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    // A token made by an interrupted attempt was never shown: it is only a
    // hash in the store, and nobody holds its secret.
    let token = store.create_token(admin_id.clone(), None, None).await?;
    let (origin, verifier, wrote_key) = match signer {
        Some(signer) => {
            let verifier = signer
                .verifier_keys()
                .into_iter()
                .next()
                .ok_or_else(|| InitError::KeyUnreadable("the key file holds no key".into()))?;
            (signer.origin, verifier, false)
        }
        None => {
            let origin = match origin {
                Some(origin) => origin.to_string(),
                None => {
                    let mut suffix = [0u8; 8];
                    getrandom::fill(&mut suffix).map_err(|error| {
                        InitError::Key(format!("no randomness available: {error}"))
                    })?;
                    // Unique per deployment, so checkpoints of two
                    // deployments can never be confused for one another.
                    format!("custody.local/{}", custody_core::hex::encode(&suffix))
                }
            };
            let verifier = crate::keys::create(data_dir, &origin)
                .map_err(|error| InitError::Key(error.to_string()))?;
            (origin, verifier, true)
        }
    };
    // Last: recording the origin marks the deployment as initialised.
    let claimed = store.claim_log_origin(&origin).await?;
    if claimed != origin {
        // Another node initialised the same database a moment ago. The
        // token made here is never shown (only its hash is stored, so nobody
        // holds it), and the key made here is not the deployment's.
        if wrote_key {
            let _ = std::fs::remove_file(data_dir.join(SIGNING_KEY_FILE));
        }
        return Err(InitError::DatabaseInUse {
            location: location.to_string(),
            origin: claimed,
            data_dir: data_dir.display().to_string(),
            key_file: SIGNING_KEY_FILE,
        });
    }
    Ok(Opened::Created(
        store,
        InitReport {
            data_dir: data_dir.to_path_buf(),
            admin_token: token.token,
            verifier_key: verifier.to_string(),
            resumed,
        },
    ))
}

/// Creates `directory` with mode 0700 when it does not exist (its missing
/// parents get the default mode).
fn create_private_directory(directory: &Path) -> Result<(), InitError> {
    if directory.is_dir() {
        return Ok(());
    }
    let io_error = |source| InitError::Io {
        path: directory.display().to_string(),
        source,
    };
    if let Some(parent) = directory
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(directory) {
        Ok(()) => Ok(()),
        // Made by a concurrent start a moment ago.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && directory.is_dir() => {
            Ok(())
        }
        Err(source) => Err(io_error(source)),
    }
}

/// Creates an empty file with mode 0600 unless it exists. SQLite opens an
/// empty file as an empty database, and gives the WAL and SHM files it
/// makes beside it the database file's mode.
fn create_private_file(path: &Path) -> Result<(), InitError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(InitError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Takes group and other permissions away from `directory` and from every
/// file and directory directly in it. Best effort: what cannot be changed
/// (another owner, a read-only file system) is logged and left alone.
pub fn secure_directory(directory: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = |path: &Path, metadata: std::fs::Metadata| {
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 == 0 {
                return;
            }
            let tightened = mode & !0o077;
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened)) {
                Ok(()) => tracing::info!(
                    path = %path.display(),
                    from = %format!("{mode:04o}"),
                    to = %format!("{tightened:04o}"),
                    "took group and other permissions away"
                ),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    %error,
                    "cannot take group and other permissions away"
                ),
            }
        };
        if let Ok(metadata) = std::fs::metadata(directory) {
            tighten(directory, metadata);
        }
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            // Symbolic links are left alone: their target is not ours to change.
            if let Ok(metadata) = std::fs::symlink_metadata(entry.path()) {
                if metadata.is_file() || metadata.is_dir() {
                    tighten(&entry.path(), metadata);
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = directory;
}
