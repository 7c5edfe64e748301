#!/usr/bin/env python3
"""The ingestion benchmark: Grove over HTTP against the peers, in one run, one table.

usage:
  python3 bench/run.py                              # S1..S4, all peers, 3 rounds
  python3 bench/run.py S2 --rounds 5 --peers duckdb polars
  python3 bench/run.py S4 --memory-limit 512MB --peers ''   # Grove alone, bounded memory
  python3 bench/run.py --dry-run S2                 # print the Druid SQL Grove gets
  python3 bench/run.py Q1 --rounds 3                # queries: Grove over HTTP vs DuckDB (bench/queries.py)

Data comes from bench/gen_kttm.py (made when missing) under $BENCH_WORK (default bench/work).
Grove: starts `target/release/grove serve` on a free loopback port with its data directory under
$BENCH_WORK/grove, then for every round and scenario POSTs the scenario's Druid SQL to
/druid/v2/sql/task with context {"maxNumTasks": 2} and polls /status every 10 ms until SUCCESS;
wall = POST to SUCCESS. Peak memory = the server's VmHWM, reset before each task through
/proc/<pid>/clear_refs. Peers: `python3 bench/peers.py PEER SCEN`, timed inside their process with
imports excluded. Grove and the peers alternate (one of each per round), so load from elsewhere on
the machine hits them alike. After each Grove task its segments are read back (pyarrow): all
rows, each file sorted, strings typed as strings. Results are appended to $BENCH_WORK/out/bench.jsonl.
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
from common import COLUMNS, DATA, OUT, SCENARIOS, WORK, files, manifest  # noqa: E402
import queries  # noqa: E402

ROOT = os.path.dirname(HERE)
PEERS = ["duckdb", "datafusion", "polars", "chdb"]
QUERY_SCENARIOS = {"Q1": "kttm_465k"}  # query scenario -> dataset it ingests
DATASETS = {"kttm_465k": ["--rows", "465346"], "kttm_4650k": ["--rows", "4653460", "--files", "8"]}
SIGNATURE = json.dumps([{"name": n, "type": t} for n, t in COLUMNS])


def grove_sql(scen):
    ds, gran, kind = SCENARIOS[scen]
    src = json.dumps({"type": "local", "files": files(ds)})
    extern = f"TABLE(EXTERN('{src}', '{{\"type\":\"json\"}}', '{SIGNATURE}'))"
    head = f"REPLACE INTO bench_{scen.lower()} OVERWRITE ALL"
    part = "DAY" if gran == "day" else "HOUR"
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


def check_grove_output(scen, task, rows_out):
    """Reads the segments Grove's task wrote: every row is there (the input's row count;
    for the rollup, the report's), every file is in the scenario's order (nulls first, as
    Druid sorts), and string columns read back as strings. Exits on a wrong output; says
    so and goes on when pyarrow is not installed."""
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
    order = ["__time"] if kind == "sort_time" else ["browser", "country", "__time"]
    rows = 0
    for path in paths:
        table = pq.read_table(path, columns=order)
        rows += table.num_rows
        for name in order[:-1]:
            if table.schema.field(name).type != pa.string():
                sys.exit(f"Grove {scen}: {path}: {name} reads as {table.schema.field(name).type}")
        keys = [(c, "ascending", "at_start") for c in order]
        idx = pc.sort_indices(table, sort_keys=keys).to_numpy()
        if not np.array_equal(idx, np.arange(table.num_rows)):
            sys.exit(f"Grove {scen}: {path} is not sorted by {', '.join(order)}")
    want = rows_out if kind == "rollup" else manifest(ds)["rows"]
    if rows != want or rows != rows_out:
        sys.exit(f"Grove {scen}: {rows} rows in {len(paths)} segment files, expected {want} "
                 f"(the report says {rows_out})")


def run_peer(peer, scen):
    p = subprocess.run([sys.executable, os.path.join(HERE, "peers.py"), peer, scen],
                       capture_output=True, text=True, env={**os.environ, "BENCH_WORK": WORK})
    if p.returncode != 0:
        print(f"  {peer} {scen} failed: {p.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def ensure_data(scenarios):
    for ds in sorted({SCENARIOS[s][0] if s in SCENARIOS else QUERY_SCENARIOS[s] for s in scenarios}):
        if not os.path.exists(os.path.join(DATA, ds, "manifest.json")):
            print(f"generating {ds} ...", file=sys.stderr)
            subprocess.run([sys.executable, os.path.join(HERE, "gen_kttm.py"), *DATASETS[ds],
                            "--out", os.path.join(DATA, ds)], check=True)


def table(results, scenarios, engines):
    print()
    print("| scenario | engine | median wall s [min-max] | rows/s | peak MiB | Grove / fastest peer |")
    print("|---|---|---|---|---|---|")
    for s in scenarios:
        rows_in = manifest(SCENARIOS[s][0])["rows"]
        med = {}
        for e in engines:
            ws = [r["wall_s"] for r in results if r["engine"] == e and r["scenario"] == s]
            if ws:
                med[e] = statistics.median(ws)
        peers = {e: m for e, m in med.items() if e != "grove"}
        fastest = min(peers.values()) if peers else None
        for e in engines:
            rs = [r for r in results if r["engine"] == e and r["scenario"] == s]
            if not rs:
                continue
            ws = [r["wall_s"] for r in rs]
            peak = statistics.median(r["peak_mib"] for r in rs)
            ratio = f"{med[e] / fastest:.2f}x" if (e == "grove" and fastest) else ""
            print(f"| {s} | {e} | {med[e]:.2f} [{min(ws):.2f}-{max(ws):.2f}] | {rows_in / med[e]:,.0f} | "
                  f"{peak:,.0f} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma- or space-separated; '' for none")
    ap.add_argument("--grove", default=os.path.join(ROOT, "target", "release", "grove"))
    ap.add_argument("--memory-limit", default=None, help="passed to grove serve --memory-limit")
    ap.add_argument("--max-num-tasks", type=int, default=2)
    ap.add_argument("--context", default="{}", help="extra query context (JSON)")
    ap.add_argument("--no-grove", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
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
        if p := [p for p in peers if p not in PEERS]:
            sys.exit(f"unknown peer {p[0]}")
    ensure_data(a.scenarios + query_scens)
    if a.dry_run:
        for s in a.scenarios:
            print(f"-- {s}\n{grove_sql(s)};\n")
        if query_scens:
            queries.dry_run(grove_sql)
        return
    os.makedirs(OUT, exist_ok=True)
    grove = None if a.no_grove else Grove(a.grove, a.memory_limit)
    results = []
    query_results = []
    log = open(os.path.join(OUT, "bench.jsonl"), "a")
    try:
        if query_scens:
            query_results = queries.run(grove, grove_sql, os.path.join(WORK, "grove"), a.rounds, a.reps,
                                        a.rows_per_segment, a.max_num_tasks, log)
        for rnd in range(a.rounds if a.scenarios else 0):
            for s in a.scenarios:
                for p in peers:
                    r = run_peer(p, s)
                    if r:
                        r["round"] = rnd
                        results.append(r)
                        log.write(json.dumps(r) + "\n")
                        print(json.dumps(r), file=sys.stderr)
                if grove:
                    r = grove.run(s, a.max_num_tasks, json.loads(a.context))
                    check_grove_output(s, r["task"], r["rows_out"])
                    r["round"] = rnd
                    results.append(r)
                    log.write(json.dumps(r) + "\n")
                    print(json.dumps(r), file=sys.stderr)
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
