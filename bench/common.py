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
    # one time chunk holding everything (PARTITIONED BY ALL), clustered by a high-cardinality key:
    # the work of a single chunk has to be split across workers by ranges of the key
    "S5": ("kttm_4650k", "all", "cluster_all"),
    # S4's job at 10x (the 8 files linked under ten names each): a scale and memory check
    "S6": ("kttm_4650k_x10", "hour", "cluster"),
}
# Scenarios Grove runs alone: the peers would hold tens of GB (S4 already takes them 4-7 GB).
GROVE_ONLY = {"S6"}

# Generated datasets: name -> (rows, files), as bench/gen_kttm.py --rows --files writes them
# (part-00000.json.gz, ...).
GENERATED = {"kttm_465k": (465346, 1), "kttm_4650k": (4653460, 8)}
# Linked datasets: name -> (dataset, names): every file of the dataset linked under that many
# names (relative symlinks part-CC-NNNNN.json.gz -> ../<dataset>/part-NNNNN.json.gz), no copy.
LINKED = {"kttm_4650k_x10": ("kttm_4650k", 10)}


def files(dataset):
    d = os.path.join(DATA, dataset)
    fs = sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("part-") and (f.endswith(".json.gz") or f.endswith(".json")))
    if not fs:
        sys.exit(f"no input files in {d}; run bench/gen_kttm.py first")
    return fs


def _link_name(copy, name):
    return f"part-{copy:02d}-{name[len('part-'):]}"


def planned_files(dataset):
    """The dataset's input files as they will be named once generated (or linked); for
    printing the SQL before the data exists."""
    if dataset in LINKED:
        src, names = LINKED[dataset]
        return [os.path.join(DATA, dataset, _link_name(c, os.path.basename(f)))
                for c in range(names) for f in planned_files(src)]
    return [os.path.join(DATA, dataset, f"part-{i:05d}.json.gz") for i in range(GENERATED[dataset][1])]


def link_dataset(dataset):
    """Makes the links of a LINKED dataset that are missing (its source must exist)."""
    src, names = LINKED[dataset]
    d = os.path.join(DATA, dataset)
    os.makedirs(d, exist_ok=True)
    for c in range(names):
        for f in files(src):
            target = os.path.join("..", src, os.path.basename(f))
            link = os.path.join(d, _link_name(c, os.path.basename(f)))
            if os.path.islink(link) and os.readlink(link) == target:
                continue
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(target, link)


def manifest(dataset):
    if dataset in LINKED:  # the source's manifest, every file counted once per name
        src, names = LINKED[dataset]
        m = manifest(src)
        return {**m, "rows": m["rows"] * names, "files": m["files"] * names,
                "bytes_uncompressed": m["bytes_uncompressed"] * names,
                "bytes_on_disk": m["bytes_on_disk"] * names, "parts": m["parts"] * names,
                "linked_from": src, "names": names}
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
