-- Tamper-evident history: every audit-log entry carries the hash of the entry before it and
-- its own hash (SHA-256 over a canonical encoding of its fields and `prev_hash`, computed by the
-- program in `insert_audit` under a transaction-scoped advisory lock, so the chain never forks).
-- Entries written before this migration are not chained (SQLite cannot compute the hash in SQL,
-- and both backends keep one rule): the chain starts at the first entry written after it, and
-- `audit verify` says how many entries came before it.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- One row per audit report: its canonical JSON, its SHA-256, the previous report's SHA-256
-- and the files it was written to (with their SHA-256). Append-only like the audit log.
CREATE TABLE audit_runs (
    id              BIGINT PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    generated_at    TIMESTAMPTZ NOT NULL,
    sha256          TEXT NOT NULL,
    previous_sha256 TEXT,
    findings        BIGINT NOT NULL,
    content         TEXT NOT NULL,
    files           TEXT NOT NULL DEFAULT '[]'
);

CREATE TRIGGER audit_runs_no_change BEFORE UPDATE OR DELETE ON audit_runs
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_runs_no_truncate BEFORE TRUNCATE ON audit_runs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
