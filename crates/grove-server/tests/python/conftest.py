"""Fixtures for the Python client tests: a real `grove serve` and a small datasource.

The server binary comes from GROVE_BIN (default: target/debug/grove at the repo root).
It listens on an ephemeral port with a temporary data directory and is stopped at the
end of the session, also when a test fails.
"""

import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[4]

# Rows of datasource `wiki`: two days, a null, a quote and a non-ASCII page.
WIKI_ROWS = [
    {"ts": "2015-09-12T00:46:58.771Z", "page": "Rust", "n": 5, "user": "alice"},
    {"ts": "2015-09-12T01:00:00.000Z", "page": "a,b", "n": 7, "user": None},
    {"ts": "2015-09-12T02:00:00.000Z", "page": "Zig", "n": 9, "user": "bob"},
    {"ts": "2015-09-13T03:00:00.000Z", "page": "O'Brien", "n": 11, "user": "alice"},
    {"ts": "2015-09-13T04:30:00.000Z", "page": "Zürich", "n": 13, "user": "carol"},
]


def sql_literal(text):
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def inline_extern(rows, signature):
    """`TABLE(EXTERN(...))` over an `inline` JSON input of `rows`."""
    source = json.dumps({"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)})
    return "TABLE(EXTERN({}, {}, {}))".format(
        sql_literal(source),
        sql_literal(json.dumps({"type": "json"})),
        sql_literal(json.dumps(signature)),
    )


class Grove:
    """A running `grove serve` process."""

    def __init__(self, binary, data_dir, allow_dir):
        self.data_dir = data_dir
        self.log_path = data_dir.parent / "grove.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--port", "0", "--data-dir", str(data_dir),
             "--allow-local-dir", str(allow_dir),
             # The tests' HTTP inputs are servers on 127.0.0.1.
             "--allow-host", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=self._log,
        )
        line = self._read_line(timeout=60)
        prefix = "grove listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"unexpected first line {line!r}; log:\n{self.log()}")
        self.base = line[len(prefix):].strip()
        host_port = self.base.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)

    def _read_line(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            raise RuntimeError(f"grove did not start within {timeout}s; log:\n{self.log()}")
        return self.proc.stdout.readline().decode()

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def url(self, path):
        return self.base + path

    def submit(self, sql, context=None):
        """Submits `sql` to the task API; returns the task id."""
        r = requests.post(self.url("/druid/v2/sql/task"),
                          json={"query": sql, "context": context or {}})
        assert r.status_code == 202, r.text
        return r.json()["taskId"]

    def wait(self, task_id, timeout=120):
        """Polls the task's status until it is finished; returns the status object."""
        deadline = time.monotonic() + timeout
        while True:
            r = requests.get(self.url(f"/druid/indexer/v1/task/{task_id}/status"))
            assert r.status_code == 200, r.text
            status = r.json()["status"]
            if status["statusCode"] != "RUNNING":
                return status
            assert time.monotonic() < deadline, f"task {task_id} still running: {status}"
            time.sleep(0.05)

    def run(self, sql, context=None):
        """Runs `sql` as a task and asserts that it succeeds."""
        task_id = self.submit(sql, context)
        status = self.wait(task_id)
        assert status["statusCode"] == "SUCCESS", status
        return task_id


@pytest.fixture(scope="session")
def grove(tmp_path_factory):
    binary = Path(os.environ.get("GROVE_BIN", REPO / "target" / "debug" / "grove"))
    if not binary.is_file():
        pytest.fail(f"no grove binary at {binary}: build it or set GROVE_BIN")
    root = tmp_path_factory.mktemp("grove")
    (root / "data").mkdir()
    server = Grove(binary, root / "data", root)
    try:
        server.run(
            "REPLACE INTO wiki OVERWRITE ALL "
            "SELECT TIME_PARSE(ts) AS __time, page, n, \"user\", n * 1.5 AS score FROM "
            + inline_extern(WIKI_ROWS, [
                {"name": "ts", "type": "string"}, {"name": "page", "type": "string"},
                {"name": "n", "type": "long"}, {"name": "user", "type": "string"},
            ])
            + " PARTITIONED BY DAY CLUSTERED BY page"
        )
        yield server
    finally:
        server.stop()
