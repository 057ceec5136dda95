#!/usr/bin/env bash
# Fuzzes a real hotdeal against its own /openapi.json with schemathesis:
# every operation, every check (no 5xx, status codes and bodies as
# documented, invalid data refused, valid data accepted, auth enforced).
# Any failure fails the run. The server gets a throwaway data dir and port,
# the demo catalogue, and is stopped on exit.
#
# Knobs: MAX_EXAMPLES (cases per operation and phase, default 100), SEED.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

# A pinned schemathesis in a venv under the (git-ignored) target dir,
# reused while it holds the pinned version.
venv="$target/schemathesis-venv"
pinned="$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")"
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $pinned" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv support separately.
    rm -rf "$venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

cargo build --quiet -p hotdeal --bin hotdeal
bin="$target/debug/hotdeal"

work="$(mktemp -d)"
server=""
stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

# Port 0: the server picks a free port and logs it.
: >"$work/server.log"
HOTDEAL_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
  RUST_LOG=info NO_COLOR=1 HOTDEAL_ADMIN_LISTEN=off \
  "$bin" serve --config "$work/none.toml" --listen 127.0.0.1:0 --data-dir "$work/data" --demo \
  >"$work/server.log" 2>&1 &
server=$!
addr=""
for _ in $(seq 1 300); do
  addr="$(sed -n 's/.*hotdeal listening addr=\([0-9.:]*\).*/\1/p' "$work/server.log" | head -n1 || true)"
  [ -n "$addr" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$work/server.log" >&2
    echo "schemathesis: the server did not start" >&2
    exit 1
  fi
  sleep 0.2
done
if [ -z "$addr" ]; then
  cat "$work/server.log" >&2
  echo "schemathesis: the server did not report its address" >&2
  exit 1
fi
base="http://$addr"

# A signed-in user for the protected operations.
email="fuzz-$(date +%s)-$$@example.com"
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"fuzz-password\",\"name\":\"Fuzz User\"}" \
  "$base/auth/register"
token="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"fuzz-password\"}" "$base/auth/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

started=$SECONDS
status=0
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "${MAX_EXAMPLES:-100}" \
  ${SEED:+--seed "$SEED"} \
  --workers 2 \
  --request-timeout 10 \
  --no-color \
  --report junit --report-dir "$target/schemathesis-report" || status=$?
echo "schemathesis: finished in $((SECONDS - started)) s, exit status $status"
if [ "$status" -ne 0 ]; then
  echo "--- server log (tail) ---" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
