#!/usr/bin/env python3
# Usage: python3 benches/sparse_events.py OUT.jsonl.gz
# 100,020 events over 30 days with a long tail of properties, as real projects have:
# 60 properties on every event, and on each day 20 of 100 properties seen on that day
# only, so the table has 3,000+ columns and each day's file about 160.
import gzip, json, random, sys

random.seed(1)
base = 1704067200
with gzip.open(sys.argv[1], "wt") as f:
    for day in range(30):
        for i in range(3334):
            p = {"time": base + day * 86400 + i * 25, "distinct_id": f"u{random.randrange(5000)}",
                 "$insert_id": f"{day}-{i}"}
            for c in range(60):
                p[f"common_{c}"] = random.random() * 100 if c % 3 else f"v{random.randrange(50)}"
            for c in random.sample(range(100), 20):
                p[f"day{day}_prop_{c}"] = random.randrange(1000)
            f.write(json.dumps({"event": "e", "properties": p}) + "\n")
