-- The notification outbox (see migrations/sqlite/0003_outbox.sql). Workers
-- of several nodes claim due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox (
    delivery_id     TEXT   PRIMARY KEY,
    case_id         TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    audience        TEXT   NOT NULL,
    channel         TEXT   NOT NULL,
    recipient       TEXT,
    state           TEXT   NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT   NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT   NOT NULL,
    updated_at      TEXT   NOT NULL
);

CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_case ON outbox (case_id);
