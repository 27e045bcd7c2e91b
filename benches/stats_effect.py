#!/usr/bin/env python3
# Usage: target/release/tidewater convert target/store-figures/bench.jsonl.gz --out OUT && python3 benches/stats_effect.py OUT
# The effect of number statistics that readers see: the same files with the footer's
# column order for DOUBLE columns declared IEEE 754 (as parquet 60 writes it) or
# type-defined (as Tidewater writes it now). Times a filtered read of one column.
import glob, os, shutil, struct, sys, time
import duckdb, polars as pl, pyarrow.dataset as ds, pyarrow.parquet as pq

root = sys.argv[1]
files = sorted(glob.glob(f"{root}/mp_master_event/**/*.parquet", recursive=True))
ieee = root + "-ieee"
shutil.rmtree(ieee, ignore_errors=True)
for f in files:
    dst = f.replace(root, ieee, 1)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    data = bytearray(open(f, "rb").read())
    n = pq.ParquetFile(f).metadata.num_columns
    end = len(data) - 9
    orders = data[end - 3 * n:end]
    for i, col in enumerate(pq.ParquetFile(f).metadata.schema):
        if col.physical_type == "DOUBLE":
            assert orders[3 * i] == 0x1C
            data[end - 3 * n + 3 * i] = 0x2C
    open(dst, "wb").write(data)

col = "mp_processing_time_ms"
vals = pq.read_table(files, columns=[col]).column(col).to_pylist()
cut = sorted(v for v in vals if v is not None)[int(len(vals) * 0.99)]
for name, base in [("type-defined", root), ("ieee-754", ieee)]:
    g = f"{base}/mp_master_event/**/*.parquet"
    best_duck, best_pa, best_pl = 1e9, 1e9, 1e9
    for _ in range(5):
        t = time.time()
        n3 = pl.scan_parquet(g).filter(pl.col(col) > cut).select(pl.len()).collect().item()
        best_pl = min(best_pl, time.time() - t)
        t = time.time()
        n1 = duckdb.sql(f"select count(*) from read_parquet('{g}') where {col} > {cut}").fetchall()[0][0]
        best_duck = min(best_duck, time.time() - t)
        t = time.time()
        d = ds.dataset(sorted(glob.glob(g, recursive=True)), format="parquet")
        n2 = d.to_table(columns=[col], filter=ds.field(col) > cut).num_rows
        best_pa = min(best_pa, time.time() - t)
    print(f"{name:13s} duckdb {best_duck*1000:7.1f} ms  pyarrow {best_pa*1000:7.1f} ms  "
          f"polars {best_pl*1000:7.1f} ms  rows {n1} {n2} {n3}")
