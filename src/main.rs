//! `custody`: the command line. Glue only: it parses arguments, calls the
//! server's HTTP API (client commands) or the library crates (server and
//! auditor commands), and prints the result.
//!
//! Exit codes: 0 success; 1 refused (policy, separation of duties, not found,
//! conflict) or, for `verify`, findings; 2 usage or connection errors.

mod client;
mod logging;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, ClientError};

/// Custody: the system of record for governed access changes.
#[derive(Debug, Parser)]
#[command(name = "custody", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a deployment: the ledger (embedded in the data directory, or in PostgreSQL with --database-url), the log's signing key and a first admin
    Init {
        #[command(flatten)]
        data: DataArgs,
        /// Keep the ledger in this PostgreSQL database (postgres://...) instead of the embedded store; the data directory keeps the signing key.
        #[arg(long, env = "CUSTODY_DATABASE_URL")]
        database_url: Option<String>,
        /// The log's origin line (and signing key name) [default: custody.local/<random>].
        #[arg(long)]
        origin: Option<String>,
        /// Print `{"data_dir", "admin_token", "verifier_key"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP API (initialising the data directory first when it is new).
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on [default: 127.0.0.1:8080, or the config file's server.listen].
        #[arg(long, env = "CUSTODY_LISTEN")]
        listen: Option<SocketAddr>,
        /// Use this database instead of the embedded store (postgres://...).
        #[arg(long, env = "CUSTODY_DATABASE_URL")]
        database_url: Option<String>,
        /// TOML configuration file; every setting has a default.
        #[arg(long, env = "CUSTODY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage principals (admins only).
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Manage bearer tokens (admins only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The tamper-evident log: checkpoints, keys and proofs.
    #[command(subcommand)]
    Log(LogCommand),
    /// Delegated administration: which vendor may act, for whom, on what, until when.
    #[command(subcommand)]
    Delegation(DelegationCommand),
    /// The administration record: who added which principal (and groups), tokens, grants.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Notifications owed and their delivery: `custody notifications [CASE] [--failed]`, `custody notifications retry ID`.
    #[command(args_conflicts_with_subcommands = true)]
    Notifications {
        #[command(subcommand)]
        action: Option<NotificationsCommand>,
        /// Only this case's notifications.
        case: Option<String>,
        /// Only those not delivered (pending or dead).
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Request an access change; prints only the new case ID.
    Request {
        /// The identity whose access changes, as KIND:ID (user, service_account, api_key, token, role, group, workload).
        #[arg(long)]
        subject: String,
        /// The entitlement: role, group, permission or key scope.
        #[arg(long)]
        entitlement: String,
        /// grant, revoke, create, rotate, delete or modify.
        #[arg(long, default_value = "grant")]
        change: String,
        /// The resource the entitlement applies to.
        #[arg(long)]
        resource: Option<String>,
        /// For time-bound access: 30m, 8h, 7d, ...
        #[arg(long)]
        duration: Option<String>,
        /// Why the change is needed.
        #[arg(long)]
        justification: Option<String>,
        /// The external ticket, as SYSTEM:KEY.
        #[arg(long)]
        ticket: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Record a change made in an emergency, before approval; prints only the case ID.
    /// The case waits for a post-hoc review by someone else before its deadline.
    BreakGlass {
        /// The identity whose access changed, as KIND:ID.
        #[arg(long)]
        subject: String,
        /// The entitlement.
        #[arg(long)]
        entitlement: String,
        /// grant, revoke, create, rotate, delete or modify.
        #[arg(long, default_value = "grant")]
        change: String,
        /// The resource.
        #[arg(long)]
        resource: Option<String>,
        /// For time-bound access: 30m, 8h, 7d, ...
        #[arg(long)]
        duration: Option<String>,
        /// The emergency (required).
        #[arg(long)]
        justification: String,
        /// The external ticket, as SYSTEM:KEY.
        #[arg(long)]
        ticket: Option<String>,
        /// A JSON file describing the change set actually applied.
        #[arg(long)]
        change_set: Option<PathBuf>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Approve a case (or formalise an approval given in chat, or confirm one).
    Approve {
        /// The case ID.
        case: String,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
        /// The approval was given in this chat channel (e.g. slack:#access).
        #[arg(long, requires_all = ["chat_permalink", "chat_time", "chat_text"])]
        chat_channel: Option<String>,
        /// The chat message's permalink.
        #[arg(long)]
        chat_permalink: Option<String>,
        /// When the chat message was posted (RFC 3339).
        #[arg(long)]
        chat_time: Option<String>,
        /// The chat message's text (only its SHA-256 is kept).
        #[arg(long)]
        chat_text: Option<String>,
        /// Record the chat approval of this principal (an attestation they must confirm).
        #[arg(long = "for", requires = "chat_channel")]
        approver: Option<String>,
        /// Confirm, as the approver, the attested chat approval with this event ID.
        #[arg(long, conflicts_with = "chat_channel")]
        confirm: Option<String>,
        /// When the approval was actually given, if earlier than now (RFC 3339): a late record.
        #[arg(long, conflicts_with = "chat_channel")]
        occurred_at: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Deny a case.
    Deny {
        /// The case ID.
        case: String,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Record what was actually changed for an approved case.
    Execute {
        /// The case ID.
        case: String,
        /// A JSON file describing the change set actually applied (no floats).
        #[arg(long)]
        change_set: Option<PathBuf>,
        /// A comment (for --failed, the error).
        #[arg(long)]
        comment: Option<String>,
        /// Record a failed attempt instead of a completed execution.
        #[arg(long, conflicts_with = "revocation")]
        failed: bool,
        /// Record the revocation of time-bound access that reached its end.
        #[arg(long)]
        revocation: bool,
        /// The execution was observed before its approval is recorded (a late record).
        #[arg(long, conflicts_with_all = ["failed", "revocation"])]
        observed: bool,
        /// When the change was actually made, if earlier than now (RFC 3339).
        #[arg(long)]
        occurred_at: Option<String>,
        /// The subject actually changed, as KIND:ID, when not the approved one.
        #[arg(long)]
        applied_subject: Option<String>,
        /// The entitlement actually given, when not the approved one.
        #[arg(long)]
        applied_entitlement: Option<String>,
        /// The resource actually touched, when not the approved one.
        #[arg(long)]
        applied_resource: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Record the post-change review.
    Review {
        /// The case ID.
        case: String,
        /// confirmed, mismatch or revoke.
        #[arg(long)]
        outcome: String,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Attach evidence: `custody attach CASE FILE`, `custody attach CASE --url URL`, or `custody attach --ticket SYSTEM:KEY FILE` before any case carries the ticket.
    Attach {
        /// The case ID (with --ticket: the file).
        case: String,
        /// The file to upload.
        #[arg(conflicts_with = "url")]
        file: Option<PathBuf>,
        /// Attach to this external reference instead of a case: the evidence joins the case that carries it, now or when it is requested.
        #[arg(long, conflicts_with = "url")]
        ticket: Option<String>,
        /// Capture this link instead (fetched by the server; private addresses are refused).
        #[arg(long)]
        url: Option<String>,
        /// The name to record [default: the file's name].
        #[arg(long, conflicts_with = "url")]
        name: Option<String>,
        /// The declared media type [default: application/octet-stream].
        #[arg(long, conflicts_with = "url")]
        media_type: Option<String>,
        /// Retrying with the same key is safe: it returns the first result and appends nothing.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The server's URL (`--url` names the link here).
        #[arg(
            long = "server",
            env = "CUSTODY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        server: String,
        /// The bearer token.
        #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evidence: list, download (re-checking its hash), recheck captured links.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Comment on a case.
    Comment {
        /// The case ID.
        case: String,
        /// The comment.
        text: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Merge a duplicate case into the case that carries the change (two tickets for one request).
    Merge {
        /// The duplicate case, closed into the survivor.
        duplicate: String,
        /// The surviving case.
        #[arg(long)]
        into: String,
        /// Why they are one change (required).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Print the whole timeline of a case.
    Show {
        /// The case ID.
        case: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List cases, newest first.
    Cases {
        /// Only cases in this state (open, approved, denied, executed, pending_review, executed_pending_approval, reviewed, merged).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the policy new cases are decided with, and every policy change on record.
    Policy {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show who the token belongs to.
    Whoami {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the whole trail offline; exit 0 only when nothing is wrong.
    Verify {
        /// The data directory to check (default ./custody-data or $CUSTODY_DATA); with --database-url, only its log keys are read.
        #[arg(long, env = "CUSTODY_DATA", conflicts_with = "bundle")]
        data: Option<PathBuf>,
        /// A checkpoint saved earlier: prove the log still extends it.
        #[arg(long)]
        since_checkpoint: Option<PathBuf>,
        /// Check the log against every checkpoint held in FILE (a checkpoints file or a saved note) or in every file of DIR (repeatable); the data directory's checkpoints file is always read.
        #[arg(long = "checkpoints", value_name = "FILE|DIR")]
        checkpoints: Vec<PathBuf>,
        /// Also trust this verifier key (repeatable); the data directory's keys are always trusted.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Check the ledger in this PostgreSQL database (postgres://...); the log keys come from --key or --data.
        #[arg(long, conflicts_with = "bundle")]
        database_url: Option<String>,
        /// An export bundle to check instead.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The server's configuration file, for where evidence blobs are stored ([evidence.store]).
        #[arg(long, env = "CUSTODY_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Print the latest signed checkpoint (exactly the note bytes).
    Checkpoint {
        /// Sign a new checkpoint covering every write first (admins only).
        #[arg(long)]
        new: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Print the log's verifier keys (current, then retired), from a data directory.
    Keys {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Add a signing key; after a restart both keys sign every checkpoint.
    AddKey {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Retire a signing key by its 8-hex-digit ID; checkpoints it signed stay verifiable.
    RetireKey {
        /// The key ID (the middle part of the verifier key).
        key_id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the case's events with their tlog-proofs and checkpoint to FILE.
    Prove {
        /// The case ID.
        case: String,
        /// Where to write the proof bundle.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Verify a proof bundle offline: no server, no database.
    VerifyProof {
        /// The bundle written by `custody log prove`.
        file: PathBuf,
        /// The log's verifier key (repeatable).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove that the checkpoint in NEW extends the one in OLD.
    Consistency {
        /// The older signed checkpoint.
        #[arg(long)]
        old: PathBuf,
        /// The newer signed checkpoint.
        #[arg(long)]
        new: PathBuf,
        /// The log's verifier key (repeatable).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// The evidence recorded in a case.
    List {
        /// The case ID.
        case: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download a blob of a case; the file is kept only if it hashes to SHA256.
    Get {
        /// The case ID.
        case: String,
        /// The blob's SHA-256 (64 hex digits).
        sha256: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Fetch captured links again and record whether they still serve what was captured (admins).
    Recheck {
        /// Only this case's links [default: every case's].
        case: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum NotificationsCommand {
    /// Make a pending or dead notification due now (admins).
    Retry {
        /// The delivery ID (`custody notifications` lists them).
        delivery_id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print the administration record: every principal added (with its groups), token issued
    /// or revoked and delegation granted or revoked, and by whom. Prove it with `custody log prove`.
    Record {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DelegationCommand {
    /// Grant a vendor organisation the right to act for an internal party (admins).
    Grant {
        /// The vendor organisation.
        #[arg(long)]
        vendor_org: String,
        /// The internal principal or team the vendor acts for.
        #[arg(long)]
        on_behalf_of: String,
        /// How long the grant lasts, such as 30d.
        #[arg(long)]
        valid_for: String,
        /// Limit the grant to this vendor principal (repeatable; default: any of the org).
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// An entitlement pattern it covers (repeatable, `*` wildcard; default: any).
        #[arg(long = "entitlement")]
        entitlements: Vec<String>,
        /// A resource pattern it covers (repeatable; default: any).
        #[arg(long = "resource")]
        resources: Vec<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a delegation grant (admins).
    Revoke {
        /// The grant ID (dg_...).
        grant_id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List delegation grants.
    List {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PrincipalCommand {
    /// Add a principal.
    Add {
        /// The stable name (a-z, 0-9, '.', '_', '-', '@').
        name: String,
        /// human, service, automation or vendor.
        #[arg(long, default_value = "human")]
        kind: String,
        /// A group membership; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The principal's organisation.
        #[arg(long)]
        org: Option<String>,
        /// A display name (default: the name).
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List principals.
    List {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a principal's groups (admins); `--group admins` makes an admin. Recorded.
    SetGroups {
        /// The principal.
        name: String,
        /// A group; repeat for several; none removes every group.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// List issued tokens (admins: all, or NAME's; others: their own). Never shows secrets.
    List {
        /// Only this principal's tokens.
        name: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its ID (tok_...): it stops authenticating at once.
    Revoke {
        /// The token ID, as shown by `custody token list`.
        token_id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a bearer token for a principal; prints only the token.
    Create {
        /// The principal.
        name: String,
        /// Lifetime such as 30d; without it the token does not expire.
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON (token ID, token, expiry).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct DataArgs {
    /// The data directory.
    #[arg(long, env = "CUSTODY_DATA", default_value = "./custody-data")]
    data: PathBuf,
}

#[derive(Debug, Args, Clone)]
struct ConnectionArgs {
    /// The server's URL.
    #[arg(long, env = "CUSTODY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bearer token.
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Args)]
struct WriteArgs {
    /// Retrying with the same key is safe: it returns the first result and appends nothing.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    stop_quietly_on_closed_output(true);
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        // A server whose log reader went away keeps serving.
        stop_quietly_on_closed_output(false);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

/// When `stop` is true, the process ends quietly, as Unix tools do, once
/// the reader of its output has gone (`custody cases | head -1`): SIGPIPE
/// ends it (a shell reports status 141) instead of `println!` panicking on
/// the broken pipe. When false, SIGPIPE is ignored again (Rust's default),
/// and writes to a closed pipe are errors.
fn stop_quietly_on_closed_output(stop: bool) {
    #[cfg(unix)]
    // SAFETY: `signal` only sets this process's disposition of SIGPIPE; it
    // runs before the async runtime starts any other thread.
    unsafe {
        libc::signal(
            libc::SIGPIPE,
            if stop { libc::SIG_DFL } else { libc::SIG_IGN },
        );
    }
    #[cfg(not(unix))]
    let _ = stop;
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Init {
            data,
            database_url,
            origin,
            json,
        } => commands::init(data.data, database_url, origin, json).await,
        Command::Serve {
            data,
            listen,
            database_url,
            config,
        } => commands::serve(data.data, listen, database_url, config).await,
        Command::Verify {
            data,
            since_checkpoint,
            checkpoints,
            keys,
            database_url,
            bundle,
            config,
            json,
        } => {
            commands::verify(
                data,
                since_checkpoint,
                checkpoints,
                keys,
                database_url,
                bundle,
                config,
                json,
            )
            .await
        }
        Command::Log(command) => commands::log(command).await,
        client_command => commands::client(client_command).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let code = error.exit_code();
            eprintln!("{}", output::render_error(&error));
            ExitCode::from(code)
        }
    }
}

mod commands {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use custody_core::proof::CaseProofBundle;
    use custody_server::config::Config;
    use custody_server::init;
    use custody_server::keys::{self, LogSigner};
    use custody_store::ReadOnlyStore;
    use serde_json::json;

    use super::{
        AdminCommand, Client, ClientError, Command, ConnectionArgs, DelegationCommand,
        EvidenceCommand, LogCommand, NotificationsCommand, PrincipalCommand, TokenCommand,
    };
    use crate::output;

    pub async fn init(
        data: PathBuf,
        database_url: Option<String>,
        origin: Option<String>,
        json: bool,
    ) -> Result<ExitCode, ClientError> {
        let location = custody_store::Location::choose(&data, database_url.as_deref())
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        let (_store, report) = init::initialise(&data, &location, origin.as_deref())
            .await
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        if json {
            output::print_json(&report);
        } else {
            if report.resumed {
                println!(
                    "Completed the interrupted initialisation of {}",
                    report.data_dir.display()
                );
            } else {
                println!("Initialised {}", report.data_dir.display());
            }
            println!();
            println!("Admin token (shown once; keep it secret):");
            println!("  {}", report.admin_token);
            println!();
            println!("Log verifier key (give it to auditors):");
            println!("  {}", report.verifier_key);
            println!();
            println!("Next: custody serve --data {}", report.data_dir.display());
        }
        Ok(ExitCode::SUCCESS)
    }

    pub async fn serve(
        data: PathBuf,
        listen: Option<SocketAddr>,
        database_url: Option<String>,
        config: Option<PathBuf>,
    ) -> Result<ExitCode, ClientError> {
        crate::logging::init();
        let config_path = config;
        let config = match &config_path {
            Some(path) => {
                Config::load(path).map_err(|error| ClientError::Usage(error.to_string()))?
            }
            None => Config::default(),
        };
        let policy_source = match &config_path {
            Some(path) => format!(
                "{}",
                std::fs::canonicalize(path)
                    .unwrap_or_else(|_| path.clone())
                    .display()
            ),
            None => "built-in default (no --config)".to_string(),
        };
        let location = custody_store::Location::choose(&data, database_url.as_deref())
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        let store = match init::open_or_initialise(&data, &location)
            .await
            .map_err(|error| ClientError::Usage(error.to_string()))?
        {
            init::Opened::Existing(store) => store,
            init::Opened::Created(store, report) => {
                let what = if report.resumed {
                    "completed the interrupted initialisation of"
                } else {
                    "initialised"
                };
                eprintln!(
                    "{what} {} (ledger: {location})\nadmin token (shown once; keep it secret): {}\nlog verifier key: {}",
                    report.data_dir.display(),
                    report.admin_token,
                    report.verifier_key
                );
                store
            }
        };
        let listen = listen.unwrap_or(config.server.listen);
        let log = LogSigner::load(&data).map_err(|error| ClientError::Usage(error.to_string()))?;
        let checkpoint_copies = custody_server::checkpoint_copies::CheckpointCopies::open(
            &data,
            config.log.checkpoints_dir.as_deref(),
        )
        .map_err(ClientError::Usage)?;
        // Before anything is written or signed: the log must extend every
        // checkpoint signed for it (the database's, the data directory's
        // file, log.checkpoints_dir).
        checkpoint_copies
            .check(&store)
            .await
            .map_err(|error| ClientError::Usage(format!("refusing to start: {error}")))?;
        let options = custody_server::ServeOptions {
            checkpoint_copies,
            max_body_bytes: config.server.max_body_bytes,
            checkpoint_interval: std::time::Duration::from_secs(
                config.log.checkpoint_interval_seconds,
            ),
            log,
            policy: config.policy,
            policy_source,
            scan_interval: std::time::Duration::from_secs(config.workflow.scan_interval_seconds),
            notify: config.notify,
            evidence: custody_server::api_evidence::EvidenceState {
                blobs: config
                    .evidence
                    .store
                    .open(&data.join("evidence"))
                    .map_err(|error| {
                        ClientError::Usage(format!("cannot open the evidence store: {error}"))
                    })?,
                config: std::sync::Arc::new(config.evidence.clone()),
            },
        };
        let limits = config.server.connection_limits();
        custody_server::serve(store, listen, options, limits, shutdown_signal())
            .await
            .map_err(|error| ClientError::Usage(format!("cannot serve on {listen}: {error}")))?;
        Ok(ExitCode::SUCCESS)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn verify(
        data: Option<PathBuf>,
        since_checkpoint: Option<PathBuf>,
        checkpoint_paths: Vec<PathBuf>,
        extra_keys: Vec<String>,
        database_url: Option<String>,
        bundle: Option<PathBuf>,
        config: Option<PathBuf>,
        json: bool,
    ) -> Result<ExitCode, ClientError> {
        if let Some(bundle) = bundle {
            return Err(ClientError::Usage(format!(
                "cannot verify {}: export bundles are not produced by this version of Custody yet\nhint: verify the data directory with --data",
                bundle.display()
            )));
        }
        // On PostgreSQL the data directory is optional: it only supplies the
        // trusted keys, which --key can give instead. The database never does:
        // whoever can write to it could add their own key.
        let key_dir = match (&database_url, data) {
            (None, data) => Some(data.unwrap_or_else(|| PathBuf::from("./custody-data"))),
            (Some(_), data) => data,
        };
        let location = match &database_url {
            Some(url) => custody_store::Location::choose(Path::new("."), Some(url))
                .map_err(|error| ClientError::Usage(error.to_string()))?,
            None => custody_store::Location::Embedded(
                key_dir
                    .clone()
                    .expect("the embedded store always has a data directory"),
            ),
        };
        if key_dir.is_none() && extra_keys.is_empty() {
            return Err(ClientError::Usage(format!(
                "cannot verify {location} without trusted log keys\nhint: pass --key VKEY (the verifier key `custody init` printed) or --data DIR (a node's data directory)"
            )));
        }
        let store = ReadOnlyStore::open_at(&location)
            .await
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        let mut trusted = match &key_dir {
            Some(dir) => keys::trusted_keys(dir).map_err(|error| {
                ClientError::Usage(format!(
                    "cannot read the log's keys in {}: {error}",
                    dir.display()
                ))
            })?,
            None => Vec::new(),
        };
        trusted.extend(parse_keys(&extra_keys)?);
        let since = since_checkpoint.map(|path| read_text(&path)).transpose()?;
        let config = config
            .map(|path| Config::load(&path).map_err(|error| ClientError::Usage(error.to_string())))
            .transpose()?;
        // Checkpoints held outside the database: the data directory's
        // checkpoints file (which every server appends to), and whatever the
        // auditor points at.
        let mut outside_paths = Vec::new();
        if let Some(dir) = &key_dir {
            let file = dir.join(custody_store::checkpoint_file::CHECKPOINTS_FILE);
            if file.is_file() {
                outside_paths.push(file);
            }
        }
        outside_paths.extend(checkpoint_paths);
        let mut outside = Vec::new();
        let mut outside_findings = Vec::new();
        for path in &outside_paths {
            let (checkpoints, findings) = custody_store::checkpoint_file::read_outside(path)
                .map_err(|error| {
                    ClientError::Usage(format!(
                        "cannot read the checkpoints in {}: {error}\nhint: --checkpoints takes a checkpoints file (a data directory's `checkpoints`), a saved checkpoint, or a directory of them",
                        path.display()
                    ))
                })?;
            outside.extend(checkpoints);
            outside_findings.extend(findings);
        }
        let options = custody_store::AuditOptions {
            trusted_keys: trusted,
            since,
            outside,
            checkpoint_interval_seconds: config
                .as_ref()
                .map_or(0, |config| config.log.checkpoint_interval_seconds),
        };
        let mut report = store
            .audit_with(options)
            .await
            .map_err(|error| ClientError::Usage(format!("cannot read {location}: {error}")))?;
        report.add_findings(outside_findings);
        let evidence = match &config {
            Some(config) => config.evidence.store.clone(),
            None => custody_evidence::BlobStoreConfig::default(),
        };
        let blobs = match (&evidence, &key_dir) {
            (custody_evidence::BlobStoreConfig::Local { path: None }, None) => None,
            (store_config, dir) => Some(
                store_config
                    .open(&dir.clone().unwrap_or_default().join("evidence"))
                    .map_err(|error| {
                        ClientError::Usage(format!("cannot open the evidence store: {error}"))
                    })?,
            ),
        };
        match blobs {
            Some(blobs) => check_evidence(&mut report, blobs.as_ref()).await?,
            None if !report.evidence.is_empty() => {
                return Err(ClientError::Usage(format!(
                    "cannot check the {} evidence blob(s) the ledger references: no evidence store was given\nhint: pass --data DIR (a node's data directory) or --config FILE (the server's configuration with [evidence.store])",
                    report.evidence.len()
                )))
            }
            None => {}
        }
        if json {
            output::print_json(&report);
        } else {
            output::print_report(&report, &location.to_string());
        }
        Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// Checks every evidence blob the ledger references (it exists and hashes
    /// to the recorded digest and size) and reports blobs no event references.
    async fn check_evidence(
        report: &mut custody_core::audit::Report,
        blobs: &dyn custody_evidence::BlobStore,
    ) -> Result<(), ClientError> {
        use custody_core::audit::Finding;
        use custody_core::Code;
        use custody_evidence::{Sha256Digest, VerifyOutcome};
        let store_error = |error: custody_evidence::BlobError| {
            ClientError::Usage(format!("cannot read the evidence store: {error}"))
        };
        let mut findings = Vec::new();
        let mut checked = std::collections::BTreeMap::new();
        for reference in &report.evidence {
            let digest = Sha256Digest::from_bytes(reference.sha256.0);
            if let std::collections::btree_map::Entry::Vacant(entry) = checked.entry(digest) {
                entry.insert(blobs.verify(&digest).await.map_err(store_error)?);
            }
            let finding = |code: Code, message: String| reference.finding(code, message);
            match &checked[&digest] {
                VerifyOutcome::Missing => findings.push(finding(
                    Code::EvidenceBlobMissing,
                    format!(
                        "case {} references evidence {} that is not in the evidence store: it was deleted or never stored",
                        reference.case_id, reference.sha256
                    ),
                )),
                VerifyOutcome::Corrupt {
                    actual_sha256,
                    actual_size,
                } => findings.push(finding(
                    Code::EvidenceBlobAltered,
                    format!(
                        "the evidence {} of case {} was altered: the stored bytes ({actual_size} bytes) hash to {actual_sha256}",
                        reference.sha256, reference.case_id
                    ),
                )),
                VerifyOutcome::Intact { size } => {
                    if reference.size.is_some_and(|recorded| recorded != *size) {
                        findings.push(finding(
                            Code::EvidenceBlobAltered,
                            format!(
                                "the evidence {} of case {} was recorded with {} bytes but {size} are stored",
                                reference.sha256,
                                reference.case_id,
                                reference.size.unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
        }
        for stored in blobs.list().await.map_err(store_error)? {
            if !checked.contains_key(&stored) {
                findings.push(Finding::new(
                    Code::EvidenceBlobUnreferenced,
                    format!(
                        "the evidence store holds blob {stored}, which no event references (an upload whose event was never written, or a blob put there by hand)"
                    ),
                ));
            }
        }
        report.checked.evidence_blobs = checked.len() as u64;
        report.add_findings(findings);
        Ok(())
    }

    pub async fn log(command: LogCommand) -> Result<ExitCode, ClientError> {
        match command {
            LogCommand::Checkpoint { new, connection } => {
                // Reading the checkpoint needs no token; signing one does.
                let note = if new {
                    connect(&connection)?
                        .post_text("/v1/log/checkpoint")
                        .await?
                } else {
                    Client::public(&connection.url)?
                        .get_text("/v1/log/checkpoint")
                        .await?
                };
                print!("{}", output::escape_lines(&note));
            }
            LogCommand::Keys { data } => {
                let signer = LogSigner::load(&data.data)
                    .map_err(|error| ClientError::Usage(error.to_string()))?;
                for key in signer.verifier_keys() {
                    println!("{key}");
                }
                let retired = keys::retired_keys(&data.data)
                    .map_err(|error| ClientError::Usage(error.to_string()))?;
                for key in retired {
                    println!("{key}\tretired");
                }
            }
            LogCommand::AddKey { data } => {
                let key =
                    keys::add(&data.data).map_err(|error| ClientError::Usage(error.to_string()))?;
                println!("{key}");
                eprintln!("added; restart `custody serve` so that both keys sign, publish the new verifier key, then retire the old one");
            }
            LogCommand::RetireKey { key_id, data } => {
                let key = keys::retire(&data.data, &key_id)
                    .map_err(|error| ClientError::Usage(error.to_string()))?;
                println!("{key}\tretired");
                eprintln!("retired; restart `custody serve`. Checkpoints it signed stay verifiable with the key above");
            }
            LogCommand::Prove {
                case,
                out,
                connection,
            } => {
                let path = format!("/v1/cases/{}/proof", output::path_segment(&case));
                let bundle = connect(&connection)?.get(&path).await?;
                let text = serde_json::to_string_pretty(&bundle)
                    .map_err(|error| ClientError::Usage(error.to_string()))?;
                std::fs::write(&out, text + "\n").map_err(|error| {
                    ClientError::Usage(format!("cannot write {}: {error}", out.display()))
                })?;
                let events = bundle["events"].as_array().map(Vec::len).unwrap_or(0);
                eprintln!(
                    "wrote {} events of {case} with their proofs to {}",
                    events,
                    out.display()
                );
            }
            LogCommand::VerifyProof { file, keys, json } => {
                let trusted = parse_keys(&keys)?;
                let text = read_text(&file)?;
                let bundle: CaseProofBundle = serde_json::from_str(&text).map_err(|error| {
                    ClientError::Usage(format!(
                        "{} is not a case proof bundle: {error}",
                        file.display()
                    ))
                })?;
                match bundle.verify(&trusted) {
                    Ok(verified) => {
                        if json {
                            output::print_json(
                                &serde_json::json!({"ok": verified.rule_findings.is_empty(), "proof": verified}),
                            );
                        } else {
                            output::say!(
                                "ok: {} events of {} ({}) are in the log {} at size {}",
                                verified.events,
                                verified.case_id,
                                verified.state,
                                verified.origin,
                                verified.checkpoint_size
                            );
                            output::say!(
                                "    they are the case's events 1 to {} in order; events the case may have after them are not covered by this bundle (run `custody verify` on the log for completeness)",
                                verified.events
                            );
                            for code in &verified.rule_findings {
                                output::say!("  finding: {code}");
                            }
                        }
                        if !verified.rule_findings.is_empty() {
                            return Ok(ExitCode::from(1));
                        }
                    }
                    Err(error) => {
                        if json {
                            output::print_json(
                                &serde_json::json!({"ok": false, "error": error.to_string()}),
                            );
                        } else {
                            output::tell!("proof rejected: {error}");
                        }
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            LogCommand::Consistency {
                old,
                new,
                keys,
                connection,
            } => {
                let trusted = parse_keys(&keys)?;
                let verify = |path: &Path| -> Result<custody_log::VerifiedCheckpoint, ClientError> {
                    let text = read_text(path)?;
                    custody_log::verify_checkpoint(text.as_bytes(), &trusted).map_err(|error| {
                        ClientError::Refused(serde_json::json!({
                            "detail": format!("{} is not a checkpoint signed by the given key: {error}", path.display())
                        }))
                    })
                };
                let old_checkpoint = verify(&old)?;
                let new_checkpoint = verify(&new)?;
                let proof = if old_checkpoint.size() == new_checkpoint.size()
                    || old_checkpoint.size() == 0
                {
                    Vec::new()
                } else if old_checkpoint.size() > new_checkpoint.size() {
                    return Err(ClientError::Usage(format!(
                        "the old checkpoint ({}) is larger than the new one ({}); swap --old and --new",
                        old_checkpoint.size(),
                        new_checkpoint.size()
                    )));
                } else {
                    let path = format!(
                        "/v1/log/proof/consistency?from={}&to={}",
                        old_checkpoint.size(),
                        new_checkpoint.size()
                    );
                    let document = Client::public(&connection.url)?.get(&path).await?;
                    decode_hashes(&document["proof"])?
                };
                match new_checkpoint.verify_consistency_from(old_checkpoint.checkpoint(), &proof) {
                    Ok(()) => println!(
                        "ok: the log at size {} extends the log at size {}",
                        new_checkpoint.size(),
                        old_checkpoint.size()
                    ),
                    Err(error) => {
                        eprintln!(
                            "inconsistent: the checkpoint at size {} does not extend the one at size {}: {error}",
                            new_checkpoint.size(),
                            old_checkpoint.size()
                        );
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn parse_keys(keys: &[String]) -> Result<Vec<custody_log::VerifierKey>, ClientError> {
        keys.iter()
            .map(|key| {
                custody_log::VerifierKey::parse(key.trim()).map_err(|error| {
                    ClientError::Usage(format!(
                        "`{key}` is not a verifier key (expected name+keyid+base64, as printed by `custody log keys`): {error}"
                    ))
                })
            })
            .collect()
    }

    fn read_text(path: &Path) -> Result<String, ClientError> {
        std::fs::read_to_string(path)
            .map_err(|error| ClientError::Usage(format!("cannot read {}: {error}", path.display())))
    }

    fn decode_hashes(value: &serde_json::Value) -> Result<Vec<[u8; 32]>, ClientError> {
        use base64::Engine;
        let malformed = || ClientError::Connection("the server sent a malformed proof".to_string());
        value
            .as_array()
            .ok_or_else(malformed)?
            .iter()
            .map(|hash| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(hash.as_str().ok_or_else(malformed)?)
                    .map_err(|_| malformed())?;
                bytes.try_into().map_err(|_| malformed())
            })
            .collect()
    }

    pub async fn client(command: Command) -> Result<ExitCode, ClientError> {
        match command {
            Command::Principal(PrincipalCommand::Add {
                name,
                kind,
                groups,
                org,
                display_name,
                connection,
                json,
            }) => {
                let body = json!({"name": name, "kind": kind, "groups": groups, "org": org, "display_name": display_name});
                let principal = connect(&connection)?
                    .post("/v1/principals", &body, None)
                    .await?;
                if json {
                    output::print_json(&principal);
                } else {
                    output::say!(
                        "added principal {}",
                        principal["id"].as_str().unwrap_or(&name)
                    );
                }
            }
            Command::Principal(PrincipalCommand::List { connection, json }) => {
                let list = connect(&connection)?.get("/v1/principals").await?;
                if json {
                    output::print_json(&list);
                } else {
                    output::print_principals(&list);
                }
            }
            Command::Token(TokenCommand::Create {
                name,
                ttl,
                connection,
                json,
            }) => {
                let path = format!("/v1/principals/{}/tokens", output::path_segment(&name));
                let issued = connect(&connection)?
                    .post(&path, &json!({"ttl": ttl}), None)
                    .await?;
                if json {
                    output::print_json(&issued);
                } else {
                    println!("{}", issued["token"].as_str().unwrap_or_default());
                }
            }
            Command::Delegation(DelegationCommand::Grant {
                vendor_org,
                on_behalf_of,
                valid_for,
                principals,
                entitlements,
                resources,
                connection,
                json,
            }) => {
                let body = json!({
                    "vendor_org": vendor_org,
                    "on_behalf_of": on_behalf_of,
                    "valid_for": valid_for,
                    "principals": principals,
                    "entitlements": entitlements,
                    "resources": resources,
                });
                let grant = connect(&connection)?
                    .post("/v1/delegations", &body, None)
                    .await?;
                if json {
                    output::print_json(&grant);
                } else {
                    output::say!("{}", grant["grant_id"].as_str().unwrap_or_default());
                }
            }
            Command::Notifications {
                action:
                    Some(NotificationsCommand::Retry {
                        delivery_id,
                        connection,
                        json,
                    }),
                ..
            } => {
                let path = format!(
                    "/v1/notifications/{}/retry",
                    output::path_segment(&delivery_id)
                );
                let entry = connect(&connection)?
                    .post(&path, &serde_json::json!({}), None)
                    .await?;
                if json {
                    output::print_json(&entry);
                } else {
                    output::say!(
                        "{delivery_id} is due now (state {}, {} attempt(s) so far)",
                        entry["state"].as_str().unwrap_or_default(),
                        entry["attempts"]
                    );
                }
            }
            Command::Notifications {
                action: None,
                case,
                failed,
                connection,
                json,
            } => {
                let mut path = format!("/v1/notifications?failed={failed}&limit=1000");
                if let Some(case) = &case {
                    path.push_str(&format!("&case={}", output::path_segment(case)));
                }
                let list = connect(&connection)?.get(&path).await?;
                if json {
                    output::print_json(&list);
                } else {
                    output::print_notifications(&list);
                }
            }
            Command::Delegation(DelegationCommand::Revoke {
                grant_id,
                connection,
                json,
            }) => {
                let path = format!("/v1/delegations/{}", output::path_segment(&grant_id));
                let grant = connect(&connection)?.delete(&path).await?;
                if json {
                    output::print_json(&grant);
                } else {
                    output::say!("revoked {grant_id}");
                }
            }
            Command::Principal(PrincipalCommand::SetGroups {
                name,
                groups,
                connection,
                json,
            }) => {
                let path = format!("/v1/principals/{}/groups", output::path_segment(&name));
                let principal = connect(&connection)?
                    .put(&path, &serde_json::json!({ "groups": groups }))
                    .await?;
                if json {
                    output::print_json(&principal);
                } else {
                    println!(
                        "{} groups: {}",
                        principal["id"].as_str().unwrap_or_default(),
                        principal["groups"]
                            .as_array()
                            .map(|groups| groups
                                .iter()
                                .filter_map(|group| group.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    );
                }
            }
            Command::Admin(AdminCommand::Record { connection, json }) => {
                let document = connect(&connection)?.get("/v1/admin/record").await?;
                if json {
                    output::print_json(&document);
                } else {
                    output::print_admin_record(&document);
                }
            }
            Command::Delegation(DelegationCommand::List { connection, json }) => {
                let list = connect(&connection)?.get("/v1/delegations").await?;
                if json {
                    output::print_json(&list);
                } else {
                    for grant in list["delegations"].as_array().into_iter().flatten() {
                        output::say!(
                            "{}  {} for {} until {}{}",
                            grant["grant_id"].as_str().unwrap_or_default(),
                            grant["vendor_org"].as_str().unwrap_or_default(),
                            grant["on_behalf_of"].as_str().unwrap_or_default(),
                            grant["valid_until"].as_str().unwrap_or_default(),
                            if grant["revoked_at"].is_string() {
                                "  (revoked)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
            Command::Token(TokenCommand::List {
                name,
                connection,
                json,
            }) => {
                let mut path = "/v1/tokens".to_string();
                if let Some(name) = name {
                    path.push_str(&format!("?principal={}", output::path_segment(&name)));
                }
                let mut list = connect(&connection)?.get(&path).await?;
                mark_token_status(&mut list, custody_core::Timestamp::now());
                if json {
                    output::print_json(&list);
                } else {
                    output::print_tokens(&list);
                }
            }
            Command::Token(TokenCommand::Revoke {
                token_id,
                connection,
                json,
            }) => {
                let path = format!("/v1/tokens/{}", output::path_segment(&token_id));
                let revoked = connect(&connection)?.delete(&path).await?;
                if json {
                    output::print_json(&revoked);
                } else {
                    output::say!(
                        "revoked {} of {} at {}",
                        revoked["token_id"].as_str().unwrap_or_default(),
                        revoked["principal"].as_str().unwrap_or_default(),
                        revoked["revoked_at"].as_str().unwrap_or_default()
                    );
                }
            }
            Command::Request {
                subject,
                entitlement,
                change,
                resource,
                duration,
                justification,
                ticket,
                write,
            } => {
                let body = json!({
                    "subject": subject_json(&subject)?,
                    "entitlement": entitlement,
                    "change": change,
                    "resource": resource,
                    "duration": duration,
                    "justification": justification,
                    "ticket": ticket,
                });
                let outcome = connect(&write.connection)?
                    .post("/v1/cases", &body, Some(key(&write.idempotency_key)))
                    .await?;
                if write.json {
                    output::print_json(&outcome);
                } else {
                    // Only the case ID on stdout, so scripts can capture it.
                    output::say!("{}", outcome["case_id"].as_str().unwrap_or_default());
                    if outcome["existing"] == true {
                        eprintln!("note: an open case already carries this ticket; returned it instead of opening a second one");
                    }
                }
            }
            Command::BreakGlass {
                subject,
                entitlement,
                change,
                resource,
                duration,
                justification,
                ticket,
                change_set,
                write,
            } => {
                let change_set = change_set.map(|path| read_change_set(&path)).transpose()?;
                let body = json!({
                    "subject": subject_json(&subject)?,
                    "entitlement": entitlement,
                    "change": change,
                    "resource": resource,
                    "duration": duration,
                    "justification": justification,
                    "ticket": ticket,
                    "change_set": change_set,
                });
                let outcome = connect(&write.connection)?
                    .post("/v1/break-glass", &body, Some(key(&write.idempotency_key)))
                    .await?;
                if write.json {
                    output::print_json(&outcome);
                } else {
                    output::say!("{}", outcome["case_id"].as_str().unwrap_or_default());
                    eprintln!("break-glass recorded; a post-hoc review by someone else is now due (custody show CASE)");
                }
            }
            Command::Approve {
                case,
                comment,
                chat_channel,
                chat_permalink,
                chat_time,
                chat_text,
                approver,
                confirm,
                occurred_at,
                write,
            } => {
                let chat = chat_channel.map(|channel| {
                    json!({
                        "channel": channel,
                        "permalink": chat_permalink,
                        "message_time": chat_time,
                        "message_text": chat_text,
                        "approver": approver,
                    })
                });
                let verb = if confirm.is_some() {
                    "confirmed the chat approval on"
                } else {
                    "approved"
                };
                case_write(
                    &case,
                    "approvals",
                    json!({"comment": comment, "chat": chat, "confirm": confirm, "occurred_at": occurred_at}),
                    &write,
                    verb,
                )
                .await?;
            }
            Command::Deny {
                case,
                comment,
                write,
            } => {
                case_write(
                    &case,
                    "denials",
                    json!({"comment": comment}),
                    &write,
                    "denied",
                )
                .await?;
            }
            Command::Execute {
                case,
                change_set,
                comment,
                failed,
                revocation,
                observed,
                occurred_at,
                applied_subject,
                applied_entitlement,
                applied_resource,
                write,
            } => {
                let applied_subject = applied_subject.as_deref().map(subject_json).transpose()?;
                let applied = (applied_subject.is_some()
                    || applied_entitlement.is_some()
                    || applied_resource.is_some())
                .then(|| {
                    json!({
                        "subject": applied_subject,
                        "entitlement": applied_entitlement,
                        "resource": applied_resource,
                    })
                });
                let change_set = change_set.map(|path| read_change_set(&path)).transpose()?;
                let body = json!({
                    "change_set": change_set,
                    "comment": comment,
                    "status": if revocation { "revocation" } else if failed { "failed" } else { "completed" },
                    "applied": applied,
                    "observed": observed,
                    "occurred_at": occurred_at,
                });
                let verb = if revocation {
                    "recorded the revocation of"
                } else if failed {
                    "recorded failed execution of"
                } else {
                    "executed"
                };
                case_write(&case, "executions", body, &write, verb).await?;
            }
            Command::Review {
                case,
                outcome,
                comment,
                write,
            } => {
                let body = json!({"outcome": outcome, "comment": comment});
                case_write(&case, "reviews", body, &write, "reviewed").await?;
            }
            Command::Attach {
                case,
                file,
                ticket,
                url,
                name,
                media_type,
                idempotency_key,
                server,
                token,
                json,
            } => {
                let client = connect(&ConnectionArgs { url: server, token })?;
                // With --ticket the one positional argument is the file.
                let (case, file) = match (&ticket, file) {
                    (Some(_), None) => (String::new(), Some(PathBuf::from(&case))),
                    (Some(_), Some(_)) => {
                        return Err(ClientError::Usage(
                            "with --ticket, give only the FILE (the evidence joins the case that carries the ticket)".to_string(),
                        ))
                    }
                    (None, file) => (case, file),
                };
                let case_path = output::path_segment(&case);
                let outcome = match (file, url) {
                    (_, Some(url)) => {
                        client
                            .post(
                                &format!("/v1/cases/{case_path}/evidence/links"),
                                &json!({"url": url}),
                                Some(key(&idempotency_key)),
                            )
                            .await?
                    }
                    (Some(file), None) => {
                        let opened = tokio::fs::File::open(&file).await.map_err(|error| {
                            ClientError::Usage(format!("cannot read {}: {error}", file.display()))
                        })?;
                        let length = opened
                            .metadata()
                            .await
                            .map_err(|error| {
                                ClientError::Usage(format!(
                                    "cannot read {}: {error}",
                                    file.display()
                                ))
                            })?
                            .len();
                        let name = name.or_else(|| {
                            file.file_name()
                                .map(|name| name.to_string_lossy().into_owned())
                        });
                        let mut path = match &ticket {
                            Some(ticket) => {
                                format!("/v1/evidence?ticket={}", output::path_segment(ticket))
                            }
                            None => format!("/v1/cases/{case_path}/evidence?"),
                        };
                        if let Some(name) = &name {
                            path.push_str(&format!("&name={}", output::path_segment(name)));
                        }
                        client
                            .upload(
                                &path,
                                opened,
                                length,
                                media_type.as_deref(),
                                key(&idempotency_key),
                            )
                            .await?
                    }
                    (None, None) => {
                        return Err(ClientError::Usage(
                            "give a FILE to upload or --url URL to capture\nusage: custody attach CASE FILE | custody attach CASE --url URL | custody attach --ticket SYSTEM:KEY FILE".to_string(),
                        ))
                    }
                };
                if json {
                    output::print_json(&outcome);
                } else {
                    let kind = outcome["appended"][0]["kind"].as_str().unwrap_or_default();
                    if kind == "evidence_unverified" {
                        output::tell!(
                            "the link could not be captured; it is recorded as unverified (`custody evidence list {case}`)"
                        );
                        output::say!("recorded an unverified link in {case}");
                    } else if kind == "evidence_held" {
                        let record = outcome["record_id"]
                            .as_str()
                            .or_else(|| outcome["case_id"].as_str())
                            .unwrap_or_default();
                        output::say!(
                            "held for {} in evidence record {record} until a case carries it (`custody show {record}`)",
                            ticket.as_deref().unwrap_or_default(),
                        );
                    } else {
                        output::say!(
                            "attached evidence to {}",
                            outcome["case_id"].as_str().unwrap_or(&case)
                        );
                    }
                }
            }
            Command::Evidence(EvidenceCommand::List {
                case,
                connection,
                json,
            }) => {
                let list = connect(&connection)?
                    .get(&format!(
                        "/v1/cases/{}/evidence",
                        output::path_segment(&case)
                    ))
                    .await?;
                if json {
                    output::print_json(&list);
                } else {
                    output::print_evidence(&list);
                }
            }
            Command::Evidence(EvidenceCommand::Get {
                case,
                sha256,
                out,
                connection,
            }) => {
                download_evidence(&connect(&connection)?, &case, &sha256, &out).await?;
                output::say!("{sha256}  {}", out.display());
            }
            Command::Evidence(EvidenceCommand::Recheck {
                case,
                connection,
                json,
            }) => {
                let report = connect(&connection)?
                    .post("/v1/evidence/recheck", &json!({"case": case}), None)
                    .await?;
                if json {
                    output::print_json(&report);
                } else {
                    for item in report["rechecked"].as_array().into_iter().flatten() {
                        output::say!(
                            "{}  {}  {}",
                            if item["drifted"] == true {
                                "CHANGED  "
                            } else {
                                "unchanged"
                            },
                            item["case_id"].as_str().unwrap_or_default(),
                            item["url"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            Command::Comment { case, text, write } => {
                case_write(
                    &case,
                    "comments",
                    json!({"text": text}),
                    &write,
                    "commented on",
                )
                .await?;
            }
            Command::Merge {
                duplicate,
                into,
                comment,
                write,
            } => {
                let body = json!({"into": into, "comment": comment});
                case_write(&duplicate, "merge", body, &write, "merged").await?;
            }
            Command::Show {
                case,
                connection,
                json,
            } => {
                let path = format!("/v1/cases/{}", output::path_segment(&case));
                let client = connect(&connection)?;
                let document = match client.get(&path).await {
                    Ok(document) => document,
                    // Not a case: perhaps an evidence record (the ID a held
                    // upload answered with).
                    Err(ClientError::Refused(problem)) if problem["status"] == 404 => {
                        let record_path =
                            format!("/v1/evidence/records/{}", output::path_segment(&case));
                        match client.get(&record_path).await {
                            Ok(record) => {
                                if json {
                                    output::print_json(&record);
                                } else {
                                    output::print_record(&record);
                                }
                                return Ok(ExitCode::SUCCESS);
                            }
                            Err(_) => return Err(ClientError::Refused(problem)),
                        }
                    }
                    Err(error) => return Err(error),
                };
                if json {
                    output::print_json(&document);
                } else {
                    output::print_timeline(&document);
                }
            }
            Command::Cases {
                state,
                limit,
                connection,
                json,
            } => {
                let mut path = format!("/v1/cases?limit={limit}");
                if let Some(state) = state {
                    path.push_str(&format!("&state={}", output::path_segment(&state)));
                }
                let list = connect(&connection)?.get(&path).await?;
                if json {
                    output::print_json(&list);
                } else {
                    output::print_cases(&list);
                }
            }
            Command::Policy { connection, json } => {
                let document = connect(&connection)?.get("/v1/policy").await?;
                if json {
                    output::print_json(&document);
                } else {
                    output::print_policy(&document);
                }
            }
            Command::Whoami { connection, json } => {
                let who = connect(&connection)?.get("/v1/whoami").await?;
                if json {
                    output::print_json(&who);
                } else {
                    output::say!(
                        "{} ({}) via token {}",
                        who["principal"]["id"].as_str().unwrap_or_default(),
                        who["principal"]["kind"].as_str().unwrap_or_default(),
                        who["token_id"].as_str().unwrap_or_default()
                    );
                }
            }
            Command::Init { .. }
            | Command::Serve { .. }
            | Command::Verify { .. }
            | Command::Log(_) => {
                unreachable!("handled before client commands")
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn case_write(
        case: &str,
        collection: &str,
        body: serde_json::Value,
        write: &super::WriteArgs,
        verb: &str,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/cases/{}/{collection}", output::path_segment(case));
        let outcome = connect(&write.connection)?
            .post(&path, &body, Some(key(&write.idempotency_key)))
            .await?;
        if write.json {
            output::print_json(&outcome);
        } else {
            let replayed = if outcome["replayed"] == true {
                " (already recorded; nothing new appended)"
            } else {
                ""
            };
            output::say!(
                "{verb} {case}: state {}{replayed}",
                outcome["state"].as_str().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Downloads a blob beside `out`, hashing it on the way; only bytes that
    /// hash to `sha256` are renamed into place.
    async fn download_evidence(
        client: &Client,
        case: &str,
        sha256: &str,
        out: &Path,
    ) -> Result<(), ClientError> {
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let wanted = sha256.to_ascii_lowercase();
        if wanted.len() != 64 || !wanted.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ClientError::Usage(format!(
                "`{sha256}` is not a SHA-256 (64 hex digits)"
            )));
        }
        let mut response = client
            .download(&format!(
                "/v1/cases/{}/evidence/{wanted}",
                output::path_segment(case)
            ))
            .await?;
        let partial = out.with_extension("partial");
        let mut file = tokio::fs::File::create(&partial).await.map_err(|error| {
            ClientError::Usage(format!("cannot write {}: {error}", partial.display()))
        })?;
        let mut hasher = sha2::Sha256::new();
        let written = async {
            while let Some(chunk) = response.chunk().await.map_err(|error| {
                ClientError::Connection(format!("the download broke off: {error}"))
            })? {
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(|error| {
                    ClientError::Usage(format!("cannot write {}: {error}", partial.display()))
                })?;
            }
            file.sync_all().await.map_err(|error| {
                ClientError::Usage(format!("cannot write {}: {error}", partial.display()))
            })
        }
        .await;
        if let Err(error) = written {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
        let got = custody_core::hex::encode(&hasher.finalize());
        if got != wanted {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ClientError::Refused(json!({
                "detail": format!("the server sent bytes that hash to {got}, not {wanted}: the stored evidence was altered; nothing was written"),
                "rule": custody_core::Code::EvidenceHashMismatch,
                "hint": "run `custody verify` on the server's data"
            })));
        }
        tokio::fs::rename(&partial, out)
            .await
            .map_err(|error| ClientError::Usage(format!("cannot write {}: {error}", out.display())))
    }

    /// Adds `status` to every token of a token list: `revoked`, `expired`
    /// (its `expires_at` is not after `now`: it no longer authenticates) or
    /// `active`.
    fn mark_token_status(list: &mut serde_json::Value, now: custody_core::Timestamp) {
        let Some(tokens) = list["tokens"].as_array_mut() else {
            return;
        };
        for token in tokens {
            let status = if !token["revoked_at"].is_null() {
                "revoked"
            } else if token["expires_at"]
                .as_str()
                .and_then(|text| custody_core::Timestamp::parse(text).ok())
                .is_some_and(|expires_at| expires_at <= now)
            {
                "expired"
            } else {
                "active"
            };
            if let Some(token) = token.as_object_mut() {
                token.insert("status".to_string(), json!(status));
            }
        }
    }

    fn connect(connection: &ConnectionArgs) -> Result<Client, ClientError> {
        Client::new(&connection.url, connection.token.as_deref())
    }

    /// Every write carries an idempotency key; without one from the user, a
    /// fresh key is made so the client's own retries can never double-append.
    fn key(given: &Option<String>) -> String {
        given
            .clone()
            .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::now_v7().simple()))
    }

    /// `KIND:ID` as the API's subject object; the server checks the kind.
    fn subject_json(subject: &str) -> Result<serde_json::Value, ClientError> {
        let (kind, id) = subject.split_once(':').ok_or_else(|| {
            ClientError::Usage(format!(
                "`{subject}` is not a subject (expected KIND:ID, e.g. user:alice or api_key:ci-deploy)"
            ))
        })?;
        Ok(json!({"kind": kind, "id": id}))
    }

    /// Reads and parses a change set file once, as the server would: every
    /// limit, and each key once (a key given twice would otherwise be
    /// dropped here, unseen, before the server could refuse it).
    fn read_change_set(path: &Path) -> Result<custody_core::change_set::ChangeSet, ClientError> {
        use custody_core::change_set::{ChangeSet, ChangeSetError};
        let text = std::fs::read_to_string(path).map_err(|error| {
            ClientError::Usage(format!(
                "cannot read change set {}: {error}",
                path.display()
            ))
        })?;
        ChangeSet::from_json(&text).map_err(|error| match error {
            ChangeSetError::Syntax(error) => ClientError::Usage(format!(
                "change set {} is not JSON: {error}\nhint: describe the applied change as a JSON object, e.g. {{\"added\": [\"role/admin\"]}}",
                path.display()
            )),
            refused => ClientError::Usage(format!(
                "change set {} is refused: {refused}",
                path.display()
            )),
        })
    }

    async fn shutdown_signal() {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(signal) => signal,
                    Err(_) => {
                        let _ = interrupt.await;
                        return;
                    }
                };
            tokio::select! {
                _ = interrupt => {},
                _ = terminate.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
        }
    }
}
