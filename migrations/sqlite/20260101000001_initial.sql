-- The initial schema of the SQLite store. Keep it in step with migrations/postgres.
--
-- Listing tables have no foreign keys between them on purpose: each listing is read and replaced
-- on its own, and a failed read of one must never block or cascade into another.
-- Timestamps are RFC 3339 text in UTC (what sqlx writes for DateTime<Utc>), which sorts in time order.

CREATE TABLE workspaces (
    slug        TEXT PRIMARY KEY NOT NULL,
    uuid        TEXT,
    name        TEXT NOT NULL,
    is_private  BOOLEAN NOT NULL
);

CREATE TABLE projects (
    workspace   TEXT NOT NULL,
    project_key TEXT NOT NULL,
    uuid        TEXT,
    name        TEXT NOT NULL,
    is_private  BOOLEAN NOT NULL,
    PRIMARY KEY (workspace, project_key)
);

CREATE TABLE repositories (
    workspace   TEXT NOT NULL,
    repo_slug   TEXT NOT NULL,
    uuid        TEXT,
    name        TEXT NOT NULL,
    project_key TEXT,
    is_private  BOOLEAN NOT NULL,
    PRIMARY KEY (workspace, repo_slug)
);

CREATE TABLE accounts (
    account_id   TEXT PRIMARY KEY NOT NULL,
    uuid         TEXT,
    display_name TEXT NOT NULL,
    nickname     TEXT
);

CREATE TABLE identities (
    account_id TEXT PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL,
    source     TEXT NOT NULL,
    matched_at TEXT NOT NULL,
    conflicts  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX identities_email ON identities (email);

CREATE TABLE workspace_groups (
    workspace  TEXT NOT NULL,
    group_slug TEXT NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (workspace, group_slug)
);

CREATE TABLE group_members (
    workspace  TEXT NOT NULL,
    group_slug TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (workspace, group_slug, account_id)
);

CREATE TABLE workspace_members (
    workspace  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    role       TEXT NOT NULL,
    PRIMARY KEY (workspace, account_id)
);

CREATE TABLE project_user_permissions (
    workspace   TEXT NOT NULL,
    project_key TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    level       TEXT NOT NULL,
    PRIMARY KEY (workspace, project_key, account_id)
);

CREATE TABLE project_group_permissions (
    workspace   TEXT NOT NULL,
    project_key TEXT NOT NULL,
    group_slug  TEXT NOT NULL,
    level       TEXT NOT NULL,
    PRIMARY KEY (workspace, project_key, group_slug)
);

CREATE TABLE repository_user_permissions (
    workspace  TEXT NOT NULL,
    repo_slug  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    level      TEXT NOT NULL,
    PRIMARY KEY (workspace, repo_slug, account_id)
);
CREATE INDEX repository_user_permissions_account ON repository_user_permissions (account_id);

CREATE TABLE repository_group_permissions (
    workspace  TEXT NOT NULL,
    repo_slug  TEXT NOT NULL,
    group_slug TEXT NOT NULL,
    level      TEXT NOT NULL,
    PRIMARY KEY (workspace, repo_slug, group_slug)
);

-- Freshness lives apart from the facts so that an unchanged read touches no fact row.
CREATE TABLE listing_freshness (
    listing       TEXT PRIMARY KEY NOT NULL,
    workspace     TEXT NOT NULL,
    read_at       TEXT NOT NULL,
    cost_requests INTEGER NOT NULL,
    item_count    INTEGER NOT NULL,
    resume_cursor TEXT,
    last_run_id   INTEGER
);
CREATE INDEX listing_freshness_workspace ON listing_freshness (workspace, read_at);

CREATE TABLE sync_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at       TEXT NOT NULL,
    workspaces       TEXT NOT NULL,
    finished_at      TEXT,
    outcome          TEXT,
    counts           TEXT NOT NULL DEFAULT '{}',
    requests_used    INTEGER NOT NULL DEFAULT 0,
    minimum_requests INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE grants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    principal_kind TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    resource_kind  TEXT NOT NULL,
    workspace      TEXT NOT NULL,
    resource_key   TEXT NOT NULL,
    level          TEXT NOT NULL,
    baseline_level TEXT,
    requested_by   TEXT NOT NULL,
    reason         TEXT,
    ticket         TEXT,
    created_at     TEXT NOT NULL,
    starts_at      TEXT NOT NULL,
    expires_at     TEXT,
    state          TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX grants_state_expiry ON grants (state, expires_at);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TEXT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    before_value TEXT,
    after_value  TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_kind_at ON audit_log (kind, occurred_at);
CREATE INDEX audit_log_at ON audit_log (occurred_at);

-- The audit log is append-only: evidence that can be edited is no evidence.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be updated');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted');
END;
