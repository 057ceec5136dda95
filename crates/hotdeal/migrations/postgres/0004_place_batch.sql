-- A batch of orders that use no coupon and pay no points (the common
-- flash-sale order: placed now, paid later) in one call, so one round trip
-- and no client in the middle of the transaction.
--
-- The statements are those of the multi-statement path (fence, per-user
-- deal counts, orders, lines, outbox, idempotency answers, and last the
-- hot stock rows), run in the caller's implicit transaction. A stock row
-- stays locked from its update to the commit's flush with no network
-- round trip in between: with several instances ordering the same SKU,
-- that lock is what their batches queue for.
--
-- Anything that does not add up raises SQLSTATE HD001 and nothing is
-- written; the caller then places the orders one by one, where each
-- failing order fails alone (the same fallback as the multi-statement
-- path).
CREATE FUNCTION place_order_batch(
    o_id uuid[], o_user uuid[], o_total bigint[], o_discount bigint[],
    o_status text[], o_payment text[], o_address text[],
    o_created timestamptz[], o_updated timestamptz[], o_pay_by timestamptz[],
    l_order uuid[], l_no bigint[], l_id uuid[], l_product uuid[], l_deal uuid[],
    l_name text[], l_quantity bigint[], l_unit_price bigint[], l_subtotal bigint[],
    e_topic text[], e_payload text[], written_at timestamptz,
    a_user uuid[], a_key text[], a_hash bytea[], a_status integer[], a_body bytea[],
    h_deal uuid[], h_user uuid[], h_quantity bigint[],
    p_id uuid[], p_quantity bigint[], p_last timestamptz[],
    d_id uuid[], d_quantity bigint[], d_first timestamptz[], d_last timestamptz[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    -- An id the reconciler aborted first is already there.
    INSERT INTO reservations (id, committed) SELECT unnest(o_id), true
        ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> cardinality(o_id) THEN
        RAISE EXCEPTION 'a reservation of the batch was decided before it' USING ERRCODE = 'HD001';
    END IF;

    IF cardinality(h_deal) > 0 THEN
        INSERT INTO deal_purchases AS p (deal_id, user_id, quantity)
            SELECT x.d, x.u, x.q FROM UNNEST(h_deal, h_user, h_quantity) AS x(d, u, q)
            JOIN deals d ON d.id = x.d
            WHERE d.per_user_limit IS NULL OR x.q <= d.per_user_limit
        ON CONFLICT (deal_id, user_id) DO UPDATE SET quantity = p.quantity + excluded.quantity
            WHERE p.quantity + excluded.quantity <= COALESCE(
                (SELECT per_user_limit FROM deals WHERE id = excluded.deal_id),
                p.quantity + excluded.quantity);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(h_deal) THEN
            RAISE EXCEPTION 'a per-user deal limit would be passed' USING ERRCODE = 'HD001';
        END IF;
    END IF;

    INSERT INTO orders (id, user_id, total_amount, discount_amount, status, payment_status,
                        shipping_address, created_at, updated_at, pay_by)
        SELECT * FROM UNNEST(o_id, o_user, o_total, o_discount, o_status, o_payment,
                             o_address, o_created, o_updated, o_pay_by);
    INSERT INTO order_items (order_id, line_no, id, product_id, deal_id, product_name,
                             quantity, unit_price, subtotal)
        SELECT * FROM UNNEST(l_order, l_no, l_id, l_product, l_deal, l_name,
                             l_quantity, l_unit_price, l_subtotal);
    INSERT INTO outbox (topic, payload, created_at)
        SELECT t, p, written_at FROM UNNEST(e_topic, e_payload) WITH ORDINALITY AS x(t, p, k)
        ORDER BY k;
    IF cardinality(a_user) > 0 THEN
        INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at)
            SELECT u, k, h, s, b, written_at
            FROM UNNEST(a_user, a_key, a_hash, a_status, a_body) AS x(u, k, h, s, b);
    END IF;

    -- The hot rows last, locked in key order when there are several.
    IF cardinality(p_id) > 0 THEN
        IF cardinality(p_id) > 1 THEN
            PERFORM 1 FROM products WHERE id = ANY(p_id) ORDER BY id FOR UPDATE;
        END IF;
        UPDATE products p SET stock = p.stock - x.q, updated_at = x.last
            FROM UNNEST(p_id, p_quantity, p_last) AS x(id, q, last)
            WHERE p.id = x.id AND p.stock >= x.q;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(p_id) THEN
            RAISE EXCEPTION 'a product is short of stock' USING ERRCODE = 'HD001';
        END IF;
    END IF;
    IF cardinality(d_id) > 0 THEN
        IF cardinality(d_id) > 1 THEN
            PERFORM 1 FROM deals WHERE id = ANY(d_id) ORDER BY id FOR UPDATE;
        END IF;
        UPDATE deals d SET remaining_stock = d.remaining_stock - x.q
            FROM UNNEST(d_id, d_quantity, d_first, d_last) AS x(id, q, first, last)
            WHERE d.id = x.id AND d.remaining_stock >= x.q AND d.settled_at IS NULL
              AND d.starts_at <= x.first AND d.ends_at > x.last;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(d_id) THEN
            RAISE EXCEPTION 'a deal is short of stock or not running' USING ERRCODE = 'HD001';
        END IF;
    END IF;
END
$$;
