-- What Bitbucket says an account is: the `type` of its user object (`user`, `app_user`, `team`),
-- `unknown` until a listing that carries the type reads it again. Identity matching labels an
-- `app_user` as an app, never as a person left unmatched.
ALTER TABLE accounts ADD COLUMN kind TEXT NOT NULL DEFAULT 'unknown';
