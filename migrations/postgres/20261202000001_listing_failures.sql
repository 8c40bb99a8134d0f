-- The last failed read of each listing, kept until a complete read replaces the listing, so that
-- an answer can say which of the listings behind it could not be read (its facts are older).
CREATE TABLE listing_failures (
    listing    TEXT PRIMARY KEY,
    workspace  TEXT NOT NULL,
    failed_at  TIMESTAMPTZ NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX listing_failures_workspace ON listing_failures (workspace);
