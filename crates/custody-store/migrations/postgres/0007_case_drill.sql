-- Drill cases (`custody drill`): the flag their request records, kept
-- beside the projection so listings and exports leave them out in SQL.
-- Written once when the case opens; `verify` compares it with the request.
ALTER TABLE cases ADD COLUMN drill BOOLEAN NOT NULL DEFAULT false;
