//! A minimal C2SP witness (`custody witness serve`): `POST /add-checkpoint`.
//!
//! It trusts the log keys it is started with (`--log-key`, repeatable; a
//! key's name is the origin of the log it signs), keeps the latest
//! checkpoint it cosigned for each origin in its data directory, and
//! cosigns a checkpoint only when it extends that one
//! ([`custody_log::witness::decide`]).
//!
//! The data directory holds:
//!
//! * `witness.key`: the witness's private key (mode 0600, created on the
//!   first start, never printed);
//! * `logs/<SHA-256 of the origin, hex>.checkpoint`: the latest checkpoint
//!   cosigned for that origin, as the log signed it. It is written before
//!   the cosignature is answered (temporary file, fsync, rename, fsync of
//!   the directory), so a restart keeps refusing what it refused before.
//!
//! Requests for one origin are decided one at a time (a lock per origin
//! held from the decision to the write), as the spec requires.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use custody_log::witness::{decide, AddCheckpoint, Decision, WitnessedSize, SIZE_CONTENT_TYPE};
use custody_log::{verify_checkpoint, CosignatureVerifier, CosignerKey, VerifierKey};
use tokio::sync::Mutex;

/// The witness's private key file in its data directory.
pub const KEY_FILE: &str = "witness.key";

/// The directory of the latest cosigned checkpoint per log.
pub const LOGS_DIR: &str = "logs";

/// The key name a witness gets when `--name` is not given.
pub const DEFAULT_NAME: &str = "custody-witness";

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// The running witness's state.
pub struct Witness {
    key: CosignerKey,
    log_keys: Vec<VerifierKey>,
    dir: PathBuf,
    /// The latest cosigned checkpoint per known origin.
    logs: BTreeMap<String, Mutex<Option<WitnessedSize>>>,
    clock: custody_core::time::SharedClock,
}

/// Reads the witness's key from `dir`.
pub fn read_key(dir: &Path) -> Result<CosignerKey, String> {
    let path = dir.join(KEY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "cannot read the witness key {}: {error}\nhint: `custody witness serve --data {}` creates it on its first start",
            path.display(),
            dir.display()
        )
    })?;
    let key = CosignerKey::parse(text.trim())
        .map_err(|error| format!("{} holds no witness key: {error}", path.display()))?;
    Ok(key)
}

/// Reads the witness's key from `dir`, or creates it (named `name`, or
/// [`DEFAULT_NAME`]) when the directory has none. Returns the key and
/// whether it was created. A `name` that differs from the existing key's
/// is refused: the name is part of the key's identity.
pub fn open_key(dir: &Path, name: Option<&str>) -> Result<(CosignerKey, bool), String> {
    if dir.join(KEY_FILE).exists() {
        let key = read_key(dir)?;
        if let Some(name) = name {
            if name != key.name() {
                return Err(format!(
                    "the witness key in {} is named `{}`, not `{name}`\nhint: leave --name out, or use another --data directory for another witness",
                    dir.display(),
                    key.name()
                ));
            }
        }
        // As `custody serve` does with its data directory: the key and
        // the directory lose group and other permissions.
        crate::init::secure_directory(dir);
        return Ok((key, false));
    }
    let name = name.unwrap_or(DEFAULT_NAME);
    let key = CosignerKey::generate(name).map_err(|error| {
        format!("cannot create a witness key named `{name}`: {error}\nhint: a name has no spaces or `+`")
    })?;
    create_private_dir(dir)?;
    custody_store::keys::write_private(&dir.join(KEY_FILE), key.to_secret_string().as_str(), true)
        .map_err(|error| format!("cannot write the witness key: {error}"))?;
    Ok((key, true))
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))
}

fn state_path(dir: &Path, origin: &str) -> PathBuf {
    dir.join(LOGS_DIR).join(format!(
        "{}.checkpoint",
        custody_core::id::Sha256Hash::of(origin.as_bytes())
    ))
}

impl Witness {
    /// Opens the witness on `dir` with its key, trusting `log_keys`, and
    /// reads the latest checkpoint it cosigned for each of their origins.
    /// A stored checkpoint that does not verify with the given keys stops
    /// the start: the witness would otherwise forget what it saw.
    pub fn open(
        dir: &Path,
        key: CosignerKey,
        log_keys: Vec<VerifierKey>,
        clock: custody_core::time::SharedClock,
    ) -> Result<Witness, String> {
        if log_keys.is_empty() {
            return Err("no log key given\nhint: pass --log-key VKEY, the verifier key `custody init` or `custody log keys` prints".into());
        }
        create_private_dir(&dir.join(LOGS_DIR))?;
        let mut logs = BTreeMap::new();
        for origin in log_keys.iter().map(VerifierKey::name) {
            if logs.contains_key(origin) {
                continue;
            }
            let path = state_path(dir, origin);
            let state = match std::fs::read(&path) {
                Ok(bytes) => {
                    let verified = verify_checkpoint(&bytes, &log_keys).map_err(|error| {
                        format!(
                            "the checkpoint the witness cosigned last for {origin} ({}) does not verify with the given log keys: {error}\nhint: pass every key the log signed with (`custody log keys` lists retired ones too)",
                            path.display()
                        )
                    })?;
                    if verified.origin() != origin {
                        return Err(format!(
                            "{} holds a checkpoint of {}, not of {origin}",
                            path.display(),
                            verified.origin()
                        ));
                    }
                    Some(WitnessedSize {
                        size: verified.size(),
                        root: *verified.root_hash(),
                    })
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
            };
            logs.insert(origin.to_string(), Mutex::new(state));
        }
        Ok(Witness {
            key,
            log_keys,
            dir: dir.to_path_buf(),
            logs,
            clock,
        })
    }

    /// The witness's verifier key.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.key.verifier()
    }

    /// The origins it witnesses, with the size it cosigned last.
    pub async fn origins(&self) -> Vec<(String, Option<u64>)> {
        let mut out = Vec::new();
        for (origin, state) in &self.logs {
            out.push((origin.clone(), state.lock().await.map(|s| s.size)));
        }
        out
    }

    /// The HTTP service: `POST /add-checkpoint`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                custody_log::witness::ADD_CHECKPOINT_PATH,
                post(add_checkpoint),
            )
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }

    /// Decides one request body; returns the status, content type and body.
    pub async fn add_checkpoint(&self, body: &[u8]) -> (StatusCode, &'static str, String) {
        let request = match AddCheckpoint::parse(body) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "refused a malformed add-checkpoint request (400)");
                return text(StatusCode::BAD_REQUEST, format!("{error}\n"));
            }
        };
        let origin = request.origin().to_string();
        let Some(state) = self.logs.get(&origin) else {
            tracing::warn!(origin = %custody_core::text::escape(&origin), "refused a checkpoint of an unknown log (404)");
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown log origin {}\n",
                    custody_core::text::escape(&origin)
                ),
            );
        };
        // Held from the decision to the write: one request per origin.
        let mut state = state.lock().await;
        let size = request.checkpoint().size();
        match decide(&request, &self.log_keys, *state) {
            Decision::Refuse(refusal) => {
                let status = StatusCode::from_u16(refusal.status())
                    .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                tracing::warn!(origin = %origin, size, old = request.old_size(), status = status.as_u16(), reason = %refusal, "refused the checkpoint");
                match refusal.latest_size() {
                    Some(latest) => (status, SIZE_CONTENT_TYPE, format!("{latest}\n")),
                    None => text(status, format!("{refusal}\n")),
                }
            }
            Decision::Accept { state: accepted } => {
                let timestamp = (self.clock.now().as_micros() / 1_000_000)
                    .max(0)
                    .unsigned_abs();
                let cosignature = match Decision::cosign(&request, &self.key, timestamp) {
                    Ok(cosignature) => cosignature,
                    Err(error) => {
                        tracing::error!(%error, "cannot cosign");
                        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"));
                    }
                };
                if *state != Some(accepted) {
                    let note = request.note().to_signed_string();
                    let path = state_path(&self.dir, &origin);
                    let written = match note {
                        Ok(note) => tokio::task::spawn_blocking(move || {
                            custody_store::keys::write_private(&path, &note, false)
                                .map_err(|error| error.to_string())
                        })
                        .await
                        .unwrap_or_else(|error| Err(error.to_string())),
                        Err(error) => Err(error.to_string()),
                    };
                    if let Err(error) = written {
                        tracing::error!(origin = %origin, size, %error, "cannot keep the checkpoint; not cosigned");
                        return text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "the witness cannot store the checkpoint\n".to_string(),
                        );
                    }
                    *state = Some(accepted);
                }
                tracing::info!(origin = %origin, size, old = request.old_size(), "cosigned the checkpoint");
                (
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    cosignature.to_line(),
                )
            }
        }
    }
}

fn text(status: StatusCode, body: String) -> (StatusCode, &'static str, String) {
    (status, "text/plain; charset=utf-8", body)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let (status, content_type, body) = witness.add_checkpoint(&body).await;
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
