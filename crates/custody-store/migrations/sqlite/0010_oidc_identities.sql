-- OpenID Connect identities bound to principals: the issuer and subject
-- whose first sign-in added the principal (docs/oidc.md). A projection of
-- the administration record: the `principal_added` event whose actor is the
-- principal itself, authenticated by this issuer and subject, writes the
-- row in the same transaction. One row per identity and one per principal:
-- a principal is bound to one identity, never merged with another.
CREATE TABLE oidc_identities (
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    principal_id TEXT NOT NULL UNIQUE REFERENCES principals (principal_id),
    bound_at     TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;
