-- The foreign keys of orders (to their user) and of order lines (to their
-- order) are checked at COMMIT instead of at each statement. A multi-row
-- insert that might fail an immediate key half way makes SQLite keep a
-- statement journal (a copy of every page the statement changes, so it
-- can undo that statement alone); the group commit inserts every order of
-- a batch in one statement and rolls the whole transaction back on any
-- refusal, so it needs none. Nothing else changes: same columns, same
-- keys, same indexes; a missing user still fails the transaction.
--
-- SQLite cannot alter a constraint in place: both tables are rebuilt.
-- The lines are set aside first so that dropping `orders` breaks no key.
CREATE TEMP TABLE order_items_copy AS SELECT * FROM order_items;
DROP TABLE order_items;

CREATE TABLE orders_new (
    id               BLOB PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users(id) DEFERRABLE INITIALLY DEFERRED,
    total_amount     INTEGER NOT NULL,
    discount_amount  INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    payment_status   TEXT NOT NULL,
    shipping_address TEXT,
    coupon_id        BLOB,
    cancel_reason    TEXT,
    cancelled_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    pay_by           INTEGER
) WITHOUT ROWID;
INSERT INTO orders_new (id, user_id, total_amount, discount_amount, status, payment_status,
                        shipping_address, coupon_id, cancel_reason, cancelled_at, created_at,
                        updated_at, pay_by)
    SELECT id, user_id, total_amount, discount_amount, status, payment_status,
           shipping_address, coupon_id, cancel_reason, cancelled_at, created_at,
           updated_at, pay_by
    FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_user ON orders(user_id, id);
CREATE INDEX orders_awaiting_payment ON orders(pay_by)
    WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status != 'cancelled';

CREATE TABLE order_items (
    order_id     BLOB NOT NULL REFERENCES orders(id) DEFERRABLE INITIALLY DEFERRED,
    line_no      INTEGER NOT NULL,
    id           BLOB NOT NULL,
    product_id   BLOB NOT NULL,
    deal_id      BLOB,
    product_name TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price   INTEGER NOT NULL,
    subtotal     INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;
INSERT INTO order_items (order_id, line_no, id, product_id, deal_id, product_name, quantity,
                         unit_price, subtotal)
    SELECT order_id, line_no, id, product_id, deal_id, product_name, quantity,
           unit_price, subtotal
    FROM order_items_copy;
DROP TABLE order_items_copy;
