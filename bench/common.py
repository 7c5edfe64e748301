"""Shared definitions for the peer benchmark scripts (bench/peer_*.py)."""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Generated inputs and outputs live under BENCH_WORK (default: bench/work, which git ignores).
WORK = os.environ.get("BENCH_WORK", os.path.join(HERE, "work"))
DATA = os.path.join(WORK, "data")
OUT = os.path.join(WORK, "out")

# (name, type) exactly as in Druid's KTTM EXTERN signature
COLUMNS = [
    ("timestamp", "string"), ("agent_category", "string"), ("agent_type", "string"), ("browser", "string"),
    ("browser_version", "string"), ("city", "string"), ("continent", "string"), ("country", "string"),
    ("version", "string"), ("event_type", "string"), ("event_subtype", "string"), ("loaded_image", "string"),
    ("adblock_list", "string"), ("forwarded_for", "string"), ("language", "string"), ("number", "long"),
    ("os", "string"), ("path", "string"), ("platform", "string"), ("referrer", "string"),
    ("referrer_host", "string"), ("region", "string"), ("remote_address", "string"), ("screen", "string"),
    ("session", "string"), ("session_length", "long"), ("timezone", "string"), ("timezone_offset", "long"),
    ("window", "string"),
]
NAMES = [c for c, _ in COLUMNS]

# scenario -> (input dataset dir, partition granularity, kind)
SCENARIOS = {
    "S1": ("kttm_465k", "day", "sort_time"),
    "S2": ("kttm_465k", "hour", "cluster"),
    "S3": ("kttm_465k", "hour", "rollup"),
    "S4": ("kttm_4650k", "hour", "cluster"),
}


def files(dataset):
    d = os.path.join(DATA, dataset)
    fs = sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("part-") and (f.endswith(".json.gz") or f.endswith(".json")))
    if not fs:
        sys.exit(f"no input files in {d}; run bench/gen_kttm.py first")
    return fs


def manifest(dataset):
    with open(os.path.join(DATA, dataset, "manifest.json")) as f:
        return json.load(f)


def out_dir(peer, scenario):
    d = os.path.join(OUT, peer, scenario)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)
    return d


def parse_args():
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(SCENARIOS)}}}")
    s = sys.argv[1]
    ds, gran, kind = SCENARIOS[s]
    return s, ds, gran, kind


def q(name):
    return '"' + name + '"'
