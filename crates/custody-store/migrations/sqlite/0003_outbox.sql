-- The notification outbox: one row per notification an event owes, written
-- in the event's transaction. Unlike the ledger it is a work queue: workers
-- lease due rows, and each delivery attempt updates its row (the attempt
-- itself is recorded as a `notification_attempted` event of the case). A row
-- points at the owing event; the notification is rendered from the ledger
-- when it is delivered.
CREATE TABLE outbox (
    delivery_id     TEXT    PRIMARY KEY,
    case_id         TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    audience        TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    recipient       TEXT,
    -- pending, delivered or dead.
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;

CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_case ON outbox (case_id);
