-- The polled sources' cursors: see the SQLite migration of the same name.
CREATE TABLE pull_cursors (
    source      TEXT    PRIMARY KEY,
    cursor      TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    updated_at  TEXT    NOT NULL
);
