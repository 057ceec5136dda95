#!/usr/bin/env bash
# The embedded write path under wrk: server CPU-ms per request and
# requests/s for plain orders, paid orders with an Idempotency-Key, and
# GET /auth/users/me, on one fresh server (one SKU, 50 buyers).
#
#   bench/write_path.sh                    # 10 s per case
#   DURATION=20s BUILD=0 bench/write_path.sh
#   CASES="plain paid-idem" bench/write_path.sh
#   PROFILE=1 bench/write_path.sh          # under callgrind: instructions per request
#   CASES="plain fixed plain fixed" bench/write_path.sh   # beside the fixed-bytes yardstick
#
# `fixed` is examples/fixed_bytes.rs (the same accept loop and axum,
# answering POST /orders with constant bytes) under the `plain` load.
# Server CPU is read from /proc/PID/stat around each wrk run, so the
# figure is the server's own, whatever else the machine runs.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-10s}"
CONNS="${CONNS:-50}"
CASES="${CASES:-plain paid-idem me}"
USERS=50

if [[ "${PROFILE:-0}" != 0 ]]; then
    # Instructions per request are stable however busy the machine is;
    # sign-up hashes are made cheap so the setup stays short, and the
    # counters are zeroed after it.
    PROF_DIR="${PROF_DIR:-$(mktemp -d)}"
    SERVER_WRAP="valgrind --tool=callgrind --callgrind-out-file=$PROF_DIR/callgrind.out.%p"
    SERVER_ARGS="--argon2-memory-kib 64 --argon2-iterations 1"
    START_POLLS=1200
    CONNS="${CONNS_PROFILE:-10}"
fi

build
start_server

api() { # METHOD PATH [TOKEN] [BODY]
    local auth=()
    [[ -n "${3:-}" ]] && auth=(-H "authorization: Bearer $3")
    curl -sf -X "$1" "$BASE_URL$2" "${auth[@]}" -H 'content-type: application/json' ${4:+-d "$4"}
}

echo "bench: signing up $USERS buyers" >&2
TOKENS=()
for i in $(seq 1 "$USERS"); do
    t=$(api POST /auth/register "" "{\"email\":\"wp-$i@bench.example.com\",\"password\":\"password123\",\"name\":\"buyer $i\"}" | jq -r .access_token)
    api POST /points/charges "$t" '{"amount":10000000}' >/dev/null
    TOKENS+=("$t")
done
PRODUCT=$(api POST /products "${TOKENS[0]}" '{"name":"write path","description":"bench","price":100,"stock":0,"category":"bench"}' | jq -r .id)
api PATCH "/products/$PRODUCT/stock" "${TOKENS[0]}" '{"delta":100000000}' >/dev/null

LUA="$DATA_DIR/case.lua"
write_lua() { # CASE
    {
        echo "local tokens = {"
        printf '  "%s",\n' "${TOKENS[@]}"
        echo "}"
        cat <<EOF
local case = "$1"
local address = '"shipping_address":{"recipient_name":"Load Tester","phone":"010-1234-5678","address":"1 Teheran-ro, Gangnam-gu, Seoul","address_detail":"3F","postal_code":"06236"}'
local plain = '{"items":[{"product_id":"$PRODUCT","quantity":1}],' .. address .. '}'
local paid = '{"items":[{"product_id":"$PRODUCT","quantity":1}],' .. address .. ',"payment":{"method":"points"}}'
local n = 0
local tag = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  local h = { ["authorization"] = "Bearer " .. tokens[(n % #tokens) + 1], ["content-type"] = "application/json" }
  if case == "me" then
    return wrk.format("GET", "/auth/users/me", h)
  elseif case == "plain" then
    return wrk.format("POST", "/orders", h, plain)
  else
    h["idempotency-key"] = "k-" .. tag .. "-" .. n
    return wrk.format("POST", "/orders", h, paid)
  end
end
EOF
    } >"$LUA"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

FIXED_PID=""
if [[ " $CASES " == *" fixed "* ]]; then
    cargo build --release --example fixed_bytes >&2
    target/release/examples/fixed_bytes "127.0.0.1:$((PORT + 1))" &
    FIXED_PID=$!
    trap 'kill $FIXED_PID 2>/dev/null; stop_server' EXIT
    sleep 0.5
fi

for c in $CASES; do
    url="$BASE_URL" pid="$SERVER_PID"
    if [[ "$c" == fixed ]]; then
        write_lua plain
        url="http://127.0.0.1:$((PORT + 1))" pid="$FIXED_PID"
    else
        write_lua "$c"
    fi
    [[ "${PROFILE:-0}" != 0 ]] && callgrind_control -z "$SERVER_PID" >/dev/null
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c"$CONNS" -d"$DURATION" -s "$LUA" "$url")
    after=$(cpu_ticks "$pid")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    ok=$((reqs - ${bad:-0}))
    cpu_ms=$(( (after - before) * 1000 / HZ ))
    if [[ "${PROFILE:-0}" != 0 ]]; then
        callgrind_control -d "$c" "$SERVER_PID" >/dev/null
        sleep 1
        dump=$(ls -t "$PROF_DIR"/callgrind.out.* | head -1)
        ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
        cp "$dump" "$PROF_DIR/$c.callgrind"
        printf 'bench: %-10s %8d ok  %d instructions/ok req (profile %s)\n' "$c" "$ok" "$((ir / ok))" "$PROF_DIR/$c.callgrind"
        continue
    fi
    printf 'bench: %-10s %9s req/s  %8d ok  %6s non-2xx  server CPU %6d ms  %.4f CPU-ms/ok req\n' \
        "$c" "$rps" "$ok" "${bad:-0}" "$cpu_ms" "$(echo "$cpu_ms / $ok" | bc -l)"
done
