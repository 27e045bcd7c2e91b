#!/usr/bin/env python3
# Usage: python3 benches/full_schema_cost.py ROOT   (a Parquet output of tidewater)
# What it would cost if every file carried every column of its table (all null where the
# file has no value) instead of only its own columns plus the mapping file: both forms
# are written here by pyarrow with the same settings (Snappy, dictionary, row groups as
# in the input), then compared by size and by the time to read each table whole with
# pyarrow (the full form needs no schema; the sparse form gets the mapping file's).
import glob, json, os, shutil, sys, time
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq

root = sys.argv[1]
types = {"timestamp": pa.timestamp("ms", "UTC"), "string": pa.string(), "number": pa.float64(),
         "boolean": pa.bool_(), "list": pa.string(), "object": pa.string()}
tables = json.load(open(f"{root}/schema/events.json"))["tables"]
work = root.rstrip("/") + "-full-schema"
shutil.rmtree(work, ignore_errors=True)
size = {"sparse": 0, "full": 0}
write = {"sparse": 0.0, "full": 0.0}
files = {"sparse": [], "full": []}
schemas = {}
for table, spec in tables.items():
    schema = pa.schema([pa.field(c["column"], types[c["type"]]) for c in spec["columns"]])
    schemas[table] = schema
    for f in sorted(glob.glob(f"{root}/{table}/**/*.parquet", recursive=True)):
        data = pq.read_table(f)
        rows = pq.ParquetFile(f).metadata.row_group(0).num_rows
        full = pa.table([data[n] if n in data.column_names else pa.nulls(len(data), schema.field(n).type)
                         for n in schema.names], schema=schema)
        for form, t in (("sparse", data), ("full", full)):
            dst = f.replace(root, f"{work}/{form}", 1)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            start = time.perf_counter()
            pq.write_table(t, dst, compression="snappy", row_group_size=rows)
            write[form] += time.perf_counter() - start
            size[form] += os.path.getsize(dst)
            files[form].append((table, dst))

def read_all(form):
    start = time.perf_counter()
    rows = 0
    for table, schema in schemas.items():
        paths = [p for t, p in files[form] if t == table]
        if paths:
            rows += ds.dataset(paths, format="parquet", schema=schema).to_table().num_rows
    return time.perf_counter() - start, rows

print(f"{len(tables)} tables, {len(files['sparse'])} files")
for form in ("sparse", "full"):
    best = min(read_all(form)[0] for _ in range(3))
    print(f"{form:6s} {size[form] / 1e6:8.1f} MB  written in {write[form]:6.2f} s  read whole in {best:6.2f} s")
shutil.rmtree(work, ignore_errors=True)
