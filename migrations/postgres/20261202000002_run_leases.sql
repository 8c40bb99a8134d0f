-- Run ownership: a sync run belongs to the process that claimed it while its lease lasts; the
-- owner renews `lease_until` as it works. A run whose lease has passed lost its owner and may be
-- resumed. Runs recorded before this migration have no owner and count as expired.
ALTER TABLE sync_runs ADD COLUMN owner TEXT;
ALTER TABLE sync_runs ADD COLUMN lease_until TIMESTAMPTZ;

-- Requests per run, owner and minute, written by the owner's heartbeat and at the end of the
-- run, each time with what it spent since its last write: the budget of every process sums the
-- last hour of other owners' buckets, whatever the age of the process.
CREATE TABLE sync_requests (
    run_id   BIGINT NOT NULL REFERENCES sync_runs (id),
    owner    TEXT NOT NULL,
    minute   TIMESTAMPTZ NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (run_id, owner, minute)
);
CREATE INDEX sync_requests_minute ON sync_requests (minute);

-- Finished runs keep counting against the hour in which they finished.
INSERT INTO sync_requests (run_id, owner, minute, requests)
    SELECT id, '', finished_at, requests_used FROM sync_runs
    WHERE finished_at IS NOT NULL AND requests_used > 0;
