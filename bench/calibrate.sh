#!/usr/bin/env bash
# Is the load tool a fair generator? Compares its requests/s on the
# cheapest route with wrk's, on the same fresh server, with the same
# connections: `hotdeal load health --vus 100 --duration 10s` against
# `wrk -t1 -c100 -d10s`. The tool must reach at least 60 % of wrk.
# Rounds alternate the two (ROUNDS, default 3) and the best of each
# counts, which damps noise from anything else running on the machine.
# Writes bench/results/calibration.json and prints both figures.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"

if ! command -v wrk >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing wrk (Debian package)" >&2
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        echo "bench: wrk is required (apt-get install wrk)" >&2
        exit 1
    fi
fi

build
start_server
mkdir -p "$RESULTS/health"

ours_best=0
wrk_best=0
ours_all=()
wrk_all=()
for round in $(seq 1 "$ROUNDS"); do
    "${LOAD[@]}" health --vus 100 --duration "${DURATION}s" --base-url "$BASE_URL" --server-pid "$SERVER_PID" \
        --out "$RESULTS/health" --quiet >"$RESULTS/health/summary.txt"
    ours=$(grep -A2 '"http_reqs"' "$RESULTS/health/summary.json" | sed -n 's/.*"per_s": *\([0-9.]*\).*/\1/p' | awk '{printf "%.1f", $1}')
    w=$(wrk -t1 -c100 -d"${DURATION}s" "$BASE_URL/health" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    echo "bench: round $round: hotdeal load ${ours} req/s, wrk ${w} req/s" >&2
    ours_all+=("$ours")
    wrk_all+=("$w")
    ours_best=$(awk -v a="$ours_best" -v b="$ours" 'BEGIN{print (b>a)?b:a}')
    wrk_best=$(awk -v a="$wrk_best" -v b="$w" 'BEGIN{print (b>a)?b:a}')
done

ratio=$(awk -v a="$ours_best" -v b="$wrk_best" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
pass=$(awk -v r="$ratio" 'BEGIN{print (r>=0.6)?"true":"false"}')
join() { local IFS=,; echo "$*"; }
cat >"$RESULTS/calibration.json" <<JSON
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "route": "GET /health",
  "connections": 100,
  "duration_s": $DURATION,
  "rounds": $ROUNDS,
  "hotdeal_load_command": "hotdeal load health --vus 100 --duration ${DURATION}s",
  "wrk_command": "wrk -t1 -c100 -d${DURATION}s $BASE_URL/health",
  "hotdeal_load_req_per_s": $ours_best,
  "wrk_req_per_s": $wrk_best,
  "hotdeal_load_rounds": [$(join "${ours_all[@]}")],
  "wrk_rounds": [$(join "${wrk_all[@]}")],
  "ratio": $ratio,
  "required_ratio": 0.6,
  "pass": $pass,
  "cores": $(grep -c ^processor /proc/cpuinfo),
  "ram_mb": $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
}
JSON
echo "calibration: hotdeal load ${ours_best} req/s vs wrk ${wrk_best} req/s → ratio ${ratio} (needs ≥ 0.6): $([[ $pass == true ]] && echo PASS || echo FAIL)"
[[ $pass == true ]]
