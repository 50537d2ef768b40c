-- Evidence attached to an external reference (a ticket) before any case
-- carries it is kept in that reference's evidence record (a trail of its
-- own in the log); this table finds the record by reference and says which
-- case it was released to.
CREATE TABLE evidence_records (
    ticket      TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    released_to TEXT,
    created_at  TEXT NOT NULL
) STRICT;
