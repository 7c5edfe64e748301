#!/usr/bin/env python3
"""Runs one scenario in one peer engine, timed inside the process with imports excluded.

usage: python3 bench/peers.py PEER SCENARIO      PEER: duckdb | datafusion | polars | chdb

The engine is imported and set up first (a running server does not pay that); the timer then
covers exactly the work: read the KTTM NDJSON.gz, parse __time, partition by the scenario's time
chunk, sort by the cluster key, write zstd Parquet (S5: one partition `part=all`, sorted by
session, __time). The SQL is the one of ../shared/bench/peer_*.py (the peers' reference scripts).
S6 is for Grove alone and refused here. Prints one JSON line:
  {"engine", "scenario", "wall_s", "peak_mib", "rows_out", "files"}
peak_mib is the process's peak RSS (ru_maxrss), which includes the engine's import (~50-150 MiB).
"""
import glob
import json
import os
import resource
import sys
import time

from common import COLUMNS, DATA, GROVE_ONLY, SCENARIOS, files, out_dir

THREADS = 2


def duckdb_job(scen, ds, gran, kind, out):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    # With 2 threads DuckDB's PARTITION_BY COPY does not keep ORDER BY inside files (see
    # ../shared/bench/README.md); 1 thread keeps it and is no slower there.
    con.execute("SET threads=1")
    cols = "{" + ", ".join(f"'{n}': '{'BIGINT' if t == 'long' else 'VARCHAR'}'" for n, t in COLUMNS) + "}"
    flist = "[" + ", ".join(f"'{f}'" for f in files(ds)) + "]"
    src = f"read_json({flist}, format='newline_delimited', columns={cols})"
    fmt = "%Y-%m-%d" if gran == "day" else "%Y-%m-%dT%H"
    base = f"SELECT CAST(CAST(\"timestamp\" AS TIMESTAMPTZ) AS TIMESTAMP) AS __time, * FROM {src}"
    if kind == "sort_time":
        sql = f"SELECT *, strftime(__time, '{fmt}') AS part FROM ({base}) ORDER BY __time"
    elif kind == "cluster":
        sql = f"SELECT *, strftime(__time, '{fmt}') AS part FROM ({base}) ORDER BY part, browser, country, __time"
    elif kind == "cluster_all":
        sql = f"SELECT *, 'all' AS part FROM ({base}) ORDER BY session, __time"
    else:
        sql = (f"SELECT date_trunc('minute', __time) AS __time, browser, country, count(*) AS cnt, "
               f"sum(session_length) AS sum_session_length, approx_count_distinct(session) AS unique_sessions, "
               f"strftime(date_trunc('minute', __time), '{fmt}') AS part "
               f"FROM ({base}) GROUP BY 1, 2, 3 ORDER BY part, browser, country, __time")

    def run():
        con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (part), "
                    f"OVERWRITE_OR_IGNORE)")
    return run


def datafusion_job(scen, ds, gran, kind, out):
    import pyarrow as pa
    from datafusion import SessionConfig, SessionContext

    ctx = SessionContext(SessionConfig().with_target_partitions(THREADS))
    schema = pa.schema([(n, pa.int64() if t == "long" else pa.string()) for n, t in COLUMNS])
    fs = files(ds)
    ctx.register_json("kttm", os.path.dirname(fs[0]) + "/", schema=schema, file_extension=".json.gz",
                      file_compression_type="gzip")
    fmt = "%Y-%m-%d" if gran == "day" else "%Y-%m-%dT%H"
    base = "SELECT to_timestamp_millis(\"timestamp\") AS __time, * FROM kttm"
    if kind == "sort_time":
        sql = f"SELECT *, to_char(__time, '{fmt}') AS part FROM ({base}) ORDER BY __time"
    elif kind == "cluster":
        sql = f"SELECT *, to_char(__time, '{fmt}') AS part FROM ({base}) ORDER BY part, browser, country, __time"
    elif kind == "cluster_all":
        sql = f"SELECT *, 'all' AS part FROM ({base}) ORDER BY session, __time"
    else:
        sql = (f"SELECT date_trunc('minute', __time) AS __time, browser, country, count(*) AS cnt, "
               f"sum(session_length) AS sum_session_length, approx_distinct(session) AS unique_sessions, "
               f"to_char(date_trunc('minute', __time), '{fmt}') AS part "
               f"FROM ({base}) GROUP BY 1, 2, 3 ORDER BY part, browser, country, __time")

    def run():
        ctx.sql(f"COPY ({sql}) TO '{out}/' STORED AS PARQUET PARTITIONED BY (part) "
                f"OPTIONS ('format.compression' 'zstd(1)')").collect()
    return run


def polars_job(scen, ds, gran, kind, out):
    import polars as pl

    schema = {n: (pl.Int64 if t == "long" else pl.String) for n, t in COLUMNS}
    fmt = "%Y-%m-%d" if gran == "day" else "%Y-%m-%dT%H"

    def run():
        lf = pl.scan_ndjson(files(ds), schema=schema)
        t = pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ms", time_zone="UTC")
        lf = lf.with_columns(t.alias("__time"))
        if kind == "sort_time":
            lf = lf.with_columns(pl.col("__time").dt.strftime(fmt).alias("part")).sort("__time")
        elif kind == "cluster":
            lf = lf.with_columns(pl.col("__time").dt.strftime(fmt).alias("part")).sort(
                ["part", "browser", "country", "__time"])
        elif kind == "cluster_all":
            lf = lf.with_columns(pl.lit("all").alias("part")).sort(["session", "__time"])
        else:
            lf = (lf.group_by(pl.col("__time").dt.truncate("1m"), "browser", "country")
                  .agg(pl.len().alias("cnt"), pl.col("session_length").sum().alias("sum_session_length"),
                       pl.col("session").approx_n_unique().alias("unique_sessions"))
                  .with_columns(pl.col("__time").dt.strftime(fmt).alias("part"))
                  .sort(["part", "browser", "country", "__time"]))
        lf.sink_parquet(pl.PartitionBy(out, key="part", include_key=False), mkdir=True)
    return run


def chdb_job(scen, ds, gran, kind, out):
    import chdb

    structure = ", ".join(f"`{n}` {'Nullable(Int64)' if t == 'long' else 'Nullable(String)'}" for n, t in COLUMNS)
    src = f"file('{DATA}/{ds}/*.json.gz', 'JSONEachRow', '{structure}')"
    fmt = "%Y-%m-%d" if gran == "day" else "%Y-%m-%dT%H"
    base = f"SELECT parseDateTime64BestEffort(`timestamp`, 3, 'UTC') AS __time, * FROM {src}"
    if kind in ("sort_time", "cluster"):
        order = "__time" if kind == "sort_time" else "part, browser, country, __time"
        sel = f"SELECT *, formatDateTime(__time, '{fmt}', 'UTC') AS part FROM ({base}) ORDER BY {order}"
    elif kind == "cluster_all":
        sel = f"SELECT *, 'all' AS part FROM ({base}) ORDER BY session, __time"
    else:
        sel = (f"SELECT toStartOfMinute(__time) AS __time, browser, country, count() AS cnt, "
               f"sum(session_length) AS sum_session_length, uniq(session) AS unique_sessions, "
               f"formatDateTime(toStartOfMinute(__time), '{fmt}', 'UTC') AS part "
               f"FROM ({base}) GROUP BY __time, browser, country ORDER BY part, browser, country, __time")
    sql = (f"INSERT INTO FUNCTION file('{out}/part={{_partition_id}}/data.parquet', 'Parquet') PARTITION BY part "
           f"{sel} SETTINGS output_format_parquet_compression_method='zstd', max_threads={THREADS}")
    chdb.query("SELECT 1")  # engine start-up outside the timer

    def run():
        chdb.query(sql)
    return run


JOBS = {"duckdb": duckdb_job, "datafusion": datafusion_job, "polars": polars_job, "chdb": chdb_job}


def main():
    scens = [s for s in SCENARIOS if s not in GROVE_ONLY]
    if len(sys.argv) != 3 or sys.argv[1] not in JOBS or sys.argv[2] not in scens:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(JOBS)}}} {{{'|'.join(scens)}}}"
                 + (f"  ({', '.join(sorted(GROVE_ONLY))}: Grove alone)" if GROVE_ONLY else ""))
    peer, scen = sys.argv[1], sys.argv[2]
    ds, gran, kind = SCENARIOS[scen]
    out = out_dir(peer, scen)
    run = JOBS[peer](scen, ds, gran, kind, out)
    t0 = time.monotonic()
    run()
    wall = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    pfiles = glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True)
    print(json.dumps(dict(engine=peer, scenario=scen, wall_s=round(wall, 3), peak_mib=round(peak, 1),
                          files=len(pfiles))))


if __name__ == "__main__":
    main()
