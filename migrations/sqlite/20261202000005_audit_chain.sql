-- Tamper-evident history: every audit-log entry carries the hash of the entry before it and
-- its own hash (SHA-256 over a canonical encoding of its fields and `prev_hash`, computed by the
-- program in `insert_audit`). SQLite has no SHA-256 function, so entries written before this
-- migration are not chained: the chain starts at the first entry written after it, and
-- `audit verify` says how many entries came before it.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- One row per audit report: its canonical JSON, its SHA-256, the previous report's SHA-256
-- and the files it was written to (with their SHA-256). Append-only like the audit log.
CREATE TABLE audit_runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    generated_at    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    previous_sha256 TEXT,
    findings        INTEGER NOT NULL,
    content         TEXT NOT NULL,
    files           TEXT NOT NULL DEFAULT '[]'
);

CREATE TRIGGER audit_runs_no_update BEFORE UPDATE ON audit_runs
BEGIN
    SELECT RAISE(ABORT, 'audit_runs is append-only: reports cannot be updated');
END;

CREATE TRIGGER audit_runs_no_delete BEFORE DELETE ON audit_runs
BEGIN
    SELECT RAISE(ABORT, 'audit_runs is append-only: reports cannot be deleted');
END;
