#!/usr/bin/env bash
# Prints the CPU time (ms) the shared services have used so far:
# PostgreSQL (every live process, and the backends that already exited,
# which the postmaster has reaped), NATS and Redis. Run it before and after
# a load run and divide the difference by the requests the load tool
# counted; the hotdeal processes' own CPU is in the load tool's report
# (`server_cpu`). Linux only (/proc).
set -euo pipefail
hz=$(getconf CLK_TCK)
postmaster=$(pgrep -o -x postgres || true)
ticks=0
for pid in $(pgrep -x postgres) $(pgrep -x nats-server) $(pgrep -x redis-server); do
    # Fields after the command name: utime 14, stime 15, cutime 16, cstime 17.
    read -r -a f <"/proc/$pid/stat" 2>/dev/null || continue
    ticks=$((ticks + f[13] + f[14]))
    [[ "$pid" == "$postmaster" ]] && ticks=$((ticks + f[15] + f[16]))
done
echo $((ticks * 1000 / hz))
