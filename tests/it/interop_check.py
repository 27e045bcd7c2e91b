"""Reads Tidewater's Parquet output with DuckDB and pyarrow and compares every value
with the source events (output-format T1-T3, FC1, FC2, §4.3). Usage:
    check.py SOURCE.jsonl[.gz] OUTPUT_ROOT monoschema|multischema
Exits non-zero with a message on the first mismatch."""
import glob, gzip, json, math, sys

import duckdb
import pyarrow.parquet as pq

source, root, schema = sys.argv[1], sys.argv[2], sys.argv[3]
opener = gzip.open if source.endswith(".gz") else open
events = [json.loads(l) for l in opener(source, "rt", encoding="utf-8") if l.strip()]
mapping = json.load(open(f"{root}/schema/events.json"))["tables"]

def fail(msg):
    print("interop mismatch:", msg)
    sys.exit(1)

def same(value, want, ty):
    if ty in ("list", "object"):
        return json.loads(value) == want
    if ty == "number":
        return isinstance(value, float) and (value == float(want) or (math.isnan(value) and math.isnan(want)))
    return value == want

con = duckdb.connect()
checked = 0
for table, spec in mapping.items():
    cols = {c["column"]: c for c in spec["columns"]}
    files = sorted(glob.glob(f"{root}/{table}/*/*/*/part-*.parquet"))
    if not files:
        fail(f"no files for table {table}")
    # DuckDB merges the files by name without type conflicts (FC2).
    n = con.execute(f"select count(*) from read_parquet({files!r}, union_by_name = true)").fetchone()[0]
    described = dict(con.execute(f"select column_name, column_type from (describe select * from read_parquet({files!r}, union_by_name = true))").fetchall())
    for name, c in cols.items():
        if name in described:
            want = {"timestamp": "TIMESTAMP WITH TIME ZONE", "string": "VARCHAR", "list": "VARCHAR", "object": "VARCHAR",
                    "number": "DOUBLE", "boolean": "BOOLEAN"}[c["type"]]
            if described[name] != want:
                fail(f"{table}.{name}: DuckDB type {described[name]}, expected {want}")
    src = [e for e in events if schema == "monoschema" or e["event"] == spec["event"]]
    if n != len(src):
        fail(f"{table}: DuckDB counts {n} rows, source has {len(src)}")
    rows = []
    for f in files:  # files sort by date, rows within a file keep input order (FC1)
        t = pq.read_table(f)
        for c in t.column_names:
            if t.column(c).null_count == len(t):
                fail(f"{f}: column {c} is all null (FC2)")
        # DuckDB decodes every column itself: the same non-null counts as pyarrow.
        counts = con.execute("select " + ", ".join(f'count("{c}")' for c in t.column_names)
                             + f" from read_parquet({f!r})").fetchone()
        for c, n_duck in zip(t.column_names, counts):
            if n_duck != len(t) - t.column(c).null_count:
                fail(f"{f}: DuckDB counts {n_duck} values in {c}, pyarrow {len(t) - t.column(c).null_count}")
        rows.extend(t.to_pylist())
    # A time filter DuckDB may answer from the chunk statistics must agree with the rows.
    if rows:
        middle = sorted(r["time"] for r in rows)[len(rows) // 2]
        n_after = con.execute(f"select count(*) from read_parquet({files!r}, union_by_name = true) "
                              "where time >= ?", [middle]).fetchone()[0]
        if n_after != sum(1 for r in rows if r["time"] >= middle):
            fail(f"{table}: DuckDB counts {n_after} rows at or after {middle}")
    for e, r in zip(src, rows):
        p = e["properties"]
        if int(r["time"].timestamp()) != int(p["time"]) if p["time"] < 1e11 else False:
            fail(f"{table}: time {r['time']} vs {p['time']}")
        if schema == "monoschema" and r["mp_event_name"] != e["event"]:
            fail(f"{table}: event {r['mp_event_name']} vs {e['event']}")
        seen = set()
        for name, value in r.items():
            if value is None or name in ("time", "distinct_id", "mp_event_name"):
                continue
            c = cols[name]
            seen.add(c["property"])
            if not same(value, p[c["property"]], c["type"]):
                fail(f"{table}.{name}: {value!r} vs source {p[c['property']]!r}")
            checked += 1
        want = {k for k, v in p.items() if v is not None and k not in ("time", "distinct_id")}
        if seen != want:
            fail(f"{table}: properties {sorted(want ^ seen)} missing or extra")
print(f"interop ok: {checked} values in {len(mapping)} tables")
