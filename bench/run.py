#!/usr/bin/env python3
"""The ingestion benchmark: Grove over HTTP against the peers, in one run, one table.

usage:
  python3 bench/run.py                              # S1..S5, all peers, 3 rounds
  python3 bench/run.py S2 --rounds 5 --peers duckdb polars
  python3 bench/run.py S4 --memory-limit 512MB --peers ''   # Grove alone, bounded memory
  python3 bench/run.py S4 S6 --memory-limit 512MB --peers ''  # S6: S4 at 10x, Grove alone
  python3 bench/run.py --dry-run S2                 # print the Druid SQL Grove gets (no data needed)
  python3 bench/run.py Q1 --rounds 3                # queries: Grove over HTTP vs DuckDB (bench/queries.py)

Data comes from bench/gen_kttm.py (made when missing) under $BENCH_WORK (default bench/work);
S6's input is S4's 8 files linked under ten names each ($BENCH_WORK/data/kttm_4650k_x10/, made
when missing). S6 is for Grove alone (not in the default list; peers are skipped for it).
Grove: starts `target/release/grove serve` on a free loopback port with its data directory under
$BENCH_WORK/grove, then for every round and scenario POSTs the scenario's Druid SQL to
/druid/v2/sql/task with context {"maxNumTasks": 2} and polls /status every 10 ms until SUCCESS;
wall = POST to SUCCESS. Peak memory = the server's VmHWM, reset before each task through
/proc/<pid>/clear_refs. Peers: `python3 bench/peers.py PEER SCEN`, timed inside their process with
imports excluded. Grove and the peers alternate (one of each per round), so load from elsewhere on
the machine hits them alike. After each Grove task its segments are read back (pyarrow): all
rows, each file sorted, strings typed as strings; with CLUSTERED BY, range shard specs (from the
coordinator API) disjoint and ordered in each time chunk, every file's rows inside its range.
Results, with time per input row, are appended to $BENCH_WORK/out/bench.jsonl.
Q1 is the query scenario (not run by default): see bench/queries.py.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import (COLUMNS, DATA, GENERATED, GROVE_ONLY, LINKED, OUT, SCENARIOS, WORK,  # noqa: E402
                    files, link_dataset, manifest, planned_files)
import queries  # noqa: E402

ROOT = os.path.dirname(HERE)
PEERS = ["duckdb", "datafusion", "polars", "chdb"]
QUERY_SCENARIOS = {"Q1": "kttm_465k"}  # query scenario -> dataset it ingests
DATASETS = {ds: ["--rows", str(rows), "--files", str(n)] for ds, (rows, n) in GENERATED.items()}
# Time per row of a scenario against a smaller one's (same job, fewer rows), printed under the table.
PER_ROW_AGAINST = {"S4": "S2", "S6": "S4"}
SIGNATURE = json.dumps([{"name": n, "type": t} for n, t in COLUMNS])


def input_files(ds):
    """The dataset's input files; before they exist (--dry-run), the names they will have."""
    d = os.path.join(DATA, ds)
    if os.path.isdir(d) and any(f.startswith("part-") for f in os.listdir(d)):
        return files(ds)
    return planned_files(ds)


def grove_sql(scen):
    ds, gran, kind = SCENARIOS[scen]
    src = json.dumps({"type": "local", "files": input_files(ds)})
    extern = f"TABLE(EXTERN('{src}', '{{\"type\":\"json\"}}', '{SIGNATURE}'))"
    head = f"REPLACE INTO bench_{scen.lower()} OVERWRITE ALL"
    part = {"day": "DAY", "all": "ALL"}.get(gran, "HOUR")
    if kind == "cluster_all":  # one time chunk: range-partitioned segments on the key
        return (f'{head}\nSELECT TIME_PARSE("timestamp") AS __time, *\nFROM {extern}\n'
                f"PARTITIONED BY {part}\nCLUSTERED BY session")
    if kind == "sort_time":
        return f'{head}\nSELECT TIME_PARSE("timestamp") AS __time, *\nFROM {extern}\nPARTITIONED BY {part}'
    if kind == "cluster":
        return (f'{head}\nSELECT TIME_PARSE("timestamp") AS __time, *\nFROM {extern}\n'
                f"PARTITIONED BY {part}\nCLUSTERED BY browser, country")
    return (f"{head}\nSELECT TIME_FLOOR(TIME_PARSE(\"timestamp\"), 'PT1M') AS __time, browser, country,\n"
            f"  COUNT(*) AS cnt, SUM(session_length) AS sum_session_length,\n"
            f"  APPROX_COUNT_DISTINCT_DS_HLL(session) AS unique_sessions\nFROM {extern}\n"
            f"GROUP BY 1, 2, 3\nPARTITIONED BY {part}\nCLUSTERED BY browser, country")


def http(method, url, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


class Grove:
    def __init__(self, binary, memory_limit):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        data_dir = os.path.join(WORK, "grove")
        cmd = [binary, "serve", "--port", str(self.port), "--data-dir", data_dir, "--allow-local-dir", DATA]
        if memory_limit:
            cmd += ["--memory-limit", memory_limit]
        self.log = open(os.path.join(WORK, "grove.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                http("GET", f"{self.base}/status/health", timeout=1)
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None:
                    sys.exit(f"grove serve exited ({self.proc.returncode}); see {self.log.name}")
                time.sleep(0.1)
        sys.exit("grove serve did not answer within 30 s")

    def _status_kib(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
        return 0

    def run(self, scen, max_tasks, context):
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM (peak RSS) to the current RSS
        except OSError:
            pass
        body = {"query": grove_sql(scen), "context": {"maxNumTasks": max_tasks, **context}}
        if SCENARIOS[scen][2] == "rollup":
            body["context"]["finalizeAggregations"] = False
        t0 = time.monotonic()
        task = http("POST", f"{self.base}/druid/v2/sql/task", body)["taskId"]
        while True:
            st = http("GET", f"{self.base}/druid/indexer/v1/task/{task}/status")["status"]
            if st["status"] in ("SUCCESS", "FAILED"):
                break
            time.sleep(0.01)
        wall = time.monotonic() - t0
        if st["status"] != "SUCCESS":
            sys.exit(f"Grove {scen} failed: {st.get('errorMsg')}")
        report = http("GET", f"{self.base}/druid/indexer/v1/task/{task}/reports")
        rows = 0
        try:
            counters = report["multiStageQuery"]["payload"]["counters"]
            for stage in counters.values():
                for worker in stage.values():
                    gen = worker.get("segmentGenerationProgress")
                    if gen:
                        rows += gen.get("rowsPushed", 0)
        except (KeyError, TypeError, AttributeError):
            pass
        return dict(engine="grove", scenario=scen, wall_s=round(wall, 3),
                    peak_mib=round(self._status_kib("VmHWM") / 1024.0, 1), rows_out=rows, task=task)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def check_grove_output(scen, task, rows_out, base):
    """Reads the segments Grove's task wrote: every row is there (the input's row count;
    for the rollup, the report's), every file is in the scenario's order (nulls first, as
    Druid sorts), and string columns read back as strings; with CLUSTERED BY, the range
    shard specs (check_range_shards). Exits on a wrong output; says so and goes on when
    pyarrow is not installed."""
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow missing: Grove's output not checked", file=sys.stderr)
        return
    import glob
    ds, _, kind = SCENARIOS[scen]
    paths = glob.glob(os.path.join(WORK, "grove", "segments", "*", "*", task, "*.parquet"))
    order = {"sort_time": ["__time"], "cluster_all": ["session", "__time"]}.get(
        kind, ["browser", "country", "__time"])
    rows = 0
    edges = {}  # real path -> (first row, last row) of the order columns, None when empty
    for path in paths:
        table = pq.read_table(path, columns=order)
        n = table.num_rows
        rows += n
        for name in order[:-1]:
            if table.schema.field(name).type != pa.string():
                sys.exit(f"Grove {scen}: {path}: {name} reads as {table.schema.field(name).type}")
        keys = [(c, "ascending", "at_start") for c in order]
        idx = pc.sort_indices(table, sort_keys=keys).to_numpy()
        if not np.array_equal(idx, np.arange(n)):
            sys.exit(f"Grove {scen}: {path} is not sorted by {', '.join(order)}")
        edges[os.path.realpath(path)] = (table.slice(0, 1).to_pylist()[0],
                                         table.slice(n - 1, 1).to_pylist()[0]) if n else None
    want = rows_out if kind == "rollup" else manifest(ds)["rows"]
    if rows != want or rows != rows_out:
        sys.exit(f"Grove {scen}: {rows} rows in {len(paths)} segment files, expected {want} "
                 f"(the report says {rows_out})")
    if kind != "sort_time":  # the SQL has CLUSTERED BY
        check_range_shards(scen, base, edges, order)


def _range_key(values):
    """A range bound or a row's key as a comparable tuple: nulls first, strings by code
    point (UTF-8 byte order, as Grove and Arrow compare them)."""
    return tuple((v is not None, "" if v is None else v) for v in values)


def check_range_shards(scen, base, edges, order):
    """Checks the range shard specs of the task's segments, as
    GET /druid/coordinator/v1/metadata/datasources/<ds>/segments?full lists them: every
    segment file of the task is a used segment; in each time chunk, in partitionNum order,
    the [start, end) ranges are disjoint and ascending (only the first open below, only the
    last open above); each file's first and last rows lie inside its segment's range.
    Segments with another shard spec (numbered) and single segments pass as they are."""
    url = f"{base}/druid/coordinator/v1/metadata/datasources/bench_{scen.lower()}/segments?full"
    try:
        segments = http("GET", url)
    except urllib.error.URLError as e:
        sys.exit(f"Grove {scen}: {url}: {e}")
    mine = {}
    for seg in segments or []:
        path = os.path.realpath(str((seg.get("loadSpec") or {}).get("path", "")))
        if path in edges:
            mine[path] = seg
    if len(mine) != len(edges):
        sys.exit(f"Grove {scen}: {len(mine)} of the task's {len(edges)} segment files are used "
                 f"segments of bench_{scen.lower()}")
    chunks = {}
    for path, seg in mine.items():
        if (seg.get("shardSpec") or {}).get("type") == "range":
            chunks.setdefault(seg["interval"], []).append((seg["shardSpec"], path))
    for interval, segs in chunks.items():
        segs.sort(key=lambda sp: sp[0]["partitionNum"])
        for i, (spec, path) in enumerate(segs):
            start, end = spec.get("start"), spec.get("end")
            where = f"Grove {scen}: {interval} partition {spec['partitionNum']} [{start}, {end})"
            if start is None and i > 0:
                sys.exit(f"{where}: open below but not the first of {len(segs)}")
            if end is None and i < len(segs) - 1:
                sys.exit(f"{where}: open above but not the last of {len(segs)}")
            if start is not None and end is not None and not _range_key(start) < _range_key(end):
                sys.exit(f"{where}: an empty range")
            if i > 0 and _range_key(start) < _range_key(segs[i - 1][0]["end"]):
                sys.exit(f"{where}: overlaps partition {segs[i - 1][0]['partitionNum']}, which ends at "
                         f"{segs[i - 1][0]['end']}")
            dims = spec.get("dimensions") or []
            if edges[path] is None or order[:len(dims)] != dims:
                continue  # an empty file, or not sorted by the range's columns first
            first, last = ([row[d] for d in dims] for row in edges[path])
            if ((start is not None and _range_key(first) < _range_key(start))
                    or (end is not None and not _range_key(last) < _range_key(end))):
                sys.exit(f"{where}: {path} holds rows from {first} to {last}")


def run_peer(peer, scen):
    p = subprocess.run([sys.executable, os.path.join(HERE, "peers.py"), peer, scen],
                       capture_output=True, text=True, env={**os.environ, "BENCH_WORK": WORK})
    if p.returncode != 0:
        print(f"  {peer} {scen} failed: {p.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def ensure_data(scenarios):
    needed = {SCENARIOS[s][0] if s in SCENARIOS else QUERY_SCENARIOS[s] for s in scenarios}
    needed |= {LINKED[ds][0] for ds in needed if ds in LINKED}
    for ds in sorted(needed - set(LINKED)):
        if not os.path.exists(os.path.join(DATA, ds, "manifest.json")):
            print(f"generating {ds} ...", file=sys.stderr)
            subprocess.run([sys.executable, os.path.join(HERE, "gen_kttm.py"), *DATASETS[ds],
                            "--out", os.path.join(DATA, ds)], check=True)
    for ds in sorted(needed & set(LINKED)):
        link_dataset(ds)  # the links that are missing


def per_row_us(wall_s, rows):
    return round(wall_s / rows * 1e6, 3)


def table(results, scenarios, engines):
    print()
    print("| scenario | engine | median wall s [min-max] | rows in | rows/s | µs/row | peak MiB | "
          "Grove / fastest peer |")
    print("|---|---|---|---|---|---|---|---|")
    grove_med = {}
    for s in scenarios:
        rows_in = manifest(SCENARIOS[s][0])["rows"]
        med = {}
        for e in engines:
            ws = [r["wall_s"] for r in results if r["engine"] == e and r["scenario"] == s]
            if ws:
                med[e] = statistics.median(ws)
        if "grove" in med:
            grove_med[s] = (med["grove"], rows_in)
        peers = {e: m for e, m in med.items() if e != "grove"}
        fastest = min(peers.values()) if peers else None
        for e in engines:
            rs = [r for r in results if r["engine"] == e and r["scenario"] == s]
            if not rs:
                continue
            ws = [r["wall_s"] for r in rs]
            peak = statistics.median(r["peak_mib"] for r in rs)
            ratio = f"{med[e] / fastest:.2f}x" if (e == "grove" and fastest) else ""
            print(f"| {s} | {e} | {med[e]:.2f} [{min(ws):.2f}-{max(ws):.2f}] | {rows_in:,} | "
                  f"{rows_in / med[e]:,.0f} | {per_row_us(med[e], rows_in):.2f} | {peak:,.0f} | {ratio} |")
    for s, base in PER_ROW_AGAINST.items():
        if s in grove_med and base in grove_med:
            us, base_us = (per_row_us(*grove_med[x]) for x in (s, base))
            print(f"\nGrove time per row, {s} against {base}: {us:.2f} against {base_us:.2f} µs "
                  f"({(us / base_us - 1) * 100:+.0f}%)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=[s for s in SCENARIOS if s not in GROVE_ONLY])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma- or space-separated; '' for none")
    ap.add_argument("--grove", default=os.path.join(ROOT, "target", "release", "grove"))
    ap.add_argument("--memory-limit", default=None, help="passed to grove serve --memory-limit")
    ap.add_argument("--max-num-tasks", type=int, default=2)
    ap.add_argument("--context", default="{}", help="extra query context (JSON)")
    ap.add_argument("--no-grove", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the Druid SQL (the data need not exist)")
    ap.add_argument("--reps", type=int, default=5, help="Q1: timed runs of each query per round")
    ap.add_argument("--rows-per-segment", type=int, default=5000, help="Q1: ingestion rowsPerSegment")
    a = ap.parse_args()
    peers = [p for p in a.peers.replace(",", " ").split() if p]
    query_scens = [s for s in a.scenarios if s in QUERY_SCENARIOS]
    a.scenarios = [s for s in a.scenarios if s not in QUERY_SCENARIOS]
    if query_scens and a.no_grove:
        sys.exit("Q1 needs Grove: it queries the segments Grove writes")
    for s in a.scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s}")
        if s in GROVE_ONLY and a.no_grove:
            sys.exit(f"{s} is for Grove alone: drop --no-grove")
        if p := [p for p in peers if p not in PEERS]:
            sys.exit(f"unknown peer {p[0]}")
    if a.dry_run:
        for s in a.scenarios:
            print(f"-- {s}\n{grove_sql(s)};\n")
        if query_scens:
            queries.dry_run(grove_sql)
        return
    ensure_data(a.scenarios + query_scens)
    if peers and (alone := [s for s in a.scenarios if s in GROVE_ONLY]):
        print(f"{', '.join(alone)}: Grove alone, the peers skipped", file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    grove = None if a.no_grove else Grove(a.grove, a.memory_limit)
    results = []
    query_results = []
    log = open(os.path.join(OUT, "bench.jsonl"), "a")

    def record(r, s, rnd):
        rows_in = manifest(SCENARIOS[s][0])["rows"]
        r.update(round=rnd, rows_in=rows_in, us_per_row=per_row_us(r["wall_s"], rows_in))
        results.append(r)
        log.write(json.dumps(r) + "\n")
        log.flush()
        print(json.dumps(r), file=sys.stderr)

    try:
        if query_scens:
            query_results = queries.run(grove, grove_sql, os.path.join(WORK, "grove"), a.rounds, a.reps,
                                        a.rows_per_segment, a.max_num_tasks, log)
        for rnd in range(a.rounds if a.scenarios else 0):
            for s in a.scenarios:
                for p in peers if s not in GROVE_ONLY else []:
                    r = run_peer(p, s)
                    if r:
                        record(r, s, rnd)
                if grove:
                    r = grove.run(s, a.max_num_tasks, json.loads(a.context))
                    check_grove_output(s, r["task"], r["rows_out"], grove.base)
                    record(r, s, rnd)
    finally:
        if grove:
            grove.stop()
    engines = (["grove"] if grove else []) + peers
    if a.scenarios:
        table(results, a.scenarios, engines)
    if query_results:
        queries.table(query_results)


if __name__ == "__main__":
    main()
