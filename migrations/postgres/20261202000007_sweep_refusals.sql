-- The last refusal of the group-privileges sweep per workspace (403, 404, 410 or an answer of an
-- unexpected shape), so that the sync does not ask again on every run but reads the group
-- permissions per repository until the refusal is old enough to try the sweep again.
CREATE TABLE sweep_refusals (
    workspace   TEXT PRIMARY KEY,
    refused_at  TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL
);
