-- The storefront: users, refresh tokens, products, deals, orders.
-- Timestamps are INTEGER microseconds since the Unix epoch (exact, cheap to
-- compare); ids are 16-byte UUID blobs.

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Refresh tokens are stored only as a SHA-256 of the token. `used_at` makes
-- them single-use: consuming one is a conditional UPDATE.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE products (
    id          BLOB PRIMARY KEY,
    seller_id   BLOB NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    description TEXT,
    price       INTEGER NOT NULL CHECK (price >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    category    TEXT,
    image_url   TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX products_category ON products(category, id);

-- `remaining_stock` units are set aside from the product. When the deal ends
-- they go back to the product and `settled_at` records when.
CREATE TABLE deals (
    id              BLOB PRIMARY KEY,
    product_id      BLOB NOT NULL REFERENCES products(id),
    deal_price      INTEGER NOT NULL CHECK (deal_price >= 0),
    deal_stock      INTEGER NOT NULL CHECK (deal_stock >= 1),
    remaining_stock INTEGER NOT NULL CHECK (remaining_stock >= 0),
    returned_stock  INTEGER NOT NULL DEFAULT 0,
    per_user_limit  INTEGER,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    settled_at      INTEGER,
    created_at      INTEGER NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX deals_window ON deals(ends_at, starts_at);
CREATE INDEX deals_unsettled ON deals(ends_at) WHERE settled_at IS NULL;

-- Orders and their lines are clustered by key (WITHOUT ROWID): one B-tree
-- write per row instead of a table plus a primary-key index, which is most
-- of the writer's work during a rush. Order ids are time-ordered (UUIDv7),
-- so inserts land at the right edge and "newest first" is id DESC.
CREATE TABLE orders (
    id               BLOB PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users(id),
    total_amount     INTEGER NOT NULL,
    discount_amount  INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    payment_status   TEXT NOT NULL,
    shipping_address TEXT,
    coupon_id        BLOB,
    cancel_reason    TEXT,
    cancelled_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX orders_by_user ON orders(user_id, id);

CREATE TABLE order_items (
    order_id     BLOB NOT NULL REFERENCES orders(id),
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

-- Units each user holds of a deal (non-cancelled orders), so a per-user
-- limit is one conditional upsert instead of a scan of the deal's orders.
CREATE TABLE deal_purchases (
    deal_id  BLOB NOT NULL,
    user_id  BLOB NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (deal_id, user_id)
) WITHOUT ROWID;
