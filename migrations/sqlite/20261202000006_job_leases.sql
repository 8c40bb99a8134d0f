-- Scheduled jobs of `serve`: a job (or an instance, on SQLite) runs on one process at a time.
-- A holder takes a row by compare-and-set when it is free or its lease has passed, renews
-- `lease_until` by heartbeat while it works, and ends the lease when done; a process that dies
-- simply stops renewing, and the job is free again once `lease_until` has passed.
CREATE TABLE job_leases (
    job         TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    heartbeat   TEXT NOT NULL
);
