-- Identity matching with provenance: an account may be recorded as unmatched (no email), with
-- what Jira says about it (active, account type). Sources take the names of the identity
-- document (`jira_users_search`, `jira_user_bulk`, `bitbucket_member_email`, `manual`,
-- `unmatched`).
ALTER TABLE identities ALTER COLUMN email DROP NOT NULL;
ALTER TABLE identities ADD COLUMN active BOOLEAN;
ALTER TABLE identities ADD COLUMN account_type TEXT NOT NULL DEFAULT 'unknown';
UPDATE identities SET conflicts = '[]', source =
    CASE source WHEN 'jira' THEN 'jira_users_search'
                WHEN 'override' THEN 'manual'
                WHEN 'bitbucket_email_filter' THEN 'bitbucket_member_email'
                WHEN 'atlassian_org' THEN 'manual'
                ELSE source END;
DROP INDEX identities_email;
CREATE INDEX identities_email ON identities (lower(email));

-- One row per identity refresh: when it ran, whether Jira was read, and why not.
CREATE TABLE identity_refreshes (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    jira_read  BOOLEAN NOT NULL,
    message    TEXT NOT NULL,
    requests   BIGINT NOT NULL
);
