# Shared by bench/run.sh and bench/calibrate.sh (sourced, not run).
#
# Builds the release binaries, starts a fresh hotdeal on a temporary data
# directory, and stops it on exit. The load tool is `hotdeal load` when the
# server binary has that subcommand, else the crate's stand-alone runner.

set -euo pipefail

# Work from the repository root with relative paths, so the command lines
# recorded in the reports read the same on every machine.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PORT="${PORT:-18080}"
BASE_URL="http://127.0.0.1:${PORT}"
RESULTS="${RESULTS:-bench/results}"
# Where cargo puts the release binaries (it honours CARGO_TARGET_DIR).
BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
SERVER_PID=""
DATA_DIR=""
# DATABASE_URL=postgres://USER@HOST/DB runs the server on PostgreSQL, in a
# fresh schema dropped on exit; unset, on SQLite in the data directory.
DATABASE_URL="${DATABASE_URL:-}"
PG_SCHEMA=""

# Drops what a scaled-mode run named RUN left outside its data dirs: the
# PostgreSQL schema, the Redis keys of its prefix and its NATS stream
# (DATABASE_URL, REDIS_URL and NATS_URL; an empty one is skipped).
drop_run() { # RUN
    local run="$1"
    if command -v psql >/dev/null; then
        psql "$DATABASE_URL" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $run CASCADE" \
            >/dev/null 2>&1 || echo "bench: could not drop schema $run" >&2
    else
        echo "bench: no psql here; drop schema $run by hand" >&2
    fi
    if [[ -z "${REDIS_URL:-}" ]]; then
        :
    elif command -v redis-cli >/dev/null; then
        redis-cli -u "$REDIS_URL" --scan --pattern "${run}*" 2>/dev/null \
            | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 \
            || echo "bench: could not delete the Redis keys ${run}*" >&2
    else
        echo "bench: no redis-cli here; delete the Redis keys ${run}* by hand" >&2
    fi
    # The stream, deleted over the NATS text protocol (no client needed):
    # `PUB $JS.API.STREAM.DELETE.<stream>`.
    if [[ -n "${NATS_URL:-}" ]]; then
        local hostport="${NATS_URL#nats://}" stream
        hostport="${hostport##*@}"
        stream="$(tr '[:lower:]' '[:upper:]' <<<"$run")_EVENTS"
        (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" \
            && printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.%s 0\r\n\r\nPING\r\n' "$stream" >&3 \
            && timeout 2 head -c 300 <&3 >/dev/null) 2>/dev/null \
            || echo "bench: could not delete the NATS stream $stream" >&2
    fi
}

build() {
    # BUILD=0 reuses the binaries already in target/release.
    if [[ "${BUILD:-1}" != 0 ]]; then
        echo "bench: cargo build --release" >&2
        cargo build --release
    fi
    if "$BIN_DIR/hotdeal" load --help >/dev/null 2>&1; then
        LOAD=("$BIN_DIR/hotdeal" load)
    else
        echo "bench: this hotdeal has no 'load' subcommand; using the hotdeal-load runner" >&2
        if [[ "${BUILD:-1}" != 0 || ! -x "$BIN_DIR/examples/hotdeal-load" ]]; then
            cargo build --release -p hotdeal-load --example hotdeal-load
        fi
        LOAD=("$BIN_DIR/examples/hotdeal-load")
    fi
}

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
    if [[ -n "$DATA_DIR" ]]; then
        rm -rf "$DATA_DIR"
        DATA_DIR=""
    fi
    if [[ -n "$PG_SCHEMA" ]]; then
        psql "$DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
        PG_SCHEMA=""
    fi
}

start_server() {
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then
        echo "bench: something already listens on port ${PORT}; set PORT=… to another port" >&2
        exit 1
    fi
    DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hotdeal-bench.XXXXXX")"
    local store=()
    if [[ -n "$DATABASE_URL" ]]; then
        PG_SCHEMA="bench_$$_${RANDOM}"
        # Passed in the environment, not on the command line (`ps` shows it).
        export HOTDEAL_DATABASE_URL="$DATABASE_URL"
        store=(--database-schema "$PG_SCHEMA")
    fi
    # SERVER_WRAP runs the server under another program (valgrind);
    # SERVER_ARGS adds flags; HOTDEAL_BIN serves another build. The admin
    # listener (metrics, ops page) goes to ADMIN_LISTEN, by default a free
    # port: a bench must not collide with a server already on 9090.
    # shellcheck disable=SC2086 # both are lists of words on purpose
    HOTDEAL_ADMIN_LISTEN="${ADMIN_LISTEN:-127.0.0.1:0}" \
    ${SERVER_WRAP:-} "${HOTDEAL_BIN:-$BIN_DIR/hotdeal}" serve --listen "127.0.0.1:${PORT}" --data-dir "$DATA_DIR" \
        "${store[@]}" ${SERVER_ARGS:-} >"$DATA_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    trap stop_server EXIT
    # Poll until the server answers /health (at most 30 s).
    for _ in $(seq 1 "${START_POLLS:-300}"); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: the server exited during start-up:" >&2
            cat "$DATA_DIR/server.log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}"; printf 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3; grep -q 'healthy' <&3) 2>/dev/null; then
            echo "bench: hotdeal (pid $SERVER_PID) listening on ${BASE_URL}, data in $DATA_DIR" >&2
            return 0
        fi
        sleep 0.1
    done
    echo "bench: the server did not answer within 30 s" >&2
    exit 1
}

# One socket per VU on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
