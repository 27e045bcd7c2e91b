"""Read a Tidewater table in one call, with every column it has, in DuckDB, Polars,
pyarrow or Spark.

A table's files hold only the columns with values in them (so a day without a property
has no column for it), and a reader that takes the schema of the first file it opens
would drop the others. The mapping file, `<root>/schema/events.json` (or
`people.json`), lists every column of every table with its type: these functions give
it to the readers that need it.

    import read_tables as rt
    rt.duckdb_table("warehouse", "mp_master_event")      # a DuckDB relation
    rt.polars_table("warehouse", "mp_master_event")      # a Polars LazyFrame
    rt.pyarrow_table("warehouse", "mp_master_event")     # a pyarrow Table
    rt.spark_table(spark, "warehouse", "mp_master_event")  # a Spark DataFrame
"""

import json
import os

def columns(root, table):
    """The table's columns, in order, as (name, type) pairs from the mapping file."""
    for mapping in ("events.json", "people.json"):
        path = os.path.join(root, "schema", mapping)
        if os.path.exists(path):
            with open(path) as f:
                tables = json.load(f)["tables"]
            if table in tables:
                return [(c["column"], c["type"]) for c in tables[table]["columns"]]
    raise KeyError(f"no table {table!r} in the mapping files of {root}")


def _glob(root, table):
    return os.path.join(root, table, "**", "*.parquet")


def duckdb_table(root, table, connection=None):
    """DuckDB reads every column by name across the files; nulls where a file lacks one."""
    import duckdb

    con = connection or duckdb.connect()
    return con.sql(f"SELECT * FROM read_parquet('{_glob(root, table)}', union_by_name = true)")


def polars_table(root, table):
    """Polars takes the table's schema from the mapping file and fills missing columns."""
    import polars as pl

    types = {
        "timestamp": pl.Datetime("ms", "UTC"),
        "string": pl.String,
        "number": pl.Float64,
        "boolean": pl.Boolean,
        "list": pl.String,
        "object": pl.String,
    }
    schema = pl.Schema({name: types[kind] for name, kind in columns(root, table)})
    return pl.scan_parquet(_glob(root, table), schema=schema, missing_columns="insert")


def pyarrow_table(root, table):
    """pyarrow.dataset with the table's schema, skipping the commit markers and manifests."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    types = {
        "timestamp": pa.timestamp("ms", "UTC"),
        "string": pa.string(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "list": pa.string(),
        "object": pa.string(),
    }
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in columns(root, table)])
    dataset = ds.dataset(
        os.path.join(root, table),
        format="parquet",
        schema=schema,
        ignore_prefixes=[".", "_", "complete", "manifest.json"],
    )
    return dataset.to_table()


def spark_table(spark, root, table):
    """Spark merges the files' schemas itself; the filter keeps the `complete` markers
    and manifests out, and the lookup walks the date folders (which are not hive
    partitions in the default layout)."""
    return (
        spark.read.option("mergeSchema", "true")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.parquet")
        .parquet(os.path.join(root, table))
    )
