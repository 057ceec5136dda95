#!/usr/bin/env bash
# Soak: a fresh hotdeal takes orders for a long time at half of its measured
# capacity; every 10 s the server's RSS, the database size, the request rate
# and the worst per-second p99 of the window are written down. A leak shows
# as RSS that keeps climbing, a slow degradation as a p99 that does.
#
#   bench/soak.sh                         # 20 s capacity run, then 30 min at half of it
#   DURATION=2m bench/soak.sh             # a short soak
#   RATE=3000 bench/soak.sh               # a fixed rate, no capacity run
#
# Results in bench/results/soak/: capacity/ and run/ (the load tool's reports),
# samples.tsv (one line per 10 s) and summary.txt.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-30m}"
OUT="$RESULTS/soak"
rm -rf "$OUT"
mkdir -p "$OUT"

build
start_server

if [[ -z "${RATE:-}" ]]; then
    echo "bench: measuring capacity (order-stress --think 0, 20 s)" >&2
    "${LOAD[@]}" order-stress --think 0 --stages 5s:50,15s:50 --stock 100000000 \
        --base-url "$BASE_URL" --server-pid "$SERVER_PID" --out "$OUT/capacity" --quiet \
        > "$OUT/capacity.txt"
    capacity=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["http_reqs"]["per_s"]))' \
        "$OUT/capacity/summary.json")
    RATE=$((capacity / 2))
    echo "bench: capacity ${capacity} orders/s; soaking at ${RATE}/s for ${DURATION}" >&2
fi

# RSS and database size every 10 s, on the server's clock.
(
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        db=$(du -sk "$DATA_DIR" 2>/dev/null | cut -f1)
        wal=$(du -sk "$DATA_DIR/hotdeal.db-wal" 2>/dev/null | cut -f1)
        echo "$(date +%s) $rss $db ${wal:-0}"
        sleep 10
    done
) > "$OUT/rss.raw" &
sampler=$!

set +e
"${LOAD[@]}" order-stress --rate "$RATE" --duration "$DURATION" --stock 1000000000 \
    --base-url "$BASE_URL" --server-pid "$SERVER_PID" --out "$OUT/run" --quiet \
    | tee "$OUT/run.txt"
code=${PIPESTATUS[0]}
set -e
kill "$sampler" 2>/dev/null || true

python3 - "$OUT" "$RATE" "$DURATION" "$code" <<'EOF'
import json, sys
out, rate, duration, code = sys.argv[1:]
run = json.load(open(f"{out}/run/summary.json"))
series = run["timeseries"]
raw = [l.split() for l in open(f"{out}/rss.raw") if l.strip()]
start = int(raw[0][0]) if raw else 0
rows = ["t_s\trss_mib\tdata_mib\twal_mib\treq_per_s\tp99_ms_worst_second\tfailed"]
for i, (ts, rss, db, wal) in enumerate(raw):
    t = int(ts) - start
    window = [s for s in series if t - 10 <= s["t"] < t]
    reqs = sum(s["requests"] for s in window) / 10 if window else 0
    p99 = max((s["p99_ms"] for s in window), default=0)
    failed = sum(s["failed"] for s in window)
    rows.append(
        f"{t}\t{int(rss) / 1024:.1f}\t{int(db) / 1024:.1f}\t{int(wal) / 1024:.1f}\t{reqs:.0f}\t{p99:.2f}\t{failed}"
    )
open(f"{out}/samples.tsv", "w").write("\n".join(rows) + "\n")
rss = [int(r[1]) / 1024 for r in raw]
d = run["http_req_duration"]
summary = (
    f"soak: {duration} at {rate} orders/s; load tool exit {code}\n"
    f"requests {run['http_reqs']['count']}, failed {run['http_req_failed']['rate']:.4%}, "
    f"p95 {d['p95_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms, max {d['max_ms']:.2f} ms\n"
    f"RSS first {rss[0] if rss else 0:.1f} MiB, max {max(rss, default=0):.1f} MiB, "
    f"last {rss[-1] if rss else 0:.1f} MiB\n"
)
open(f"{out}/summary.txt", "w").write(summary)
print(summary, end="")
EOF
exit "$code"
