#!/usr/bin/env bash
# Every figure of bench/RESULTS.md in one go (about 30 minutes): the seed
# scenarios at full length, then the variants the issues ask about.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BUILD="${BUILD:-1}"

bench/run.sh || true
export BUILD=0
# Coupon rush at the seed's larger VU counts (60 s each instead of 5 min).
RESULTS=bench/results/coupon-rush-1000 EXTRA="--vus 1000 --duration 60s" bench/run.sh coupon-rush || true
RESULTS=bench/results/coupon-rush-2000 EXTRA="--vus 2000 --duration 60s" bench/run.sh coupon-rush || true
# Saturation: no think time.
RESULTS=bench/results/order-stress-think0 EXTRA="--think 0" bench/run.sh order-stress || true
# fsync on every commit (power-loss durability).
HOTDEAL_DURABILITY=power RESULTS=bench/results/order-stress-think0-fsync EXTRA="--think 0" \
    bench/run.sh order-stress || true
