-- The whole store on PostgreSQL: the same tables as the SQLite dialect,
-- with native types. Ids are `uuid`, money and counts `bigint`, instants
-- `timestamptz` (microseconds, like SQLite's integer micros).

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

-- Refresh tokens are stored only as a SHA-256 of the token; `used_at`
-- makes them single-use.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_unused ON refresh_tokens(user_id) WHERE used_at IS NULL;

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    seller_id   uuid NOT NULL REFERENCES users(id),
    name        text NOT NULL,
    description text,
    price       bigint NOT NULL CHECK (price >= 0),
    stock       bigint NOT NULL CHECK (stock >= 0),
    category    text,
    image_url   text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX products_category ON products(category, id);

CREATE TABLE deals (
    id              uuid PRIMARY KEY,
    product_id      uuid NOT NULL REFERENCES products(id),
    deal_price      bigint NOT NULL CHECK (deal_price >= 0),
    deal_stock      bigint NOT NULL CHECK (deal_stock >= 1),
    remaining_stock bigint NOT NULL CHECK (remaining_stock >= 0),
    returned_stock  bigint NOT NULL DEFAULT 0,
    per_user_limit  bigint,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    settled_at      timestamptz,
    created_at      timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX deals_unsettled ON deals(ends_at) WHERE settled_at IS NULL;

-- Order ids are time-ordered (UUIDv7): "newest first" is id DESC.
CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id),
    total_amount     bigint NOT NULL,
    discount_amount  bigint NOT NULL DEFAULT 0,
    status           text NOT NULL,
    payment_status   text NOT NULL,
    shipping_address text,
    coupon_id        uuid,
    cancel_reason    text,
    cancelled_at     timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- When an unpaid order holding deal stock is cancelled by the system.
    pay_by           timestamptz
);
CREATE INDEX orders_by_user ON orders(user_id, id);
-- The expiry sweep walks this index with FOR UPDATE SKIP LOCKED.
CREATE INDEX orders_awaiting_payment ON orders(pay_by)
    WHERE pay_by IS NOT NULL AND payment_status = 'unpaid' AND status <> 'cancelled';

CREATE TABLE order_items (
    order_id     uuid NOT NULL REFERENCES orders(id),
    line_no      bigint NOT NULL,
    id           uuid NOT NULL,
    product_id   uuid NOT NULL,
    deal_id      uuid,
    product_name text NOT NULL,
    quantity     bigint NOT NULL CHECK (quantity >= 1),
    unit_price   bigint NOT NULL,
    subtotal     bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Units each user holds of a deal (non-cancelled orders): a per-user limit
-- is one conditional upsert.
CREATE TABLE deal_purchases (
    deal_id  uuid NOT NULL,
    user_id  uuid NOT NULL,
    quantity bigint NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (deal_id, user_id)
);

CREATE TABLE point_accounts (
    user_id    uuid PRIMARY KEY REFERENCES users(id),
    balance    bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL
);

-- Every change of a balance, with the balance it left.
CREATE TABLE point_history (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('charge', 'payment', 'refund')),
    amount        bigint NOT NULL,
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    order_id      uuid,
    created_at    timestamptz NOT NULL
);
CREATE INDEX point_history_by_user ON point_history(user_id, id);

CREATE TABLE coupons (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    discount_type    text NOT NULL CHECK (discount_type IN ('fixed', 'percent')),
    discount_value   bigint NOT NULL CHECK (discount_value > 0),
    max_discount     bigint,
    min_order_amount bigint NOT NULL DEFAULT 0,
    total_quantity   bigint NOT NULL CHECK (total_quantity >= 1),
    issued_count     bigint NOT NULL DEFAULT 0,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    created_by       uuid NOT NULL,
    created_at       timestamptz NOT NULL,
    CHECK (issued_count <= total_quantity),
    CHECK (ends_at > starts_at)
);

-- The key makes "one per user" a rule of the store.
CREATE TABLE user_coupons (
    id        uuid NOT NULL UNIQUE,
    coupon_id uuid NOT NULL,
    user_id   uuid NOT NULL,
    status    text NOT NULL CHECK (status IN ('issued', 'used')),
    issued_at timestamptz NOT NULL,
    used_at   timestamptz,
    order_id  uuid,
    PRIMARY KEY (coupon_id, user_id)
);
CREATE INDEX user_coupons_by_user ON user_coupons(user_id, issued_at);

CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys(created_at);

CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    payload      text NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox(seq) WHERE published_at IS NULL;

-- One row the store rewrites to learn whether the database takes writes
-- again after a failure.
CREATE TABLE store_probe (
    id        integer PRIMARY KEY CHECK (id = 1),
    probed_at timestamptz NOT NULL
);
INSERT INTO store_probe (id, probed_at) VALUES (1, now());
