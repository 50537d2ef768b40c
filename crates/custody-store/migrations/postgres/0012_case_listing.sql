-- Case listings, newest first (`GET /v1/cases`, `custody cases`, the
-- console), read the newest rows through an index and stop at the limit,
-- instead of reading and sorting every case row with its stored view
-- (550 ms at 100,000 cases before, docs/performance.md "Reads at scale").
-- One index per way of listing: all cases, cases in one state, and the
-- cases an observation opened (requested by the ledger's own `system`).
CREATE INDEX cases_by_time ON cases (opened_at, case_id);
DROP INDEX cases_by_state;
CREATE INDEX cases_by_state ON cases (state, opened_at, case_id);
CREATE INDEX cases_unsanctioned ON cases (opened_at, case_id) WHERE requester = 'system';
