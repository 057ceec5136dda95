#!/usr/bin/env bash
# The cost of metrics and tracing: two release binaries (before, after),
# the same load commands against a fresh server each, alternated A/B/A/B
# because the machine is noisy. Prints one line per run: binary, scenario,
# requests/s, p95 ms.
#
#   bench/obs-cost.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
set -euo pipefail
before=$1 after=$2 rounds=${3:-2}
port=18400
# The admin listener (after only; before ignores the variable) on any free port.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # binary label scenario args...
  local bin=$1 label=$2 scenario=$3; shift 3
  local dir="$work/$label-$scenario-$RANDOM"
  HOTDEAL_ADMIN_LISTEN=127.0.0.1:0 "$bin" serve --listen 127.0.0.1:$port --data-dir "$dir/data" >"$dir.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # The same load generator for both sides.
  "$after" load "$scenario" --base-url "http://127.0.0.1:$port" --server-pid "$pid" \
    --quiet --out "$dir/out" "$@" >/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], round(s["http_reqs"]["per_s"],1), round(s["http_req_duration"]["p95_ms"],2))' \
    "$dir/out/summary.json" "$label" "$scenario"
}

for _ in $(seq "$rounds"); do
  for side in before after; do
    bin=${!side}
    run "$bin" "$side" deal-spike --stages 5s:100,15s:100
    run "$bin" "$side" order-stress --stages 5s:50,15s:50 --think 0
  done
done
