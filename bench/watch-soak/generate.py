#!/usr/bin/env python3
"""A day (or any span) of production-like traffic from recorded transactions.

Repeats the transactions of recorded runs with shifted times and fresh ids, and writes the events
as `events.jsonl` in the order a live tracer delivers them (a REST exchange once answered, an AMQP
message when published), with a ground-truth file naming the transactions recorded under a fault.

    generate.py --hours 24 --period 20 --fault-every 3600 --out DIR FIXTURES_DIR
"""
import argparse
import json
import os


def load(path):
    """The recorded transactions, less the RPC calls whose reply the recording cut off: repeated,
    each would be a call left unanswered in every cycle, which the engine rightly blames."""
    with open(os.path.join(path, "transactions.json")) as f:
        transactions = json.load(f)["transactions"]
    replied = {e["ids"].get("msg_id") for t in transactions for e in t["events"]
               if e["kind"] == "rpc-reply"}
    for t in transactions:
        t["events"] = [e for e in t["events"]
                       if e["kind"] != "rpc-call" or e["ids"].get("msg_id") in replied]
    return transactions


def shifted(transactions, shift_us, suffix):
    """The transactions' events, `shift_us` later, every id made unique with `suffix`."""
    out = []
    for t in transactions:
        for e in t["events"]:
            e = json.loads(json.dumps(e))
            e["ts_us"] += shift_us
            ids = e.get("ids", {})
            for key in ("request_id", "global_request_id", "msg_id", "unique_id", "reply_queue"):
                if ids.get(key):
                    ids[key] = ids[key] + suffix
            out.append(e)
    return out


def arrival(e):
    if e["kind"] == "rest-request":
        return e["ts_us"] + (e.get("duration_us") or 0)
    return e["ts_us"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("fixtures")
    p.add_argument("--hours", type=float, default=24)
    p.add_argument("--period", type=float, default=20, help="seconds between user cycles")
    p.add_argument("--background-every", type=float, default=90)
    p.add_argument("--fault-every", type=float, default=3600)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    normal = load(os.path.join(a.fixtures, "create-delete"))
    idle = load(os.path.join(a.fixtures, "startup-idle"))
    faulty = load(os.path.join(a.fixtures, "compute-down"))
    start = min(e["ts_us"] for t in normal for e in t["events"])

    def base(ts):
        return min(e["ts_us"] for t in ts for e in t["events"])

    span_us = int(a.hours * 3600e6)
    blocks = []  # (first ts, events)
    k = 0
    t = 0
    while t < span_us:
        blocks.append(shifted(normal, start + t - base(normal), f"-n{k}"))
        t += int(a.period * 1e6)
        k += 1
    k = 0
    t = int(a.background_every * 1e6) // 2
    while t < span_us:
        blocks.append(shifted(idle, start + t - base(idle), f"-b{k}"))
        t += int(a.background_every * 1e6)
        k += 1
    faults = []
    k = 0
    t = int(a.fault_every * 1e6) // 3
    while a.fault_every > 0 and t < span_us:
        events = shifted(faulty, start + t - base(faulty), f"-f{k}")
        blocks.append(events)
        for tr in faulty:
            if tr.get("command") == "server create":
                faults.append(tr["id"] + f"-f{k}")
        t += int(a.fault_every * 1e6)
        k += 1
    events = [e for b in blocks for e in b]
    events.sort(key=lambda e: (arrival(e), e["seq"]))
    os.makedirs(os.path.join(a.out, "learn"), exist_ok=True)
    # The fault-free run, as repeated, for `fingerprint learn`.
    with open(os.path.join(a.out, "learn", "transactions.json"), "w") as f:
        json.dump({"format": "butterfly-trace", "version": 1, "transactions": normal}, f)
    with open(os.path.join(a.out, "events.jsonl"), "w") as f:
        for n, e in enumerate(events, 1):
            e["seq"] = n
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump({"events": len(events), "faulty_creates": faults,
                   "hours": a.hours}, f)
    print(f"{len(events)} events, {len(faults)} faulty creates, {a.hours} h")


if __name__ == "__main__":
    main()
