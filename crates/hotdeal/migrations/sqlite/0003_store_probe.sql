-- One row that the store rewrites to learn whether storage takes writes
-- again after a failure (a full disk, an I/O error).
CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL
);
INSERT INTO store_probe (id, probed_at) VALUES (1, 0);
