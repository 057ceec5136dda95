#!/usr/bin/env bash
# Runs one seed scenario against N instances of hotdeal in the scaled mode
# (one PostgreSQL, Redis and NATS JetStream shared by all), the load spread
# round robin over every instance, and the books checked across them.
#
#   bench/cluster.sh order-stress --think 0                  # 3 instances
#   bench/cluster.sh -n 5 coupon-rush --vus 500 --duration 30s
#   bench/cluster.sh --kill-one-after 20 order-stress --think 0   # chaos run
#   BUILD=0 bench/cluster.sh -n 2 fifo                       # reuse the binaries
#   bench/cluster.sh --split -n 2 order-stress --think 0     # the seeds' topology
#   bench/cluster.sh --split --serve                         # start it, no load (deploy/split.sh)
#
# Options (before the scenario; everything after it goes to `hotdeal load`):
#   -n N                  instances (default 3)
#   --kill-one-after SECS kill -9 the last instance SECS after the load tool
#                         starts (its setup included: allow for it); the
#                         run's failed requests show it, its books must
#                         still balance
#   --serve               no scenario: start everything, print the address
#                         to use, and keep serving until Ctrl-C (a process
#                         that stops leaves the others serving)
#   --out DIR             summary.json and report.html (default
#                         bench/results/cluster-<scenario>)
#   --split               the seeds' topology instead: one process of the
#                         auth, product, coupon and point roles (the stock
#                         tier, served over gRPC), N order processes that
#                         admit through it, and a gateway in front that the
#                         load tool talks to (rate limits off). With
#                         --kill-one-after, the product process is the one
#                         killed, and started again --down SECS later
#                         (default 3) while the others keep running
#
# Environment: DATABASE_URL, REDIS_URL, NATS_URL (default: the local
# services; REDIS_URL= NATS_URL= empty leave them out, for a `-n 1`
# single-node baseline), BUILD=0, HOTDEAL_BIN, SERVER_ARGS (extra flags for
# every instance), KEEP=1 (keep the schema, the Redis keys and the logs),
# WORKERS (runtime threads of each process; default one per core).
#
# Every run gets its own schema, Redis key prefix and NATS prefix (the same
# name), a fresh JWT secret shared by the instances, and free ports; on exit
# it stops only the instances it started, drops the schema and deletes the
# keys of its prefix. Exit code: the load tool's (0 passed, 1 a threshold or
# the books failed, 2 a route is missing), or 1 when the cluster failed.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL-nats://127.0.0.1:4222}"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-1}"
}

N=3
KILL_AFTER=""
OUT=""
SPLIT=0
DOWN=3
SERVE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) N="${2:-}"; shift 2 || usage ;;
        --kill-one-after) KILL_AFTER="${2:-}"; shift 2 || usage ;;
        --out) OUT="${2:-}"; shift 2 || usage ;;
        --split) SPLIT=1; shift ;;
        --serve) SERVE=1; shift ;;
        --down) DOWN="${2:-}"; shift 2 || usage ;;
        -h|--help) usage 0 ;;
        -*) echo "cluster: unknown option $1 (options go before the scenario)" >&2; usage ;;
        *) break ;;
    esac
done
if [[ "$SERVE" == 1 ]]; then
    [[ $# -eq 0 && -z "$KILL_AFTER" ]] || { echo "cluster: --serve runs no scenario and kills nothing" >&2; usage; }
    SCENARIO=serve
else
    [[ $# -ge 1 ]] || { echo "cluster: which scenario? (order-stress, coupon-rush, deal-spike, …)" >&2; usage; }
    SCENARIO="$1"
    shift
fi
if ! [[ "$N" =~ ^[0-9]+$ ]] || (( N < 1 || N > 64 )); then
    echo "cluster: -n takes 1 to 64 instances, not '$N'" >&2
    exit 1
fi
if [[ -n "$KILL_AFTER" ]]; then
    if ! [[ "$KILL_AFTER" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        echo "cluster: --kill-one-after takes seconds, not '$KILL_AFTER'" >&2
        exit 1
    fi
    if (( N < 2 && SPLIT == 0 )); then
        echo "cluster: --kill-one-after needs at least two instances (-n 2)" >&2
        exit 1
    fi
fi
if ! [[ "$DOWN" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    echo "cluster: --down takes seconds, not '$DOWN'" >&2
    exit 1
fi
OUT="${OUT:-$RESULTS/cluster-$SCENARIO}"

# One name for the schema, the Redis prefix and the NATS prefix: lower
# case, digits and `_`, valid for all three.
RUN_ID="hd_cluster_$$_${RANDOM}"
WORK_DIR=""
declare -a PIDS=() PORTS=() URLS=() HEALTH=() ROLE_ARGS=()
KILLER_PID=""

cleanup() {
    local code=$?
    if [[ -n "$KILLER_PID" ]] && kill -0 "$KILLER_PID" 2>/dev/null; then
        kill "$KILLER_PID" 2>/dev/null || true
        wait "$KILLER_PID" 2>/dev/null || true
    fi
    # Only the processes this script started, by their ids.
    local pid
    [[ -n "$WORK_DIR" && -f "$WORK_DIR/restarted.pid" ]] && PIDS+=("$(cat "$WORK_DIR/restarted.pid")")
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "cluster: kept schema and prefix $RUN_ID, logs in $WORK_DIR" >&2
        exit "$code"
    fi
    drop_run "$RUN_ID"
    [[ -n "$WORK_DIR" ]] && rm -rf "$WORK_DIR"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on, not already picked. The instance binds it a
# moment later; a collision in between fails its start, loudly. Below the
# kernel's ephemeral range (32768 and up on Linux), where the outgoing
# connections of everything on the machine take their ports.
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$(( 20000 + RANDOM % 12000 ))
        [[ " ${PORTS[*]} " == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "cluster: no free port found" >&2
    return 1
}

healthy() { # PORT [PATH]
    (exec 3<>"/dev/tcp/127.0.0.1/$1"
     printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "${2:-/health}" >&3
     grep -q 'healthy' <&3) 2>/dev/null
}

# Polls instance $1 (0-based) until it answers /health, at most 30 s.
wait_healthy() {
    local i=$1
    for _ in $(seq 1 "${START_POLLS:-300}"); do
        kill -0 "${PIDS[$i]}" 2>/dev/null || break
        healthy "${PORTS[$i]}" "${HEALTH[$i]:-/health}" && return 0
        sleep 0.1
    done
    echo "cluster: instance $((i + 1)) (${URLS[$i]}) did not come up; its log:" >&2
    tail -30 "$WORK_DIR/instance-$((i + 1)).log" >&2 || true
    return 1
}

build
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hotdeal-cluster.XXXXXX")"
# The instances must sign and check the same tokens: one secret, shared.
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$WORK_DIR/jwt-secret"
chmod 600 "$WORK_DIR/jwt-secret"

COUNT="$N"
if [[ "$SPLIT" == 1 ]]; then
    # Process 1 runs every role but orders and serves the stock tier over
    # gRPC; processes 2..N+1 are order services admitting through it.
    GRPC_PORT="$(free_port)"
    PORTS+=("$GRPC_PORT")
    ROLE_ARGS[0]="--role auth,product,coupon,point --grpc-listen 127.0.0.1:$GRPC_PORT"
    HEALTH[0]=/products/health
    for i in $(seq 1 "$N"); do
        ROLE_ARGS[$i]="--role order --product-url http://127.0.0.1:$GRPC_PORT"
        HEALTH[$i]=/orders/health
    done
    COUNT=$((N + 1))
    PORTS=()
    echo "cluster: split, 1 product process + $N order processes + a gateway, schema and prefix $RUN_ID" >&2
else
    echo "cluster: $N instances, schema and prefix $RUN_ID" >&2
fi
# Runtime threads per process: on this 2-core box one thread each did not
# beat the default (bench/RESULTS.md), so the default stays.
if [[ -n "${WORKERS:-}" ]]; then
    [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "cluster: WORKERS takes a number of threads, not '$WORKERS'" >&2; exit 1; }
    export HOTDEAL_WORKERS="$WORKERS"
    echo "cluster: $WORKERS runtime thread(s) per process" >&2
fi

# Starts instance $1 (1-based) on port $2, in the background.
start_instance() {
    local i=$1 port=$2
    # Anything an instance keeps on disk stays out of the repository.
    mkdir -p "$WORK_DIR/instance-$i"
    # The service URLs go in the environment, not on the command line, so
    # `ps` does not show a password one of them may hold. An empty REDIS_URL
    # or NATS_URL leaves that service out: `-n 1` then is the single-node
    # PostgreSQL baseline to compare a cluster with.
    env_vars=(HOTDEAL_DATABASE_URL="$DATABASE_URL")
    [[ -n "$REDIS_URL" ]] && env_vars+=(HOTDEAL_REDIS_URL="$REDIS_URL" HOTDEAL_REDIS_PREFIX="$RUN_ID")
    # A bench run's stream need not reserve the production default (1 GiB).
    [[ -n "$NATS_URL" ]] && env_vars+=(HOTDEAL_NATS_URL="$NATS_URL" HOTDEAL_NATS_PREFIX="$RUN_ID"
        HOTDEAL_NATS_STREAM_MAX_BYTES="${HOTDEAL_NATS_STREAM_MAX_BYTES:-67108864}")
    # shellcheck disable=SC2086 # SERVER_ARGS is a list of words on purpose
    env "${env_vars[@]}" \
    "${HOTDEAL_BIN:-$BIN_DIR/hotdeal}" serve \
        --listen "127.0.0.1:$port" --admin-listen off \
        --data-dir "$WORK_DIR/instance-$i" \
        --database-schema "$RUN_ID" \
        --jwt-secret-file "$WORK_DIR/jwt-secret" \
        ${ROLE_ARGS[$((i - 1))]:-} ${SERVER_ARGS:-} >>"$WORK_DIR/instance-$i.log" 2>&1 &
}

for i in $(seq 1 "$COUNT"); do
    port="$(free_port)"
    [[ "$SPLIT" == 1 && "$port" == "$GRPC_PORT" ]] && port="$(free_port)"
    PORTS+=("$port")
    start_instance "$i" "$port"
    PIDS+=("$!")
    URLS+=("http://127.0.0.1:$port")
    if (( i == 1 )); then
        # The first instance creates the schema and its tables; the others
        # start once it answers, so they never race its migration.
        wait_healthy 0 || exit 1
    fi
done

for i in "${!PIDS[@]}"; do
    wait_healthy "$i" || exit 1
    echo "cluster: instance $((i + 1)) (pid ${PIDS[$i]}) on ${URLS[$i]}" >&2
done

BASE_URLS="$(IFS=,; echo "${URLS[*]}")"
if [[ "$SPLIT" == 1 ]]; then
    # The gateway: no store; every role but orders on process 1.
    port="$(free_port)"
    PORTS+=("$port")
    orders="$(IFS=,; echo "${URLS[*]:1}")"
    HOTDEAL_RATE_LIMIT_USER_PER_SEC=0 HOTDEAL_RATE_LIMIT_IP_PER_SEC=0 \
    "${HOTDEAL_BIN:-$BIN_DIR/hotdeal}" serve --role gateway \
        --listen "127.0.0.1:$port" --admin-listen off \
        --data-dir "$WORK_DIR/gateway" \
        --jwt-secret-file "$WORK_DIR/jwt-secret" \
        --upstream "all=${URLS[0]}" --upstream "order=$orders" \
        >"$WORK_DIR/gateway.log" 2>&1 &
    PIDS+=("$!")
    URLS+=("http://127.0.0.1:$port")
    HEALTH+=(/health)
    wait_healthy $((${#PIDS[@]} - 1)) || exit 1
    echo "cluster: gateway (pid ${PIDS[-1]}) on ${URLS[-1]}" >&2
    BASE_URLS="${URLS[-1]}"
fi
if [[ "$SERVE" == 1 ]]; then
    echo "cluster: serving on $BASE_URLS (logs in $WORK_DIR); Ctrl-C stops everything" >&2
    # Until a signal. A process that stops (or is killed, to watch the
    # others answer without it) leaves the rest serving.
    while true; do
        status=0
        wait -n || status=$?
        (( status == 127 )) && break # no process left
        echo "cluster: a process stopped; the others keep serving" >&2
    done
    exit 1
fi
mkdir -p "$OUT"

if [[ -n "$KILL_AFTER" && "$SPLIT" == 1 ]]; then
    # The product process (the stock tier): orders must get fast 503s while
    # it is down, and go through again once it is back, with nothing else
    # restarted.
    victim="${PIDS[0]}"
    (
        sleep "$KILL_AFTER"
        if kill -0 "$victim" 2>/dev/null; then
            kill -9 "$victim"
            echo "cluster: killed the product process (pid $victim) with SIGKILL" >&2
            sleep "$DOWN"
            start_instance 1 "${PORTS[0]}"
            echo "$!" >"$WORK_DIR/restarted.pid"
            echo "cluster: started the product process again (pid $!)" >&2
        fi
    ) &
    KILLER_PID=$!
elif [[ -n "$KILL_AFTER" ]]; then
    # The last instance: setup and the books start at the first URL, so
    # killing that one would test the failover of setup instead of the run.
    victim="${PIDS[$((N - 1))]}"
    victim_url="${URLS[$((N - 1))]}"
    # Timed from the start of the load tool, whose setup comes first: the
    # delay must cover it (a short setup is a few seconds).
    (
        sleep "$KILL_AFTER"
        if kill -0 "$victim" 2>/dev/null; then
            kill -9 "$victim"
            echo "cluster: killed instance $N (pid $victim, $victim_url) with SIGKILL" >&2
        fi
    ) &
    KILLER_PID=$!
fi

set +e
"${LOAD[@]}" "$SCENARIO" --base-url "$BASE_URLS" --out "$OUT" "$@" | tee "$OUT/summary.txt"
code=${PIPESTATUS[0]}
set -e

if [[ -f "$WORK_DIR/restarted.pid" ]]; then
    PIDS[0]="$(cat "$WORK_DIR/restarted.pid")"
fi
for i in "${!PIDS[@]}"; do
    if [[ -n "$KILL_AFTER" && "$SPLIT" == 0 && "$i" == $((N - 1)) ]]; then
        continue
    fi
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        echo "cluster: instance $((i + 1)) died during the run; its log:" >&2
        tail -30 "$WORK_DIR/instance-$((i + 1)).log" >&2 || true
        (( code == 0 )) && code=1
    fi
done
echo "cluster: results in $OUT" >&2
exit "$code"
