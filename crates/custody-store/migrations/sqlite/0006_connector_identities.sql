-- Which outside user, as a connector names it (a Slack user ID, a Jira
-- accountId, a ServiceNow sys_id or email, a Teams object ID), acts as which
-- principal. A projection of the administration record's `identity_mapped`
-- and `identity_unmapped` events, written by the writer in the same
-- transaction as each event; `custody verify` compares it with the record.
-- A connector trusts an outside user only through a row here. The IDs are
-- compared exactly (binary collation): Slack's are case-sensitive.
CREATE TABLE connector_identities (
    connector     TEXT NOT NULL,
    external_user TEXT NOT NULL,
    principal_id  TEXT NOT NULL REFERENCES principals (principal_id),
    mapped_at     TEXT NOT NULL,
    -- The admin who mapped it; NULL for `system`.
    mapped_by     TEXT,
    PRIMARY KEY (connector, external_user)
) STRICT;
