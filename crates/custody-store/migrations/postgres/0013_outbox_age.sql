-- The age of the oldest pending notification (`custody_outbox_oldest_seconds`)
-- is read through this index in one step, instead of a visit to every
-- pending row: with a backlog of 600,000 notifications that visit ran on
-- every poll of the delivery worker and starved the server
-- (docs/performance.md, "Soak").
CREATE INDEX outbox_by_age ON outbox (state, created_at);
