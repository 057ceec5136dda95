#!/usr/bin/env bash
# Runs seed scenarios at full length against a fresh hotdeal and keeps the
# reports: bench/results/<scenario>/{summary.txt,summary.json,report.html}.
#
#   bench/run.sh                      # every scenario
#   bench/run.sh order-stress fifo    # some of them (e2e-case1..3 for e2e)
#   PORT=18081 bench/run.sh           # another port
#   BUILD=0 bench/run.sh              # reuse the binaries in target/release
#   EXTRA="--stages 3s:20,5s:20" bench/run.sh order-stress   # smoke run
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bench/run.sh   # on PostgreSQL
#
# One server serves the whole list (data from earlier scenarios stays, as
# it would in production). Exit code: the worst scenario's (0 all passed,
# 1 a threshold or the books failed, 2 a route is missing on the server).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL=(order-stress deal-spike order-load order-spike coupon-rush e2e-case1 e2e-case2 e2e-case3 order-overload fifo auth-stress)
if [[ $# -gt 0 ]]; then SCENARIOS=("$@"); else SCENARIOS=("${ALL[@]}"); fi

build
start_server

worst=0
declare -a SUMMARY=()
for name in "${SCENARIOS[@]}"; do
    case "$name" in
        e2e-case[123]) args=(e2e --case "${name#e2e-case}") ;;
        e2e) name=e2e-case1; args=(e2e --case 1) ;;
        *) args=("$name") ;;
    esac
    out="$RESULTS/$name"
    mkdir -p "$out"
    echo "bench: ── $name ──" >&2
    set +e
    # shellcheck disable=SC2086 # EXTRA is a list of flags on purpose
    "${LOAD[@]}" "${args[@]}" --base-url "$BASE_URL" --server-pid "$SERVER_PID" --out "$out" ${EXTRA:-} \
        | tee "$out/summary.txt"
    code=${PIPESTATUS[0]}
    set -e
    SUMMARY+=("$(printf '%-16s exit %s' "$name" "$code")")
    if (( code > worst )); then worst=$code; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench: the server died during $name; its log:" >&2
        tail -50 "$DATA_DIR/server.log" >&2 || true
        exit 1
    fi
done

echo >&2
echo "bench: results in $RESULTS" >&2
printf '  %s\n' "${SUMMARY[@]}" >&2
exit "$worst"
