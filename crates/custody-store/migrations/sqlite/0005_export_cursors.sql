-- The push sinks' cursors (`[[export.sinks]]`): for each sink, the log index
-- of the first event it has not pushed yet, and the lease of the node whose
-- worker pushes it. A worker pushes only while it holds the lease, and
-- advances the cursor only from the value it read, so several nodes on one
-- database push each event once in normal operation (at least once when a
-- lease runs out mid-push). Like the outbox this is working state, not
-- ledger: rows are updated in place.
CREATE TABLE export_cursors (
    sink        TEXT    PRIMARY KEY,
    next_index  INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    updated_at  TEXT    NOT NULL
) STRICT;
