-- Idempotency keys of the HTTP API's grant creation: the first request with a key records the
-- fingerprint of its body and, once made, its grant; a retry with the same key and body returns
-- that grant instead of making a second one, and a different body under the key is refused.
-- Keys are per requester (the API token's name), so two clients never collide.
CREATE TABLE grant_idempotency (
    requester    TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    grant_id     INTEGER REFERENCES grants (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (requester, idem_key)
);
