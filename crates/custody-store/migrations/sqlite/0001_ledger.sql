-- The case ledger. Events are the only source of truth; every other table is
-- either configuration (principals, tokens) or a cache that can be rebuilt
-- from the events (cases) or a record of write results (idempotency).

CREATE TABLE events (
    -- Position in the deployment-wide log: 0-based and gapless.
    log_index   INTEGER PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE,
    case_id     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    -- The canonical RFC 8785 bytes of the event: what is hashed and verified.
    bytes       BLOB    NOT NULL,
    UNIQUE (case_id, seq)
) STRICT;

-- Append-only: the store itself refuses to change or remove an event.
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'custody: events are append-only; UPDATE is refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'custody: events are append-only; DELETE is refused');
END;

-- The projection of each case, written in the same transaction as its events.
CREATE TABLE cases (
    case_id     TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL,
    -- subject, entitlement, change and resource: one active case per key.
    change_key  TEXT    NOT NULL,
    ticket      TEXT,
    requester   TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    opened_at   TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    head_seq    INTEGER NOT NULL,
    head_hash   TEXT    NOT NULL,
    -- The earliest deadline of an obligation the ledger has not acted on
    -- (post-hoc review, review, revocation of time-bound access), or NULL.
    next_deadline TEXT,
    view        BLOB    NOT NULL
) STRICT;

CREATE INDEX cases_by_ticket ON cases (ticket) WHERE ticket IS NOT NULL;
CREATE INDEX cases_by_change_key ON cases (change_key);
CREATE INDEX cases_by_state ON cases (state, opened_at);
CREATE INDEX cases_by_deadline ON cases (next_deadline) WHERE next_deadline IS NOT NULL;

CREATE TABLE principals (
    principal_id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    kind         TEXT NOT NULL,
    groups_json  TEXT NOT NULL,
    org          TEXT,
    created_at   TEXT NOT NULL,
    created_by   TEXT
) STRICT;

CREATE TABLE tokens (
    token_id      TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    -- SHA-256 of the whole bearer token; the secret itself is never stored.
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    created_by    TEXT,
    -- A revoked token authenticates nothing; the row stays as a record.
    revoked_at    TEXT,
    revoked_by    TEXT
) STRICT;

-- Delegation grants to vendors (configuration; every vendor action records
-- the grant it was taken under).
CREATE TABLE delegations (
    grant_id   TEXT PRIMARY KEY,
    vendor_org TEXT NOT NULL,
    grant_json TEXT NOT NULL
) STRICT;

-- Results of writes, so a retried write returns the original result.
CREATE TABLE idempotency (
    principal_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal_id, key)
) STRICT;

-- The Merkle log (RFC 6962): every event is a leaf, its canonical bytes the
-- leaf input. Complete subtree hashes are stored so that roots and proofs at
-- any size cost O(log n) reads. Node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Written in the same transaction as
-- the events, so the log and the events never disagree after a crash.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER log_nodes_refuse_update BEFORE UPDATE ON log_nodes
BEGIN
    SELECT RAISE(ABORT, 'custody: log nodes are append-only; UPDATE is refused');
END;

CREATE TRIGGER log_nodes_refuse_delete BEFORE DELETE ON log_nodes
BEGIN
    SELECT RAISE(ABORT, 'custody: log nodes are append-only; DELETE is refused');
END;

-- Signed checkpoints (C2SP tlog-checkpoint in a C2SP signed note), one per size.
CREATE TABLE checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB    NOT NULL,
    note       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

CREATE TRIGGER checkpoints_refuse_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'custody: checkpoints are append-only; UPDATE is refused');
END;

CREATE TRIGGER checkpoints_refuse_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'custody: checkpoints are append-only; DELETE is refused');
END;
