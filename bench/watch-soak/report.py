#!/usr/bin/env python3
"""The soak's figures from its output directory: report.py OUT START END (wall clock, s)."""
import json, sys
if sys.argv[1] == "--stores":
    for f in sys.argv[2:]:
        store = json.load(open(f))
        variants = sum(len(c["variants"]) for c in store["commands"].values())
        runs = sum(c["runs"] for c in store["commands"].values())
        print(f"{f}: {variants} variants, {runs} runs")
    sys.exit(0)
out, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
truth = json.load(open(f"{out}/truth.json"))
samples = [tuple(map(float, l.split("\t"))) for l in open(f"{out}/rss.tsv") if l.strip()]
alarms = [json.loads(l) for l in open(f"{out}/alarms.jsonl")]
faulty = set(truth["faulty_creates"])
on_faults = {a["transaction"] for a in alarms if a.get("transaction") in faulty}
import re
# Fault-free: the transactions of the normal and background blocks (ids ending -nK / -bK); the
# fault block's other transactions (the stalled server's delete) are hurt by the fault too.
false = [a for a in alarms if re.search(r"-[nb]\d+$", a.get("transaction") or "")]
hurt = [a for a in alarms if re.search(r"-f\d+$", a.get("transaction") or "") and a.get("transaction") not in faulty]
first_suspect = {}
for a in alarms:
    if a.get("transaction") in faulty:
        first_suspect[a["suspects"][0]["service"]] = first_suspect.get(a["suspects"][0]["service"], 0) + 1
total = truth["events"]
def rss_at(fraction):
    # The first sample once this fraction of the events has been seen.
    for t, rss, events in samples:
        if events >= fraction * total:
            return rss / 1024
    return samples[-1][1] / 1024
wall = end - start
print(f"events in the trace: {total}; hours of traffic: {truth['hours']}")
print(f"wall time: {wall:.1f} s ({total / wall:,.0f} events/s, {truth['hours'] * 3600 / wall:,.0f}x real time)")
print("RSS MiB at 10/25/50/75/100 % of the events: " + " / ".join(f"{rss_at(f):.1f}" for f in (0.1, 0.25, 0.5, 0.75, 1.0)))
print(f"peak RSS MiB: {max(s[1] for s in samples) / 1024:.1f} over {len(samples)} samples")
print(f"faulty creates alarmed: {len(on_faults)}/{len(faulty)}; first suspects on them: {first_suspect}")
print(f"alarms: {len(alarms)} ({len(alarms) / truth['hours']:.2f}/h); on fault-free transactions: {len(false)} ({len(false) / truth['hours']:.2f}/h); on the fault blocks' other transactions: {len(hurt)}")
