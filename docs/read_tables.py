"""Read a Tidewater table in one call, with every column it has, in DuckDB, Polars,
pyarrow or Spark.

A table's files hold only the columns with values in them (so a day without a property
has no column for it), and a reader that takes the schema of the first file it opens
would drop the others. The mapping file, `<root>/schema/events.json` (or
`people.json`), lists every column of every table with its type: these functions give
it to the readers that need it. Side files inside table folders (`_complete`,
`_manifest.json`) start with `_`, which every reader here skips by itself.

    import read_tables as rt
    rt.duckdb_table("warehouse", "mp_master_event")      # a DuckDB relation
    rt.polars_table("warehouse", "mp_master_event")      # a Polars LazyFrame
    rt.pyarrow_table("warehouse", "mp_master_event")     # a pyarrow Table
    rt.spark_table(spark, "warehouse", "mp_master_event")  # a Spark DataFrame

JSON output (`--format json`) reads with the `*_json_table` functions, which return
the same columns and types as the Parquet ones: `time` (integer seconds in the files;
pass `time_in_ms=True` for output written with `--time-in-ms`) becomes a UTC
timestamp, and lists and objects are text holding their JSON. DuckDB and Polars read
lists and objects written as native JSON (the default); pyarrow's JSON reader needs one
type per column, which Mixpanel's lists and objects do not have, so it reads only
output written with `--nested-as-text`.

In the hive layout (`--layout hive`) the folder keys `mp_date` (a date) and, for
hourly windows, `mp_hour` (an integer) become the last columns, in every reader.
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


def partition_keys(root, table):
    """The hive layout's folder keys of the table (`mp_date`, `mp_hour`); none in the
    default layout."""
    keys, folder = [], os.path.join(root, table)
    while True:
        subs = sorted(e for e in os.listdir(folder) if os.path.isdir(os.path.join(folder, e)))
        if not subs or "=" not in subs[0]:
            return keys
        keys.append(subs[0].split("=", 1)[0])
        folder = os.path.join(folder, subs[0])


def _glob(root, table, extension):
    return os.path.join(root, table, "**", f"*.{extension}")


# DuckDB ---------------------------------------------------------------------------

_DUCKDB_TYPES = {
    "timestamp": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "list": "VARCHAR",
    "object": "VARCHAR",
}
_DUCKDB_KEYS = {"mp_date": "DATE", "mp_hour": "INTEGER"}


def _duckdb_hive(root, table):
    keys = partition_keys(root, table)
    if not keys:
        return "hive_partitioning = false"
    types = ", ".join(f"'{k}': '{_DUCKDB_KEYS[k]}'" for k in keys)
    return f"hive_partitioning = true, hive_types = {{{types}}}"


def duckdb_table(root, table, connection=None):
    """DuckDB reads every column by name across the files; nulls where a file lacks one."""
    import duckdb

    con = connection or duckdb.connect()
    return con.sql(
        f"SELECT * FROM read_parquet('{_glob(root, table, 'parquet')}', "
        f"union_by_name = true, {_duckdb_hive(root, table)})"
    )


def duckdb_json_table(root, table, connection=None, time_in_ms=False):
    """DuckDB reads JSON output with the mapping file's columns."""
    import duckdb

    con = connection or duckdb.connect()
    cols = columns(root, table)
    spec = ", ".join(
        f"'{name}': '{'BIGINT' if kind == 'timestamp' else _DUCKDB_TYPES[kind]}'"
        for name, kind in cols
    )
    relation = (
        f"read_json('{_glob(root, table, 'json.gz')}', format = 'newline_delimited', "
        f"columns = {{{spec}}}, {_duckdb_hive(root, table)})"
    )
    seconds = "time / 1000" if time_in_ms else "time"
    replace = (
        f" REPLACE (to_timestamp({seconds}) AS time)" if ("time", "timestamp") in cols else ""
    )
    return con.sql(f"SELECT *{replace} FROM {relation}")


# Polars ---------------------------------------------------------------------------


def _polars_schema(root, table, json_time=False):
    import polars as pl

    types = {
        "timestamp": pl.Int64 if json_time else pl.Datetime("ms", "UTC"),
        "string": pl.String,
        "number": pl.Float64,
        "boolean": pl.Boolean,
        "list": pl.String,
        "object": pl.String,
    }
    return pl.Schema({name: types[kind] for name, kind in columns(root, table)})


def _polars_hive(root, table):
    import polars as pl

    keys = partition_keys(root, table)
    kinds = {"mp_date": pl.Date, "mp_hour": pl.Int32}
    return {"hive_partitioning": bool(keys), "hive_schema": {k: kinds[k] for k in keys} or None}


def polars_table(root, table):
    """Polars takes the table's schema from the mapping file and fills missing columns."""
    import polars as pl

    return pl.scan_parquet(
        _glob(root, table, "parquet"),
        schema=_polars_schema(root, table),
        missing_columns="insert",
        **_polars_hive(root, table),
    )


def polars_json_table(root, table, time_in_ms=False):
    """Polars reads JSON output with the mapping file's schema (a list or object written
    as native JSON comes back as its JSON text, as Polars writes it)."""
    import polars as pl

    keys = partition_keys(root, table)
    # scan_ndjson has no hive option: the folder keys come from each row's file path.
    path = "__tidewater_path"
    frame = pl.scan_ndjson(
        _glob(root, table, "json.gz"),
        schema=_polars_schema(root, table, json_time=True),
        include_file_paths=path if keys else None,
    )
    for k in keys:
        value = pl.col(path).str.extract(rf"/{k}=([^/]+)/")
        value = value.str.to_date() if k == "mp_date" else value.cast(pl.Int32)
        frame = frame.with_columns(value.alias(k))
    if keys:
        frame = frame.drop(path)
    if ("time", "timestamp") in columns(root, table):
        unit = "ms" if time_in_ms else "s"
        frame = frame.with_columns(
            pl.from_epoch("time", time_unit=unit).dt.cast_time_unit("ms").dt.replace_time_zone("UTC")
        )
    return frame


# pyarrow --------------------------------------------------------------------------


def _pyarrow_schema(root, table, json_time=False):
    import pyarrow as pa

    types = {
        "timestamp": pa.int64() if json_time else pa.timestamp("ms", "UTC"),
        "string": pa.string(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "list": pa.string(),
        "object": pa.string(),
    }
    keys = {"mp_date": pa.date32(), "mp_hour": pa.int32()}
    fields = [pa.field(name, types[kind]) for name, kind in columns(root, table)]
    fields += [pa.field(k, keys[k]) for k in partition_keys(root, table)]
    return pa.schema(fields)


def _pyarrow_dataset(root, table, file_format, schema):
    import pyarrow.dataset as ds

    keys = partition_keys(root, table)
    return ds.dataset(
        os.path.join(root, table),
        format=file_format,
        schema=schema,
        partitioning="hive" if keys else None,
    )


def pyarrow_table(root, table):
    """pyarrow.dataset with the table's schema (it skips `_complete` and `_manifest.json`
    by their leading `_`, as it skips any file named `_…` or `.…`)."""
    return _pyarrow_dataset(root, table, "parquet", _pyarrow_schema(root, table)).to_table()


def pyarrow_json_table(root, table, time_in_ms=False):
    """pyarrow's JSON reader with the table's schema, file by file; output written with
    `--nested-as-text` only (see above)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    schema = _pyarrow_schema(root, table, json_time=True)
    keys = partition_keys(root, table)
    in_files = pa.schema([f for f in schema if f.name not in keys])
    # The dataset finds the files and their folder keys; its own JSON scanner is not
    # used because it drops a column that first appears after a file's first block
    # (pyarrow 26), which read_json with an explicit schema does not.
    parts = []
    for fragment in _pyarrow_dataset(root, table, "json", schema).get_fragments():
        part = pj.read_json(fragment.path, parse_options=pj.ParseOptions(explicit_schema=in_files))
        values = ds.get_partition_keys(fragment.partition_expression)
        for k in keys:
            field = schema.field(k)
            part = part.append_column(field, pa.array([values[k]] * part.num_rows, field.type))
        parts.append(part)
    data = pa.concat_tables(parts) if parts else schema.empty_table()
    if ("time", "timestamp") in columns(root, table):
        ms = data["time"] if time_in_ms else pc.multiply(data["time"], 1000)
        i = data.schema.get_field_index("time")
        data = data.set_column(i, "time", ms.cast(pa.timestamp("ms", "UTC")))
    return data


# Spark ----------------------------------------------------------------------------


def spark_table(spark, root, table):
    """Spark merges the files' schemas itself (it skips the `_` side files). In the
    default layout the lookup walks the date folders, which are not partitions; in the
    hive layout Spark finds the partitions itself."""
    reader = spark.read.option("mergeSchema", "true")
    if not partition_keys(root, table):
        reader = reader.option("recursiveFileLookup", "true")
    return reader.parquet(os.path.join(root, table))
