-- Evidence records by external reference (see migrations/sqlite/0004_evidence_records.sql).
CREATE TABLE evidence_records (
    ticket      TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    released_to TEXT,
    created_at  TEXT NOT NULL
);
