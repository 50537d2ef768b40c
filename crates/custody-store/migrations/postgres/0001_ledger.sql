-- The case ledger on PostgreSQL: the same tables as the embedded store
-- (migrations/sqlite/0001_ledger.sql, which explains each one), in
-- PostgreSQL's types. Several `custody serve` nodes share these tables; the
-- writers serialise on a transaction-scoped advisory lock, so the log stays
-- one gapless log.

CREATE TABLE events (
    log_index   BIGINT PRIMARY KEY,
    event_id    TEXT   NOT NULL UNIQUE,
    case_id     TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    recorded_at TEXT   NOT NULL,
    bytes       BYTEA  NOT NULL,
    UNIQUE (case_id, seq)
);

-- Append-only: the database itself refuses to change or remove a record of
-- the ledger. TRUNCATE is refused too (it bypasses row triggers).
CREATE FUNCTION custody_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'custody: % are append-only; % is refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER events_refuse_change BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION custody_refuse_change();

CREATE TABLE cases (
    case_id       TEXT   PRIMARY KEY,
    state         TEXT   NOT NULL,
    change_key    TEXT   NOT NULL,
    ticket        TEXT,
    requester     TEXT   NOT NULL,
    summary       TEXT   NOT NULL,
    opened_at     TEXT   NOT NULL,
    updated_at    TEXT   NOT NULL,
    head_seq      BIGINT NOT NULL,
    head_hash     TEXT   NOT NULL,
    next_deadline TEXT,
    view          BYTEA  NOT NULL
);

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
);

CREATE TABLE tokens (
    token_id      TEXT  PRIMARY KEY,
    principal_id  TEXT  NOT NULL REFERENCES principals (principal_id),
    secret_sha256 BYTEA NOT NULL UNIQUE,
    created_at    TEXT  NOT NULL,
    expires_at    TEXT,
    created_by    TEXT,
    revoked_at    TEXT,
    revoked_by    TEXT
);

CREATE TABLE delegations (
    grant_id   TEXT PRIMARY KEY,
    vendor_org TEXT NOT NULL,
    grant_json TEXT NOT NULL
);

CREATE TABLE idempotency (
    principal_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal_id, key)
);

CREATE TABLE log_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA  NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TRIGGER log_nodes_refuse_change BEFORE UPDATE OR DELETE ON log_nodes
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_change();
CREATE TRIGGER log_nodes_refuse_truncate BEFORE TRUNCATE ON log_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION custody_refuse_change();

CREATE TABLE checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA  NOT NULL,
    note       TEXT   NOT NULL,
    created_at TEXT   NOT NULL
);

CREATE TRIGGER checkpoints_refuse_change BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_change();
CREATE TRIGGER checkpoints_refuse_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION custody_refuse_change();

-- Facts about the deployment, set once: `log_origin` is the origin every
-- node must sign checkpoints for.
CREATE TABLE deployment (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TRIGGER deployment_refuse_change BEFORE UPDATE OR DELETE ON deployment
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_change();
