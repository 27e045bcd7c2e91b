#!/usr/bin/env python3
# Usage: python3 benches/read_filter.py ROOT [ROOT ...]   (monoschema Parquet outputs)
# Times filtered reads of one table in each output, best of 5: DuckDB and pyarrow on a
# number column (`mp_processing_time_ms` above its 99th percentile) and on ten minutes
# of `time`, and Spark (SPARK=1, which uses the column index) on the same ten minutes.
import glob, os, sys, time
import duckdb, pyarrow.dataset as ds, pyarrow.parquet as pq
import pyarrow.compute as pc

table = "mp_master_event"
roots = sys.argv[1:]
first = sorted(glob.glob(f"{roots[0]}/{table}/**/*.parquet", recursive=True))
col = "mp_processing_time_ms"
values = pq.read_table(first, columns=[col]).column(col).drop_null().to_pylist()
cut = sorted(values)[int(len(values) * 0.99)]
times = pq.read_table(first[:1], columns=["time"]).column("time")
start = pc.min(times).as_py()
stop = start.replace(minute=start.minute + 10) if start.minute < 50 else start.replace(hour=start.hour + 1, minute=0)
filters = {
    "number": (f"{col} > {cut}", ds.field(col) > cut),
    "time": (f"time >= '{start.isoformat()}' and time < '{stop.isoformat()}'",
             (ds.field("time") >= start) & (ds.field("time") < stop)),
}

def best(f):
    out, least = None, 1e9
    for _ in range(5):
        t = time.perf_counter()
        out = f()
        least = min(least, time.perf_counter() - t)
    return least * 1000, out

spark = None
if os.environ.get("SPARK"):
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

for root in roots:
    files = sorted(glob.glob(f"{root}/{table}/**/*.parquet", recursive=True))
    size = sum(os.path.getsize(f) for f in files)
    print(f"{root}: {len(files)} files, {size / 1e6:.1f} MB")
    for name, (sql, expr) in filters.items():
        g = f"{root}/{table}/**/*.parquet"
        duck, n1 = best(lambda: duckdb.sql(
            f"select count(*), sum({col}) from read_parquet('{g}', union_by_name = true) where {sql}").fetchall()[0])
        arrow, n2 = best(lambda: ds.dataset(files, format="parquet")
                         .to_table(columns=[col], filter=expr).num_rows)
        line = f"  {name:6s} duckdb {duck:7.1f} ms  pyarrow {arrow:7.1f} ms  rows {n1[0]} {n2}"
        if spark is not None:
            frame = (spark.read.option("recursiveFileLookup", "true").parquet(f"{root}/{table}")
                     .where(sql).select(col))
            sp, n3 = best(lambda: frame.count())
            line += f"  spark {sp:7.1f} ms ({n3})"
        print(line, flush=True)
if spark is not None:
    spark.stop()
