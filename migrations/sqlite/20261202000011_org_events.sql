-- The Atlassian organization's audit-log events (atlassian_admin): the events stream's cursor
-- per organization, kept in the store so a restarted serve resumes after the last event it
-- applied, neither losing nor replaying one. Instances poll under the `org-events` job lease;
-- the cursor is moved by compare-and-set from the value the poll started at, so an instance
-- that lost its lease cannot move it over another's. `own_account_id` is the connector's own
-- Bitbucket account, learned once: events it made are the connector's changes, not drift.
CREATE TABLE org_event_cursors (
    org_id         TEXT PRIMARY KEY NOT NULL,
    cursor         TEXT NOT NULL,
    own_account_id TEXT,
    events_applied INTEGER NOT NULL,
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL
);
