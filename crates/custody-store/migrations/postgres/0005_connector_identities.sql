-- The mappings of connectors' outside users to principals (see
-- migrations/sqlite/0006_connector_identities.sql). `COLLATE "C"` compares
-- the IDs byte for byte, whatever the database's default collation.
CREATE TABLE connector_identities (
    connector     TEXT COLLATE "C" NOT NULL,
    external_user TEXT COLLATE "C" NOT NULL,
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    mapped_at     TEXT NOT NULL,
    mapped_by     TEXT,
    PRIMARY KEY (connector, external_user)
);
