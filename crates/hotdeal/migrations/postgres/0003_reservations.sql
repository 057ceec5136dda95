-- The fence between a shared admission tier (Redis) and the store. A
-- reservation in the tier is named by the id of the write it holds units
-- for (an order id, a user-coupon id). The write records its id here as
-- committed, in its own transaction; the reconciler records an overdue
-- reservation's id as aborted. Whichever inserts first wins: the other's
-- insert does nothing, and the loser reads the outcome. So a reservation
-- is either committed (its units stay taken) or aborted (its units go
-- back), never both.
CREATE TABLE reservations (
    id uuid PRIMARY KEY,
    committed boolean NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);

-- Pruned by age once no reservation can be pending any more.
CREATE INDEX reservations_decided_at ON reservations (decided_at);
