#!/usr/bin/env bash
# kill -9 chaos, repeated: each round runs order-stress on N instances in
# the scaled mode (bench/cluster.sh), kills one instance mid-rush, lets the
# survivors reconcile the dead instance's reservations, then checks the
# books in PostgreSQL and Redis themselves:
#   - every 201 is an order in the store (none lost); an order stored
#     without its 201 is one the killed instance committed and could not
#     answer, so at most one per request left without an answer;
#   - product stock + orders = the initial stock (nothing oversold);
#   - Redis counts the store's stock and holds no reservation (nothing
#     stranded after reconciliation).
#
#   bench/chaos.sh            # 5 rounds, 3 instances, kill after 12 s
#   ROUNDS=10 N=4 KILL_AFTER=8 bench/chaos.sh
#
# Needs psql and redis-cli. Environment as for bench/cluster.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-5}"
N="${N:-3}"
KILL_AFTER="${KILL_AFTER:-12}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
# Short reservations, so the survivors reconcile within the round.
export HOTDEAL_RESERVATION_TTL_SECS="${HOTDEAL_RESERVATION_TTL_SECS:-3}"
INITIAL=1000000   # order-stress seeds its product with this many units

failed=0
for round in $(seq 1 "$ROUNDS"); do
    log="$(mktemp)"
    KEEP=1 bench/cluster.sh -n "$N" --kill-one-after "$KILL_AFTER" --out "bench/results/chaos" \
        order-stress --think 0 --stages 5s:50,20s:50 >"$log" 2>&1 || true
    run="$(sed -n 's/^cluster: kept schema and prefix \([a-z0-9_]*\),.*/\1/p' "$log")"
    work="$(sed -n 's/.*, logs in \(.*\)$/\1/p' "$log")"
    answered="$(sed -n 's/.*✓ \([0-9]*\) \/ ✗.*/\1/p' "$log" | head -1)"
    unanswered="$(sed -n 's/.*(\([0-9]*\) no answer).*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')"
    if [[ -z "$run" || -z "$answered" ]]; then
        echo "round $round: the run did not complete; log: $log" >&2
        failed=1
        continue
    fi
    sleep $(( HOTDEAL_RESERVATION_TTL_SECS + 3 ))   # deadline + a reconciler round
    read -r orders stock aborted <<<"$(psql "$DATABASE_URL" -Atc \
        "select (select count(*) from $run.orders), (select stock from $run.products),
                (select count(*) from $run.reservations where not committed)" | tr '|' ' ')"
    tier=0 held=0
    for key in $(redis-cli -u "$REDIS_URL" --scan --pattern "$run:*:units"); do
        tier=$(redis-cli -u "$REDIS_URL" get "$key")
    done
    for key in $(redis-cli -u "$REDIS_URL" --scan --pattern "$run:*:resv"); do
        held=$(( held + $(redis-cli -u "$REDIS_URL" hlen "$key") ))
    done
    verdict=ok
    (( orders >= answered )) || verdict="LOST 201s"
    (( orders <= answered + unanswered )) || verdict="ORDERS NOBODY ASKED FOR"
    [[ $(( stock + orders )) == "$INITIAL" ]] || verdict="OVERSOLD OR LOST UNITS"
    [[ "$tier" == "$stock" && "$held" == 0 ]] || verdict="STRANDED IN THE TIER"
    printf 'round %d: 201s %s, unanswered %s, orders stored %s, stock %s (+ orders = %s), aborted reservations %s, tier %s, reservations left %s: %s\n' \
        "$round" "$answered" "$unanswered" "$orders" "$stock" $(( stock + orders )) "$aborted" "$tier" "$held" "$verdict"
    [[ "$verdict" == ok ]] || failed=1
    # The round's backend, as bench/cluster.sh would have dropped it.
    drop_run "$run"
    rm -rf "$work" "$log"
done
exit "$failed"
