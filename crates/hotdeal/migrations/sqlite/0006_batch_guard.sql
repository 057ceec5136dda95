-- A condition a multi-statement batch checks on its way: inserting a false
-- `ok` rolls the whole transaction back with the error "batch guard".
-- SQLite has no IF, and RAISE only inside triggers; a batch of orders goes
-- to the connection's thread as one query, so each guarded update is
-- followed by `INSERT INTO batch_guard (ok) VALUES (changes() = 1)`. The
-- view holds no rows and nothing is ever written through it.
CREATE VIEW batch_guard (ok) AS SELECT 1 WHERE 0;
CREATE TRIGGER batch_guard_refuses INSTEAD OF INSERT ON batch_guard
WHEN NOT NEW.ok
BEGIN
    SELECT RAISE(ROLLBACK, 'batch guard');
END;
