#!/usr/bin/env bash
# The seeds' topology on this machine, in one command: a process of the
# auth, product, coupon and point roles (the stock tier, served over gRPC),
# two order processes admitting through it, and a gateway in front, on the
# local PostgreSQL, Redis and NATS JetStream (DATABASE_URL, REDIS_URL and
# NATS_URL override them). It builds the release binary first (BUILD=0
# skips it), prints the gateway's address and serves until Ctrl-C, then
# stops every process and drops its schema, keys and stream (KEEP=1 keeps
# them). `-n N` runs N order processes.
#
#   deploy/split.sh
#   curl "$(…printed address…)/health"
exec "$(dirname "${BASH_SOURCE[0]}")/../bench/cluster.sh" --split -n 2 --serve "$@"
