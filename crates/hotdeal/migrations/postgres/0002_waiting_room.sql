-- Deals behind a waiting room: orders on them need an admitted queue token.
-- `queue_admit_per_sec` is the deal's own admission rate (users per second);
-- NULL means the server's default.
ALTER TABLE deals
    ADD COLUMN waiting_room boolean NOT NULL DEFAULT false,
    ADD COLUMN queue_admit_per_sec bigint CHECK (queue_admit_per_sec IS NULL OR queue_admit_per_sec >= 1);
