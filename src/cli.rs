//! The command line's arguments (clap). Each command's arguments are a
//! struct that its module in `commands/` takes as it is.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Custody: the system of record for governed access changes.
#[derive(Debug, Parser)]
#[command(name = "custody", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a deployment: the ledger (embedded in the data directory, or in PostgreSQL with --database-url), the log's signing key and a first admin
    Init(InitArgs),
    /// Run the HTTP API (initialising the data directory first when it is new).
    Serve(ServeArgs),
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
    /// Connectors: which outside user (Slack, Jira, ServiceNow, Teams) acts as which principal (admins only).
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Record what a source of observed changes exported (Okta, CloudTrail,
    /// Entra ID, GitHub, Vault, Kubernetes), from a file, as the source
    /// exports it (admins only). Each access change is bound to its case or
    /// opens an unsanctioned one; a record ingested twice is recorded once.
    Ingest(IngestArgs),
    /// Notifications owed and their delivery: `custody notifications [CASE] [--failed]`, `custody notifications retry ID`.
    #[command(args_conflicts_with_subcommands = true)]
    Notifications(NotificationsArgs),
    /// Request an access change; prints only the new case ID.
    Request(RequestArgs),
    /// Record a change made in an emergency, before approval; prints only the case ID.
    /// The case waits for a post-hoc review by someone else before its deadline.
    BreakGlass(BreakGlassArgs),
    /// Approve a case (or formalise an approval given in chat, or confirm one).
    Approve(ApproveArgs),
    /// Deny a case.
    Deny(DenyArgs),
    /// Record what was actually changed for an approved case.
    Execute(ExecuteArgs),
    /// Record the post-change review.
    Review(ReviewArgs),
    /// Attach evidence: `custody attach CASE FILE`, `custody attach CASE --url URL`, or `custody attach --ticket SYSTEM:KEY FILE` before any case carries the ticket.
    Attach(AttachArgs),
    /// Evidence: list, download (re-checking its hash), recheck captured links.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Comment on a case.
    Comment(CommentArgs),
    /// Merge a duplicate case into the case that carries the change (two tickets for one request).
    Merge(MergeArgs),
    /// Print the whole timeline of a case.
    Show(ShowArgs),
    /// List cases, newest first.
    Cases(CasesArgs),
    /// Show the policy new cases are decided with, and every policy change on record.
    Policy(PolicyArgs),
    /// Show who the token belongs to.
    Whoami(WhoamiArgs),
    /// Check the whole trail offline; exit 0 only when nothing is wrong.
    Verify(VerifyArgs),
    /// Run the readiness drill (docs/drill.md) against a deployment (an admin's token) or a
    /// throwaway embedded one; exit 0 when every scenario passed, 1 when any failed.
    Drill(DrillArgs),
    /// Export events for a SIEM, a GRC tool or an auditor, from the ledger directly (--data,
    /// --database-url) or from the server (auditors); prints the cursor to resume from.
    Export(ExportArgs),
    /// Rebuild an empty store (a new data directory, or a fresh PostgreSQL database) from a whole-log auditor bundle.
    Import(ImportArgs),
    /// A witness (C2SP tlog-witness) another team runs: it cosigns a log's checkpoints only while they extend what it saw.
    #[command(subcommand)]
    Witness(WitnessCommand),
}

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Serve `POST /add-checkpoint`; creates the witness's key in DIR on the first start.
    Serve(WitnessServeArgs),
    /// Print the witness's verifier key (for the log's `[[witnesses]]` and for auditors' --witness).
    Key {
        /// The witness's data directory.
        #[arg(
            long,
            env = "CUSTODY_WITNESS_DATA",
            default_value = "./custody-witness"
        )]
        data: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct WitnessServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The witness's data directory: its key and the latest checkpoint it cosigned per log.
    #[arg(
        long,
        env = "CUSTODY_WITNESS_DATA",
        default_value = "./custody-witness"
    )]
    pub data: PathBuf,
    /// A log's verifier key, as `custody init` or `custody log keys` prints it (repeatable; its name is the log's origin).
    #[arg(long = "log-key", required = true)]
    pub log_keys: Vec<String>,
    /// The witness key's name on the first start (a schema-less URL naming the witness, such as witness.example.com/w1) [default: custody-witness].
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The whole-log bundle (`custody export --format bundle` without --case, --since or --until).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The new data directory to fill (it must not exist, or be empty).
    #[arg(long, required_unless_present = "database_url")]
    pub data: Option<PathBuf>,
    /// Fill this PostgreSQL database instead (it must hold no ledger, or an empty one).
    #[arg(long, conflicts_with = "data")]
    pub database_url: Option<String>,
    /// The log's verifier key, obtained independently, to check the bundle's checkpoint against (repeatable).
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// The servers' configuration file: evidence blobs the bundle carries go to its [evidence.store] (default: DIR/evidence with --data).
    #[arg(long, env = "CUSTODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
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
        /// Trust this witness (its verifier key; repeatable): the proof's checkpoint must carry --min-witnesses of their cosignatures.
        #[arg(long = "witness", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned the proof's checkpoint [default: 1 with --witness].
        #[arg(long, value_name = "N", requires = "witnesses")]
        min_witnesses: Option<usize>,
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
pub enum EvidenceCommand {
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
pub enum NotificationsCommand {
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
pub enum AdminCommand {
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
pub enum DelegationCommand {
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
pub enum PrincipalCommand {
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
pub enum TokenCommand {
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

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Map an outside user of a connector to a principal, or (--file) every
    /// `external_user,principal` line of a CSV file: all of them, or none when
    /// a line is bad. Each mapping is an event of the administration record.
    #[command(
        override_usage = "custody connector map NAME EXTERNAL_USER PRINCIPAL\n       custody connector map NAME --file FILE"
    )]
    Map {
        /// The connector's name (as configured; its events say via connector:NAME).
        name: String,
        /// The user's ID in the outside system, exactly (Slack user ID, Jira
        /// accountId, ServiceNow sys_id or email, Teams object ID).
        #[arg(required_unless_present = "file", requires = "principal")]
        external_user: Option<String>,
        /// The principal it acts as.
        #[arg(required_unless_present = "file")]
        principal: Option<String>,
        /// A CSV file of `external_user,principal` lines (a header line and
        /// `#` comments allowed), recorded together or not at all.
        #[arg(long, conflicts_with_all = ["external_user", "principal"])]
        file: Option<PathBuf>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an outside user's mapping: the connector trusts it no more.
    Unmap {
        /// The connector's name.
        name: String,
        /// The user's ID in the outside system, exactly.
        external_user: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the outside users of a connector mapped to principals.
    Identities {
        /// The connector's name.
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data directory.
    #[arg(long, env = "CUSTODY_DATA", default_value = "./custody-data")]
    pub data: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// The server's URL.
    #[arg(long, env = "CUSTODY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The bearer token.
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust beside the system's, for an https:// server whose certificate a private CA issued.
    #[arg(long, env = "CUSTODY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Retrying with the same key is safe: it returns the first result and appends nothing.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Keep the ledger in this PostgreSQL database (postgres://...) instead of the embedded store; the data directory keeps the signing key.
    #[arg(long, env = "CUSTODY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The log's origin line (and signing key name) [default: custody.local/<random>].
    #[arg(long)]
    pub origin: Option<String>,
    /// Print `{"data_dir", "admin_token", "verifier_key"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on [default: 127.0.0.1:8080, or the config file's server.listen].
    #[arg(long, env = "CUSTODY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Use this database instead of the embedded store (postgres://...).
    #[arg(long, env = "CUSTODY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file; every setting has a default.
    #[arg(long, env = "CUSTODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key [default: the config file's server.tls_cert].
    #[arg(long, env = "CUSTODY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert [default: the config file's server.tls_key].
    #[arg(long, env = "CUSTODY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(subcommand)]
    pub action: Option<NotificationsCommand>,
    /// Only this case's notifications.
    pub case: Option<String>,
    /// Only those not delivered (pending or dead).
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The identity whose access changes, as KIND:ID (user, service_account, api_key, token, role, group, workload).
    #[arg(long)]
    pub subject: String,
    /// The entitlement: role, group, permission or key scope.
    #[arg(long)]
    pub entitlement: String,
    /// grant, revoke, create, rotate, delete or modify.
    #[arg(long, default_value = "grant")]
    pub change: String,
    /// The resource the entitlement applies to.
    #[arg(long)]
    pub resource: Option<String>,
    /// For time-bound access: 30m, 8h, 7d, ...
    #[arg(long)]
    pub duration: Option<String>,
    /// Why the change is needed.
    #[arg(long)]
    pub justification: Option<String>,
    /// The external ticket, as SYSTEM:KEY.
    #[arg(long)]
    pub ticket: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct BreakGlassArgs {
    /// The identity whose access changed, as KIND:ID.
    #[arg(long)]
    pub subject: String,
    /// The entitlement.
    #[arg(long)]
    pub entitlement: String,
    /// grant, revoke, create, rotate, delete or modify.
    #[arg(long, default_value = "grant")]
    pub change: String,
    /// The resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// For time-bound access: 30m, 8h, 7d, ...
    #[arg(long)]
    pub duration: Option<String>,
    /// The emergency (required).
    #[arg(long)]
    pub justification: String,
    /// The external ticket, as SYSTEM:KEY.
    #[arg(long)]
    pub ticket: Option<String>,
    /// A JSON file describing the change set actually applied.
    #[arg(long)]
    pub change_set: Option<PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The case ID.
    pub case: String,
    /// A comment.
    #[arg(long)]
    pub comment: Option<String>,
    /// The approval was given in this chat channel (e.g. slack:#access).
    #[arg(long, requires_all = ["chat_permalink", "chat_time", "chat_text"])]
    pub chat_channel: Option<String>,
    /// The chat message's permalink.
    #[arg(long)]
    pub chat_permalink: Option<String>,
    /// When the chat message was posted (RFC 3339).
    #[arg(long)]
    pub chat_time: Option<String>,
    /// The chat message's text (only its SHA-256 is kept).
    #[arg(long)]
    pub chat_text: Option<String>,
    /// Record the chat approval of this principal (an attestation they must confirm).
    #[arg(long = "for", requires = "chat_channel")]
    pub approver: Option<String>,
    /// Confirm, as the approver, the attested chat approval with this event ID.
    #[arg(long, conflicts_with = "chat_channel")]
    pub confirm: Option<String>,
    /// When the approval was actually given, if earlier than now (RFC 3339): a late record.
    #[arg(long, conflicts_with = "chat_channel")]
    pub occurred_at: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The case ID.
    pub case: String,
    /// A comment.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// The case ID.
    pub case: String,
    /// A JSON file describing the change set actually applied (no floats).
    #[arg(long)]
    pub change_set: Option<PathBuf>,
    /// A comment (for --failed, the error).
    #[arg(long)]
    pub comment: Option<String>,
    /// Record a failed attempt instead of a completed execution.
    #[arg(long, conflicts_with = "revocation")]
    pub failed: bool,
    /// Record the revocation of time-bound access that reached its end.
    #[arg(long)]
    pub revocation: bool,
    /// The execution was observed before its approval is recorded (a late record).
    #[arg(long, conflicts_with_all = ["failed", "revocation"])]
    pub observed: bool,
    /// When the change was actually made, if earlier than now (RFC 3339).
    #[arg(long)]
    pub occurred_at: Option<String>,
    /// The subject actually changed, as KIND:ID, when not the approved one.
    #[arg(long)]
    pub applied_subject: Option<String>,
    /// The entitlement actually given, when not the approved one.
    #[arg(long)]
    pub applied_entitlement: Option<String>,
    /// The resource actually touched, when not the approved one.
    #[arg(long)]
    pub applied_resource: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The case ID.
    pub case: String,
    /// confirmed, mismatch or revoke.
    #[arg(long)]
    pub outcome: String,
    /// A comment.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The case ID (with --ticket: the file).
    pub case: String,
    /// The file to upload.
    #[arg(conflicts_with = "url")]
    pub file: Option<PathBuf>,
    /// Attach to this external reference instead of a case: the evidence joins the case that carries it, now or when it is requested.
    #[arg(long, conflicts_with = "url")]
    pub ticket: Option<String>,
    /// Capture this link instead (fetched by the server; private addresses are refused).
    #[arg(long)]
    pub url: Option<String>,
    /// The name to record [default: the file's name].
    #[arg(long, conflicts_with = "url")]
    pub name: Option<String>,
    /// The declared media type [default: application/octet-stream].
    #[arg(long, conflicts_with = "url")]
    pub media_type: Option<String>,
    /// Retrying with the same key is safe: it returns the first result and appends nothing.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The server's URL (`--url` names the link here).
    #[arg(
        long = "server",
        env = "CUSTODY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The bearer token.
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust beside the system's, for an https:// server whose certificate a private CA issued.
    #[arg(long, env = "CUSTODY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The case ID.
    pub case: String,
    /// The comment.
    pub text: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The duplicate case, closed into the survivor.
    pub duplicate: String,
    /// The surviving case.
    #[arg(long)]
    pub into: String,
    /// Why they are one change (required).
    #[arg(long)]
    pub comment: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The case ID.
    pub case: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The source's connector name (a `[[connectors]]` entry of kind okta,
    /// cloudtrail, entra, github, vault or kubernetes).
    #[arg(long)]
    pub source: String,
    /// The file, as the source exports it (see docs/observations.md).
    pub file: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CasesArgs {
    /// Only cases in this state (open, approved, denied, executed, pending_review, executed_pending_approval, reviewed, merged).
    #[arg(long)]
    pub state: Option<String>,
    /// Only cases a connector opened for a change it observed and no case
    /// sanctioned: what changed without a case.
    #[arg(long)]
    pub unsanctioned: bool,
    /// Also list drill cases (`custody drill`), which are left out by default.
    #[arg(long)]
    pub include_drills: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Drill a throwaway deployment made in a temporary directory and served in this process
    /// on a loopback port (instead of --url), then verify it offline.
    #[arg(long)]
    pub embedded: bool,
    /// With --embedded: the configuration file (channels, sinks, connectors, policy) of the
    /// throwaway deployment; without it, none, so the scenarios that need them are not covered.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --embedded: make the deployment in DIR (new or empty) and keep it.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Write the readiness report in this format: text, json, sarif or html.
    #[arg(long, value_name = "FORMAT")]
    pub report: Option<String>,
    /// The report's file (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --url: the signing secret of the deployment's Slack connector, so the drill can
    /// sign the approval click of chat-approval (without it, that scenario is not covered).
    #[arg(
        long,
        env = "CUSTODY_DRILL_SLACK_SIGNING_SECRET",
        hide_env_values = true
    )]
    pub slack_signing_secret: Option<String>,
    /// With --url: the workspace (team) ID the Slack connector accepts, when its `team_id` is set.
    #[arg(long, env = "CUSTODY_DRILL_SLACK_TEAM_ID")]
    pub slack_team_id: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data directory to check (default ./custody-data or $CUSTODY_DATA); with --database-url, only its log keys are read.
    #[arg(long, env = "CUSTODY_DATA", conflicts_with = "bundle")]
    pub data: Option<PathBuf>,
    /// A checkpoint saved earlier: prove the log still extends it.
    #[arg(long)]
    pub since_checkpoint: Option<PathBuf>,
    /// Check the log against every checkpoint held in FILE (a checkpoints file or a saved note) or in every file of DIR (repeatable); the data directory's checkpoints file is always read.
    #[arg(long = "checkpoints", value_name = "FILE|DIR")]
    pub checkpoints: Vec<PathBuf>,
    /// Also trust this verifier key (repeatable); the data directory's keys are always trusted.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Check the ledger in this PostgreSQL database (postgres://...); the log keys come from --key or --data.
    #[arg(long, conflicts_with = "bundle")]
    pub database_url: Option<String>,
    /// An export bundle to check instead.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// The server's configuration file, for where evidence blobs are stored ([evidence.store]).
    #[arg(long, env = "CUSTODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Trust this witness (its verifier key, as `custody witness key` prints it; repeatable): accept only a log that extends a checkpoint cosigned by --min-witnesses of them.
    #[arg(long = "witness", value_name = "VKEY", conflicts_with = "bundle")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned [default: 1 with --witness].
    #[arg(long, value_name = "N", requires = "witnesses")]
    pub min_witnesses: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Render the readiness report (docs/report.md) instead: text, json, sarif or html; exit 1 also when the verdict is not ready.
    #[arg(long, value_name = "FORMAT")]
    pub report: Option<custody_report::Format>,
    /// With --report: write it to FILE (replaced only once whole) instead of standard output.
    #[arg(long, value_name = "FILE", requires = "report")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// ocsf, syslog, cef, ecs, cloudevents, jsonl or bundle.
    #[arg(long)]
    pub format: String,
    /// Only this case's events.
    #[arg(long)]
    pub case: Option<String>,
    /// Start at this cursor (inclusive): the `next cursor` a previous export printed [default: 0, the start of the log].
    #[arg(long, value_name = "CURSOR")]
    pub since: Option<String>,
    /// Stop before this cursor (exclusive) [default: the end of the log when the export starts].
    #[arg(long, value_name = "CURSOR")]
    pub until: Option<String>,
    /// Write to FILE instead of standard output; FILE is replaced only when the whole export succeeded.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Read the ledger in this data directory directly, without a server.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Read the ledger in this PostgreSQL database (postgres://...) directly, without a server.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Bundles only: put the evidence blobs themselves in the bundle, not only their hashes.
    #[arg(long)]
    pub with_evidence: bool,
    /// Also export the events of drill cases (`custody drill`), which are left out by default (a bundle always holds them: it is the whole trail).
    #[arg(long)]
    pub include_drills: bool,
    /// Bundles only: the server's configuration file, for where evidence blobs are stored ([evidence.store]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Without --data or --database-url, the server is asked (its token must be an auditor's or an admin's).
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the summary (events, next cursor) on standard error as JSON, and no progress bar.
    #[arg(long)]
    pub json: bool,
}
