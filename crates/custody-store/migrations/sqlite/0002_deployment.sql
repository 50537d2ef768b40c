-- Facts about the deployment, set once: `log_origin` is the origin the
-- log's checkpoints are signed for.
CREATE TABLE deployment (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TRIGGER deployment_refuse_update BEFORE UPDATE ON deployment
BEGIN
    SELECT RAISE(ABORT, 'custody: deployment facts are set once; UPDATE is refused');
END;

CREATE TRIGGER deployment_refuse_delete BEFORE DELETE ON deployment
BEGIN
    SELECT RAISE(ABORT, 'custody: deployment facts are set once; DELETE is refused');
END;
