"""Query scenario Q1: typical Druid queries on Grove's segments, and the same in DuckDB.

Grove ingests the S2 data (465,346 KTTM rows) with S2's SQL into `kttm_q`:
REPLACE ... OVERWRITE ALL ... PARTITIONED BY HOUR CLUSTERED BY browser, country, with
context rowsPerSegment (default 5,000: several range-partitioned segments per hour, so
that a filter on browser can skip segments). Then each query is timed
  - in Grove: POST /druid/v2/sql (resultFormat array), wall time from the request to
    the whole body read, over HTTP on loopback;
  - in DuckDB (in this process, 2 threads): the same query over read_parquet() of the
    segment files Grove published (listed by
    GET /druid/coordinator/v1/metadata/datasources/kttm_q/segments?full), fetchall().
Both answers must be the same rows. Each query then runs once more as a task
(POST /druid/v2/sql/task) to read stage 0's `input0` counters from its report: `files`
(segment files opened) and `totalFiles` (segments of the datasource).
"""
import datetime
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

HOUR = ("2019-08-25 15:00:00", "2019-08-25 16:00:00")  # the busiest hour: 31,839 rows
IN_HOUR = f"__time >= TIMESTAMP '{HOUR[0]}' AND __time < TIMESTAMP '{HOUR[1]}'"
TABLE = "kttm_q"

# name, Druid SQL for Grove, DuckDB SQL over {src} (read_parquet of the segment files).
QUERIES = [
    ("count_one_hour",
     f"SELECT COUNT(*) AS cnt FROM {TABLE} WHERE {IN_HOUR}",
     f"SELECT COUNT(*) AS cnt FROM {{src}} WHERE {IN_HOUR}"),
    ("top10_countries_one_hour",
     f"SELECT country, COUNT(*) AS cnt FROM {TABLE} WHERE {IN_HOUR}\n"
     "GROUP BY country ORDER BY cnt DESC, country LIMIT 10",
     f"SELECT country, COUNT(*) AS cnt FROM {{src}} WHERE {IN_HOUR}\n"
     "GROUP BY country ORDER BY cnt DESC, country LIMIT 10"),
    ("browser_filter",
     f"SELECT COUNT(*) AS cnt, SUM(session_length) AS total_session_length FROM {TABLE}\n"
     "WHERE browser = 'Firefox'",
     "SELECT COUNT(*) AS cnt, SUM(session_length) AS total_session_length FROM {src}\n"
     "WHERE browser = 'Firefox'"),
    ("group_by_browser",
     f"SELECT browser, COUNT(*) AS cnt, SUM(session_length) AS total_session_length\n"
     f"FROM {TABLE} GROUP BY browser ORDER BY cnt DESC, browser",
     "SELECT browser, COUNT(*) AS cnt, SUM(session_length) AS total_session_length\n"
     "FROM {src} GROUP BY browser ORDER BY cnt DESC, browser"),
    ("hourly_timeseries",
     f"SELECT TIME_FLOOR(__time, 'PT1H') AS h, COUNT(*) AS cnt, COUNT(DISTINCT browser) AS b\n"
     f"FROM {TABLE} GROUP BY 1 ORDER BY 1",
     "SELECT date_trunc('hour', __time) AS h, COUNT(*) AS cnt, COUNT(DISTINCT browser) AS b\n"
     "FROM {src} GROUP BY 1 ORDER BY 1"),
]
# Exact COUNT(DISTINCT): Druid's default is an approximate sketch.
QUERY_CONTEXT = {"useApproximateCountDistinct": False}


def _post(url, body, timeout=600):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def ingest_sql(grove_sql):
    """S2's SQL, into `kttm_q`."""
    sql = grove_sql("S2")
    head = "REPLACE INTO bench_s2 OVERWRITE ALL"
    assert sql.startswith(head), sql[:80]
    return f"REPLACE INTO {TABLE} OVERWRITE ALL" + sql[len(head):]


def ingest(grove, grove_sql, rows_per_segment, max_tasks):
    body = {"query": ingest_sql(grove_sql),
            "context": {"maxNumTasks": max_tasks, "rowsPerSegment": rows_per_segment}}
    t0 = time.monotonic()
    task = json.loads(_post(f"{grove.base}/druid/v2/sql/task", body))["taskId"]
    st = _wait(grove.base, task)
    if st["status"] != "SUCCESS":
        sys.exit(f"Grove Q1 ingestion failed: {st.get('errorMsg')}")
    return time.monotonic() - t0


def _wait(base, task):
    while True:
        st = _get(f"{base}/druid/indexer/v1/task/{task}/status")["status"]
        if st["status"] in ("SUCCESS", "FAILED"):
            return st
        time.sleep(0.01)


def segment_files(grove, data_dir):
    """Paths of the Parquet files of kttm_q's used segments."""
    try:
        segs = _get(f"{grove.base}/druid/coordinator/v1/metadata/datasources/{TABLE}/segments?full")
        paths = [s["loadSpec"]["path"] for s in segs]
        if paths and all(os.path.isfile(p) for p in paths):
            return sorted(paths)
    except (urllib.error.URLError, KeyError, TypeError) as e:
        print(f"  segment metadata endpoint unusable ({e}); walking {data_dir}", file=sys.stderr)
    # Fallback: per time chunk, the files of the newest task directory (older versions
    # stay on disk until killed).
    root = os.path.join(data_dir, "segments", TABLE)
    out = []
    for chunk in sorted(os.listdir(root)):
        d = os.path.join(root, chunk)
        newest = max(os.listdir(d), key=lambda t: os.path.getmtime(os.path.join(d, t)))
        out += sorted(os.path.join(d, newest, f) for f in os.listdir(os.path.join(d, newest))
                      if f.endswith(".parquet"))
    return out


def _norm_value(v):
    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, float):
        return round(v, 6)
    if hasattr(v, "as_integer_ratio") and not isinstance(v, int):  # Decimal
        return round(float(v), 6)
    return v


def normalize(rows):
    return [tuple(_norm_value(v) for v in row) for row in rows]


def grove_query(base, sql):
    """Runs `sql` through /druid/v2/sql; returns (seconds to the full body, rows)."""
    body = {"query": sql, "resultFormat": "array", "context": QUERY_CONTEXT}
    t0 = time.monotonic()
    raw = _post(f"{base}/druid/v2/sql", body)
    wall = time.monotonic() - t0
    return wall, json.loads(raw)


def grove_files_opened(base, sql):
    """Runs `sql` as a task; returns stage 0 input0 (files, totalFiles) from its report,
    or (None, None) when the report has no such counters."""
    body = {"query": sql, "context": QUERY_CONTEXT}
    task = json.loads(_post(f"{base}/druid/v2/sql/task", body))["taskId"]
    st = _wait(base, task)
    if st["status"] != "SUCCESS":
        sys.exit(f"Grove task for {sql!r} failed: {st.get('errorMsg')}")
    report = _get(f"{base}/druid/indexer/v1/task/{task}/reports")
    try:
        stage0 = report["multiStageQuery"]["payload"]["counters"]["0"]
    except (KeyError, TypeError):
        return None, None

    def total(key):
        # Channel counters are arrays (one entry per partition), per worker.
        vals = [w.get("input0", {}).get(key) for w in stage0.values()]
        vals = [sum(v) if isinstance(v, list) else v for v in vals if v is not None]
        return sum(vals) if vals else None
    return total("files"), total("totalFiles")


def duckdb_connect():
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("SET threads=2")
    return con


def duck_query(con, sql):
    t0 = time.monotonic()
    rows = con.execute(sql).fetchall()
    return time.monotonic() - t0, rows


def run(grove, grove_sql, data_dir, rounds, reps, rows_per_segment, max_tasks, log):
    """The Q1 scenario; returns one result dict per query."""
    ingest_s = ingest(grove, grove_sql, rows_per_segment, max_tasks)
    files = segment_files(grove, data_dir)
    print(f"Q1: ingested {TABLE} in {ingest_s:.2f} s, {len(files)} segment files", file=sys.stderr)
    src = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"
    con = duckdb_connect()
    results = []
    for name, gsql, dsql in QUERIES:
        dsql = dsql.format(src=src)
        # One untimed run each: the answers must agree.
        _, grows = grove_query(grove.base, gsql)
        _, drows = duck_query(con, dsql)
        if normalize(grows) != normalize(drows):
            sys.exit(f"Q1 {name}: Grove and DuckDB disagree\n grove:  {normalize(grows)[:5]}\n"
                     f" duckdb: {normalize(drows)[:5]}")
        results.append(dict(engine="query", scenario="Q1", query=name, rows=len(grows),
                            grove_ms=[], duckdb_ms=[]))
    for rnd in range(rounds):
        for (name, gsql, dsql), r in zip(QUERIES, results):
            dsql = dsql.format(src=src)
            for _ in range(reps):
                r["grove_ms"].append(round(grove_query(grove.base, gsql)[0] * 1000, 2))
                r["duckdb_ms"].append(round(duck_query(con, dsql)[0] * 1000, 2))
        print(f"Q1 round {rnd + 1}/{rounds} done", file=sys.stderr)
    for (name, gsql, _), r in zip(QUERIES, results):
        r["files"], r["total_files"] = grove_files_opened(grove.base, gsql)
        r["segment_files"] = len(files)
        r["rows_per_segment"] = rows_per_segment
        log.write(json.dumps(r) + "\n")
        print(json.dumps(r), file=sys.stderr)
    return results


def table(results):
    print()
    print("| query | rows | Grove ms (median [min-max]) | DuckDB ms (median [min-max]) | "
          "Grove / DuckDB | Grove files opened / total |")
    print("|---|---|---|---|---|---|")
    for r in results:
        g, d = r["grove_ms"], r["duckdb_ms"]
        gm, dm = statistics.median(g), statistics.median(d)
        opened = "n/a (no counters)" if r["files"] is None else f"{r['files']} / {r['total_files']}"
        print(f"| {r['query']} | {r['rows']} | {gm:.1f} [{min(g):.1f}-{max(g):.1f}] | "
              f"{dm:.1f} [{min(d):.1f}-{max(d):.1f}] | {gm / dm:.2f}x | {opened} |")


def dry_run(grove_sql):
    print(f"-- Q1 ingestion (context rowsPerSegment)\n{ingest_sql(grove_sql)};\n")
    for name, gsql, _ in QUERIES:
        print(f"-- Q1 {name}\n{gsql};\n")
