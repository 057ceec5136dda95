-- Points, payments, coupons, idempotency keys and the outbox.

CREATE TABLE point_accounts (
    user_id    BLOB PRIMARY KEY REFERENCES users(id),
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Every change of a balance, with the balance it left.
CREATE TABLE point_history (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('charge', 'payment', 'refund')),
    amount        INTEGER NOT NULL,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    order_id      BLOB,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX point_history_by_user ON point_history(user_id, id);

-- When an unpaid order holding deal stock is cancelled by the system.
ALTER TABLE orders ADD COLUMN pay_by INTEGER;
CREATE INDEX orders_awaiting_payment ON orders(pay_by)
    WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status != 'cancelled';

CREATE TABLE coupons (
    id               BLOB PRIMARY KEY,
    name             TEXT NOT NULL,
    discount_type    TEXT NOT NULL CHECK (discount_type IN ('fixed', 'percent')),
    discount_value   INTEGER NOT NULL CHECK (discount_value > 0),
    max_discount     INTEGER,
    min_order_amount INTEGER NOT NULL DEFAULT 0,
    total_quantity   INTEGER NOT NULL CHECK (total_quantity >= 1),
    issued_count     INTEGER NOT NULL DEFAULT 0,
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    created_by       BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    CHECK (issued_count <= total_quantity),
    CHECK (ends_at > starts_at)
) WITHOUT ROWID;

-- One row per coupon a user holds; the key makes "one per user" a rule of
-- the store as well as of the admission tier.
CREATE TABLE user_coupons (
    id        BLOB NOT NULL UNIQUE,
    coupon_id BLOB NOT NULL,
    user_id   BLOB NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('issued', 'used')),
    issued_at INTEGER NOT NULL,
    used_at   INTEGER,
    order_id  BLOB,
    PRIMARY KEY (coupon_id, user_id)
) WITHOUT ROWID;
CREATE INDEX user_coupons_by_user ON user_coupons(user_id, issued_at);

-- Answers to requests sent with an Idempotency-Key, stored in the same
-- transaction as the change they protect.
CREATE TABLE idempotency_keys (
    user_id      BLOB NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_age ON idempotency_keys(created_at);

-- Events, written in the same transaction as the change they describe;
-- a relay publishes them in order and marks them.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX outbox_unpublished ON outbox(seq) WHERE published_at IS NULL;
