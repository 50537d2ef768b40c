-- OpenID Connect identities bound to principals (see
-- migrations/sqlite/0010_oidc_identities.sql). `COLLATE "C"` compares the
-- issuer and subject byte for byte.
CREATE TABLE oidc_identities (
    issuer       TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    principal_id TEXT NOT NULL UNIQUE REFERENCES principals (principal_id),
    bound_at     TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
