-- Grants that restore what stood before them (issue 12). Keep in step with migrations/sqlite.
--
-- A grant's end is now `ended` (at its expiry) or `revoked`; `ending` is the restore in progress.
-- Each grant knows its slot (one principal on one target) and the level Bitbucket should hold
-- while it is in force (`planned_level`); a claim (`claimed_by`, `claimed_until`) keeps two
-- workers off one grant, and failed restores wait for `next_attempt_at`.
UPDATE grants SET state = 'ended' WHERE state = 'expired';
ALTER TABLE grants ADD COLUMN slot_key TEXT;
UPDATE grants SET slot_key = principal_kind || ':' || principal_id || '|' || resource_kind || ':'
    || workspace || '/' || resource_key;
ALTER TABLE grants ALTER COLUMN slot_key SET NOT NULL;
ALTER TABLE grants ADD COLUMN planned_level TEXT;
-- A grant recorded before this migration was one grant alone on its slot: Bitbucket holds its level.
UPDATE grants SET planned_level = level;
ALTER TABLE grants ADD COLUMN end_kind TEXT;
ALTER TABLE grants ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE grants ADD COLUMN claimed_by TEXT;
ALTER TABLE grants ADD COLUMN claimed_until TIMESTAMPTZ;
CREATE INDEX grants_slot ON grants (slot_key, state);
CREATE INDEX grants_updated ON grants (updated_at);

-- One row per slot: the level that stood before its first grant in force, the level the
-- connector last set (or saw) there, and a lease so that only one process acts on it at a time.
CREATE TABLE grant_slots (
    slot_key       TEXT PRIMARY KEY NOT NULL,
    baseline_level TEXT,
    last_set       TEXT,
    locked_by      TEXT,
    locked_until   TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Who runs `expire --watch` (SQLite refuses a second watcher; PostgreSQL records them).
CREATE TABLE grant_watchers (
    name          TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL,
    lease_until   TIMESTAMPTZ NOT NULL
);
