#!/usr/bin/env python3
"""Added latency of the local testbed's recording REST proxy (devstack@rest-proxy).

Sends GET / to placement-api (unauthenticated, answered by placement itself) N times directly
(port 8778) and N times through its proxy (port 18778), alternating, each over one keep-alive
connection, and prints p50/p99 of both. Usage: overhead.py [N] [CONTROLLER_ADDRESS].
"""
import http.client
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
HOST = sys.argv[2] if len(sys.argv) > 2 else "10.77.0.2"


def timed_get(connection):
    start = time.perf_counter()
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit("GET / answered HTTP %d" % response.status)
    return (time.perf_counter() - start) * 1000


paths = {
    "direct": http.client.HTTPConnection(HOST, 8778, timeout=10),
    "proxied": http.client.HTTPConnection(HOST, 18778, timeout=10),
}
samples = {name: [] for name in paths}
for _ in range(N):
    for name, connection in paths.items():
        samples[name].append(timed_get(connection))
for name, values in samples.items():
    values.sort()
    print("%-8s p50 %.2f ms  p99 %.2f ms  (n=%d)"
          % (name, values[len(values) // 2], values[int(len(values) * 0.99)], len(values)))
