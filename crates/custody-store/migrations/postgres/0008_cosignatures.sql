-- Witness cosignatures: see the SQLite migration of the same name.
CREATE TABLE cosignatures (
    witness     TEXT   NOT NULL,
    size        BIGINT NOT NULL,
    root        BYTEA  NOT NULL,
    note        TEXT   NOT NULL,
    line        TEXT   NOT NULL,
    cosigned_at BIGINT NOT NULL,
    recorded_at TEXT   NOT NULL,
    PRIMARY KEY (witness, size)
);

CREATE INDEX cosignatures_by_size ON cosignatures (size);

CREATE TRIGGER cosignatures_refuse_change BEFORE UPDATE OR DELETE ON cosignatures
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_change();
CREATE TRIGGER cosignatures_refuse_truncate BEFORE TRUNCATE ON cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION custody_refuse_change();
