-- The push sinks' cursors (see migrations/sqlite/0005_export_cursors.sql).
CREATE TABLE export_cursors (
    sink        TEXT   PRIMARY KEY,
    next_index  BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    updated_at  TEXT   NOT NULL
);
