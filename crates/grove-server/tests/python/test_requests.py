"""Druid's HTTP API through `requests`: `POST /druid/v2/sql` in every result format, the
statements API, and the seed page's (Druid's msq-api.md) Python and curl examples,
run as written with only the host, task id and data URI filled in.
"""

import csv
import gzip
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

SEED_SUBMIT_PY = Path(__file__).resolve().parents[1] / "it" / "seed_submit.py"

Q = "SELECT __time, page, n, score FROM wiki ORDER BY __time LIMIT 3"
ROWS = [
    ["2015-09-12T00:46:58.771Z", "Rust", 5, 7.5],
    ["2015-09-12T01:00:00.000Z", "a,b", 7, 10.5],
    ["2015-09-12T02:00:00.000Z", "Zig", 9, 13.5],
]
NAMES = ["__time", "page", "n", "score"]
NATIVE = ["LONG", "STRING", "LONG", "DOUBLE"]
SQL_TYPES = ["TIMESTAMP", "VARCHAR", "BIGINT", "DOUBLE"]


def post_sql(grove, body, **kwargs):
    r = requests.post(grove.url("/druid/v2/sql"), json=body, **kwargs)
    assert r.status_code == 200, r.text
    return r


def test_object_format(grove):
    r = post_sql(grove, {"query": Q})
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Druid-SQL-Query-Id"]
    assert "X-Druid-SQL-Header-Included" not in r.headers
    assert r.json() == [dict(zip(NAMES, row)) for row in ROWS]
    # Keys come in column order.
    assert list(r.json()[0]) == NAMES

    r = post_sql(grove, {"query": Q, "resultFormat": "object", "header": True,
                         "typesHeader": True, "sqlTypesHeader": True})
    assert r.headers["X-Druid-SQL-Header-Included"] == "yes"
    assert r.json()[0] == {
        name: {"type": t, "sqlType": s} for name, t, s in zip(NAMES, NATIVE, SQL_TYPES)}
    assert r.json()[1:] == [dict(zip(NAMES, row)) for row in ROWS]


def test_array_format(grove):
    r = post_sql(grove, {"query": Q, "resultFormat": "array", "header": True,
                         "typesHeader": True, "sqlTypesHeader": True,
                         "context": {"sqlQueryId": "py-array-1"}})
    assert r.headers["X-Druid-SQL-Query-Id"] == "py-array-1"
    assert r.json() == [NAMES, NATIVE, SQL_TYPES] + ROWS


def test_lines_formats(grove):
    r = post_sql(grove, {"query": Q, "resultFormat": "objectLines"})
    assert r.headers["Content-Type"] == "text/plain"
    assert r.text.endswith("\n\n")
    assert [json.loads(line) for line in r.text.splitlines() if line] == [
        dict(zip(NAMES, row)) for row in ROWS]

    r = post_sql(grove, {"query": Q, "resultFormat": "arrayLines", "header": True})
    assert r.headers["Content-Type"] == "text/plain"
    assert r.text.endswith("\n\n")
    assert [json.loads(line) for line in r.text.splitlines() if line] == [NAMES] + ROWS


def test_csv_format(grove):
    r = post_sql(grove, {"query": Q, "resultFormat": "csv", "header": True,
                         "typesHeader": True, "sqlTypesHeader": True})
    assert r.headers["Content-Type"] == "text/csv"
    assert r.text.endswith("\n\n")
    rows = list(csv.reader(io.StringIO(r.text.rstrip("\n"))))
    assert rows == [NAMES, NATIVE, SQL_TYPES] + [[str(v) for v in row] for row in ROWS]
    assert '"a,b"' in r.text


def test_streamed_read(grove):
    # A large result read as it streams, as pydruid does.
    r = requests.post(grove.url("/druid/v2/sql"), stream=True,
                      json={"query": "SELECT value FROM generate_series(1, 100000)",
                            "resultFormat": "arrayLines"})
    assert r.status_code == 200
    n = 0
    for n, line in enumerate((l for l in r.iter_lines() if l), start=1):
        assert json.loads(line) == [n]
    assert n == 100_000


def test_parameters_and_context(grove):
    r = post_sql(grove, {
        "query": "SELECT page, n FROM wiki WHERE __time >= ? AND n < ? AND page <> ? ORDER BY n",
        "resultFormat": "array",
        "parameters": [{"type": "TIMESTAMP", "value": "2015-09-12 01:00:00"},
                       {"type": "INTEGER", "value": 12},
                       {"type": "VARCHAR", "value": "Zig"}],
    })
    assert r.json() == [["a,b", 7], ["O'Brien", 11]]
    r = post_sql(grove, {"query": "SELECT __time FROM wiki ORDER BY __time LIMIT 1",
                         "resultFormat": "array", "context": {"sqlTimeZone": "Asia/Kolkata"}})
    assert r.json() == [["2015-09-12T06:16:58.771+05:30"]]


def test_errors(grove):
    r = requests.post(grove.url("/druid/v2/sql"), json={"query": "SELECT nope FROM wiki"})
    assert r.status_code == 400
    body = r.json()
    assert (body["error"], body["errorCode"], body["category"], body["persona"]) == (
        "druidException", "invalidInput", "INVALID_INPUT", "USER")
    assert "nope" in body["errorMessage"]
    r = requests.post(grove.url("/druid/v2/sql"), data="{nope",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["errorCode"] == "invalidInput"


def test_statements_api(grove):
    r = requests.post(grove.url("/druid/v2/sql/statements"), json={
        "query": "SELECT page, n FROM wiki WHERE n > 6 ORDER BY n", "resultFormat": "array",
        "context": {"executionMode": "ASYNC"}})
    assert r.status_code == 200, r.text
    query_id = r.json()["queryId"]
    deadline = time.monotonic() + 60
    while True:
        status = requests.get(grove.url(f"/druid/v2/sql/statements/{query_id}")).json()
        if status["state"] in ("SUCCESS", "FAILED"):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["state"] == "SUCCESS", status
    assert status["result"]["numTotalRows"] == 4
    assert status["schema"] == [
        {"name": "page", "type": "VARCHAR", "nativeType": "STRING"},
        {"name": "n", "type": "BIGINT", "nativeType": "LONG"}]
    r = requests.get(grove.url(f"/druid/v2/sql/statements/{query_id}/results"))
    assert r.json() == [["a,b", 7], ["Zig", 9], ["O'Brien", 11], ["Zürich", 13]]
    r = requests.get(grove.url(f"/druid/v2/sql/statements/{query_id}/results"),
                     params={"resultFormat": "csv"})
    # text/csv without a charset: requests would decode it as ISO-8859-1 (RFC 2616).
    assert r.content.decode() == '"a,b",7\nZig,9\nO\'Brien,11\nZürich,13\n\n'


# --- The seed page's examples -------------------------------------------------------

def wikipedia_gz(n):
    """`n` rows with the Wikipedia tutorial's 24 columns, gzipped (as in inputs.rs)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as f:
        for i in range(n):
            row = {
                "timestamp": f"2016-06-27T{i % 24:02}:{i % 60:02}:{i % 59:02}.000Z",
                "added": i, "channel": "#{}.wikipedia".format(["en", "de", "fr"][i % 3]),
                "cityName": None, "comment": "edit", "commentLength": 4,
                "countryIsoCode": None, "countryName": None, "deleted": i % 5, "delta": i,
                "deltaBucket": "0.0", "diffUrl": "https://example.org/diff", "flags": "",
                "isAnonymous": "false", "isMinor": "false", "isNew": "false",
                "isRobot": "true" if i % 4 == 0 else "false", "isUnpatrolled": "false",
                "metroCode": None, "namespace": "Main", "page": f"Page {i % 50}",
                "regionIsoCode": None, "regionName": None, "user": f"user{i % 17}",
            }
            f.write((json.dumps(row) + "\n").encode())
    return out.getvalue()


@pytest.fixture(scope="module")
def data_uri():
    """Serves the gzipped Wikipedia rows on loopback, like the seed's https URI."""
    body = wikipedia_gz(500)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data/wikipedia.json.gz"
    server.shutdown()


def seed_base(grove):
    """The seed's `https://<username>:<password>@<your-instance>:<port>`, for Grove."""
    return grove.base.replace("http://", "http://user:password@", 1)


def run_python(script):
    """Runs a seed example as its own Python program; returns what it printed."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


# The seed's GET/POST examples, verbatim but for the URL.
SEED_REQUEST_PY = '''import requests

url = "{url}"

payload={{}}
headers = {{}}

response = requests.request("{method}", url, headers=headers, data=payload)

print(response.text)
'''


def seed_request(grove, method, path):
    url = seed_base(grove) + path
    return json.loads(run_python(SEED_REQUEST_PY.format(url=url, method=method)))


def test_seed_python_examples(grove, data_uri):
    # Submit: the seed's Python example (seed_submit.py, shared with inputs.rs).
    script = (SEED_SUBMIT_PY.read_text()
              .replace("{GROVE}", seed_base(grove)).replace("{DATA_URI}", data_uri))
    answer = json.loads(run_python(script))
    assert answer["state"] == "RUNNING"
    task_id = answer["taskId"]
    assert task_id.startswith("query-")
    assert grove.wait(task_id)["statusCode"] == "SUCCESS"

    # Get the payload. (The seed's URL here lacks its scheme, which requests refuses
    # with MissingSchema whatever the server; it is given one.)
    payload = seed_request(grove, "GET", f"/druid/indexer/v1/task/{task_id}")
    assert payload["task"] == task_id
    assert payload["payload"]["type"] == "query_controller"
    assert payload["payload"]["dataSource"] == "wikipedia"
    assert payload["payload"]["sqlQueryContext"]["maxNumTasks"] == 3

    status = seed_request(grove, "GET", f"/druid/indexer/v1/task/{task_id}/status")
    assert status["task"] == task_id
    s = status["status"]
    assert (s["id"], s["groupId"], s["type"]) == (task_id, task_id, "query_controller")
    assert (s["statusCode"], s["status"], s["runnerStatusCode"]) == ("SUCCESS", "SUCCESS", "NONE")
    assert s["dataSource"] == "wikipedia" and s["errorMsg"] is None
    assert s["duration"] >= 0

    report = seed_request(grove, "GET", f"/druid/indexer/v1/task/{task_id}/reports")
    msq = report["multiStageQuery"]
    assert msq["taskId"] == task_id
    assert msq["payload"]["status"]["status"] == "SUCCESS"
    assert msq["payload"]["status"]["durationMs"] >= 0
    stages = msq["payload"]["stages"]
    assert [st["stageNumber"] for st in stages] == [0, 1]
    assert all(st["phase"] == "FINISHED" for st in stages), stages
    assert stages[0]["definition"]["input"][0]["inputSource"]["uris"] == [data_uri]

    r = requests.post(grove.url("/druid/v2/sql"), json={
        "query": "SELECT COUNT(*) AS c, SUM(added) AS a, COUNT(DISTINCT channel) AS ch "
                 "FROM wikipedia", "resultFormat": "array"})
    assert r.json() == [[500, sum(range(500)), 3]]

    # Cancel: a long SELECT task, shut down with the seed's example.
    long_id = grove.submit("SELECT COUNT(*) AS c FROM generate_series(1, 100000000000)")
    assert seed_request(grove, "POST", f"/druid/indexer/v1/task/{long_id}/shutdown") == {
        "task": long_id}
    status = grove.wait(long_id, timeout=60)
    assert status["statusCode"] == "FAILED"
    assert status["errorMsg"] == "Shutdown request from user", status
    report = seed_request(grove, "GET", f"/druid/indexer/v1/task/{long_id}/reports")
    error = report["multiStageQuery"]["payload"]["status"]["errorReport"]["error"]
    assert error["errorCode"] == "Canceled"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_curl_examples(grove):
    def curl(*args):
        out = subprocess.run(["curl", "--silent", "--location", *args], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    base = seed_base(grove)
    task_id = grove.run("INSERT INTO curl_t SELECT TIME_PARSE('2016-06-27T00:00:00Z') AS __time, "
                        "'x' AS s PARTITIONED BY DAY")
    payload = curl("--request", "GET", f"{base}/druid/indexer/v1/task/{task_id}")
    assert payload["payload"]["dataSource"] == "curl_t"
    status = curl("--request", "GET", f"{base}/druid/indexer/v1/task/{task_id}/status")
    assert status["status"]["statusCode"] == "SUCCESS"
    # The seed's curl uses `/report` where its Python uses `/reports`: both answer.
    report = curl("--request", "GET", f"{base}/druid/indexer/v1/task/{task_id}/report")
    assert report["multiStageQuery"]["taskId"] == task_id
    # Shutting down a finished task is a no-op that answers the task id.
    done = curl("--request", "POST", f"{base}/druid/indexer/v1/task/{task_id}/shutdown")
    assert done == {"task": task_id}
    assert grove.wait(task_id)["statusCode"] == "SUCCESS"
