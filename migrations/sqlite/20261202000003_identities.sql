-- Identity matching with provenance: an account may be recorded as unmatched (no email), with
-- what Jira says about it (active, account type). Sources take the names of the identity
-- document (`jira_users_search`, `jira_user_bulk`, `bitbucket_member_email`, `manual`,
-- `unmatched`). SQLite cannot drop a NOT NULL constraint, so the table is rebuilt.
CREATE TABLE identities_new (
    account_id   TEXT PRIMARY KEY NOT NULL,
    email        TEXT,
    source       TEXT NOT NULL,
    matched_at   TEXT NOT NULL,
    active       INTEGER,
    account_type TEXT NOT NULL DEFAULT 'unknown',
    conflicts    TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO identities_new (account_id, email, source, matched_at, conflicts)
    SELECT account_id, email,
           CASE source WHEN 'jira' THEN 'jira_users_search'
                       WHEN 'override' THEN 'manual'
                       WHEN 'bitbucket_email_filter' THEN 'bitbucket_member_email'
                       WHEN 'atlassian_org' THEN 'manual'
                       ELSE source END,
           matched_at, '[]'
    FROM identities;
DROP TABLE identities;
ALTER TABLE identities_new RENAME TO identities;
CREATE INDEX identities_email ON identities (lower(email));

-- One row per identity refresh: when it ran, whether Jira was read, and why not.
CREATE TABLE identity_refreshes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    jira_read  INTEGER NOT NULL,
    message    TEXT NOT NULL,
    requests   INTEGER NOT NULL
);
