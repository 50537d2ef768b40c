-- Witness cosignatures (C2SP tlog-cosignature, cosignature/v1) of the
-- log's checkpoints, one per configured witness and checkpoint size: the
-- checkpoint as the log signed it (`note`, no cosignature in it) and the
-- line the witness answered (`line`, without its newline), verified with
-- the witness's configured key before it is stored. A cosignature is the
-- witness's statement, made outside the operator's reach, that this tree
-- head extends every one it saw before: like checkpoints, rows are never
-- changed or removed.
CREATE TABLE cosignatures (
    witness     TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    root        BLOB    NOT NULL,
    note        TEXT    NOT NULL,
    line        TEXT    NOT NULL,
    cosigned_at INTEGER NOT NULL,
    recorded_at TEXT    NOT NULL,
    PRIMARY KEY (witness, size)
) STRICT;

CREATE INDEX cosignatures_by_size ON cosignatures (size);

CREATE TRIGGER cosignatures_refuse_update BEFORE UPDATE ON cosignatures
BEGIN
    SELECT RAISE(ABORT, 'custody: cosignatures are append-only; UPDATE is refused');
END;

CREATE TRIGGER cosignatures_refuse_delete BEFORE DELETE ON cosignatures
BEGIN
    SELECT RAISE(ABORT, 'custody: cosignatures are append-only; DELETE is refused');
END;
