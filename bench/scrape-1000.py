#!/usr/bin/env python3
"""Times GET /metrics with 1,000 live deals.

    hotdeal serve --listen 127.0.0.1:18400 --admin-listen 127.0.0.1:18401 &
    bench/scrape-1000.py http://127.0.0.1:18400 http://127.0.0.1:18401
"""
import json, sys, time, urllib.request
from datetime import datetime, timedelta, timezone

api, admin = sys.argv[1], sys.argv[2]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(api + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

email = f"scrape-{time.time_ns()}@example.com"
call("POST", "/auth/register", {"email": email, "password": "password123", "name": "Bench"})
token = call("POST", "/auth/login", {"email": email, "password": "password123"})["access_token"]
product = call("POST", "/products", {"name": "Bench", "price": 1000, "stock": 1000}, token)["id"]
now = datetime.now(timezone.utc)
for _ in range(1000):
    call("POST", "/products/deals", {
        "product_id": product, "deal_price": 500, "deal_stock": 1,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()}, token)
times, size = [], 0
for _ in range(20):
    t = time.perf_counter()
    with urllib.request.urlopen(admin + "/metrics") as r:
        size = len(r.read())
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"/metrics with 1000 live deals: {size} bytes, median {times[10]:.1f} ms, max {times[-1]:.1f} ms")
