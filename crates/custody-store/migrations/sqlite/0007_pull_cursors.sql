-- The polled sources' cursors (`[[connectors]]` of a source kind with a
-- pull configured): for each source, where its next poll starts (an Okta
-- `next` link, a GitHub cursor, the last CloudTrail log file read), and the
-- lease of the node whose worker polls it. The cursor moves only after the
-- records of the page it follows are recorded, so a restart re-reads at
-- most one page, which (source, external ID) keeps from counting twice.
-- Working state, not ledger: rows are updated in place.
CREATE TABLE pull_cursors (
    source      TEXT    PRIMARY KEY,
    cursor      TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    updated_at  TEXT    NOT NULL
) STRICT;
