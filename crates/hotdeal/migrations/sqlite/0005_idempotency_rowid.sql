-- Idempotency answers in a rowid table: the wide rows (an answer is the
-- whole response, ~700 bytes for an order) are appended in commit order,
-- and only a narrow unique index on (user_id, key) takes random inserts.
-- As a WITHOUT ROWID table keyed by (user_id, key), every batch of keyed
-- orders split and rewrote leaf pages all over the table.
--
-- No index on created_at: rows go in in commit order, so pruning deletes
-- the rows before the first one young enough to keep.
CREATE TABLE idempotency_answers (
    id           INTEGER PRIMARY KEY,
    user_id      BLOB NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
INSERT INTO idempotency_answers (user_id, key, request_hash, status, body, created_at)
    SELECT user_id, key, request_hash, status, body, created_at
    FROM idempotency_keys ORDER BY created_at;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_answers RENAME TO idempotency_keys;
CREATE UNIQUE INDEX idempotency_keys_user_key ON idempotency_keys(user_id, key);
