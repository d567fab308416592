"""Several processes share one PostgreSQL database (tests/_node.py is one node).

* Three nodes enroll, remove and identify at once for a bounded time, on plain
  PostgreSQL (each node's FAISS cache) and on pgvector: no write is lost, no
  identification that began after a removal returned names the removed speaker,
  an enrollment is found by every node once it has returned, and no node sees an
  error.
* A node killed with SIGKILL in the middle of its enrollments loses none that
  returned, and leaves no lock behind.
* The server restarts under load: the nodes' errors say the server cannot be
  reached, and each node then goes on by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _node import clip_of
from conftest import FakeEncoder

from speakerdb import SpeakerDB

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
#: How long the nodes run, in seconds: bounded, as every load test.
SECONDS = 10.0


def start_node(url: str, node: int, seconds: float, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    argv = [sys.executable, str(TESTS / "_node.py"), url, str(node), str(seconds), str(log)]
    return subprocess.Popen([*argv, *extra], env=env, stderr=subprocess.PIPE, text=True)


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def finish(nodes: list[subprocess.Popen], timeout: float = 120) -> None:
    for node in nodes:
        _, err = node.communicate(timeout=timeout)
        assert node.returncode == 0, err
        assert "Traceback" not in err, err


def stored_names(url: str) -> set[str]:
    with SpeakerDB(url, encoder=FakeEncoder()) as db:
        return {s.name for s in db.speakers()}


def test_three_nodes_enroll_remove_and_identify_at_once(pg_url: str, tmp_path: Path) -> None:
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        db.enroll("n9-0", [clip_of("n9-0")])  # the database exists before the nodes start
    logs = [tmp_path / f"node{i}.jsonl" for i in range(3)]
    finish([start_node(pg_url, i, SECONDS, log) for i, log in enumerate(logs)])
    lines = [line for log in logs for line in read_log(log)]
    errors = [line for line in lines if line["op"] == "error"]
    assert errors == []
    enrolled = {line["name"]: line["t1"] for line in lines if line["op"] == "enroll"}
    removed = {line["name"]: line["t1"] for line in lines if line["op"] == "remove"}
    identified = [line for line in lines if line["op"] == "identify"]
    assert len(enrolled) > 6 and len(removed) > 2 and len(identified) > 2
    # No lost write: exactly what returned, less what was removed.
    assert stored_names(pg_url) == {"n9-0"} | (set(enrolled) - set(removed))
    # No speaker named by a query that began after their removal returned.
    late = [
        (line["probe"], name)
        for line in identified
        for name in line["names"]
        if name in removed and removed[name] < line["t0"]
    ]
    assert late == []
    # An enrollment is found by every node once it has returned (each clip is its
    # speaker's template: the best match of itself) until its removal begins.
    missed = [
        line["probe"]
        for line in identified
        if line["probe"] in enrolled
        and enrolled[line["probe"]] < line["t0"]
        and not (line["probe"] in removed and removed[line["probe"]] - 1.0 < line["t1"])
        and line["names"][:1] != [line["probe"]]
    ]
    assert missed == []


def test_a_node_killed_mid_enrollment_loses_nothing_committed(pg_url: str, tmp_path: Path) -> None:
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        db.enroll("n9-0", [clip_of("n9-0")])
    for round_ in range(3):
        log = tmp_path / f"killed{round_}.jsonl"
        node = start_node(pg_url, round_, 60.0, log, "--only-enroll")
        deadline = time.monotonic() + 60
        while len(read_log(log)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.013 * (round_ + 1))  # somewhere in an enrollment
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=30)
        returned = {line["name"] for line in read_log(log) if line["op"] == "enroll"}
        assert returned, "the node enrolled nobody before it was killed"
        assert returned <= stored_names(pg_url)
    # The killed nodes held no lock: another writer goes on at once.
    with SpeakerDB(pg_url, encoder=FakeEncoder()) as db:
        db.enroll("n9-1", [clip_of("n9-1")])
        assert db.identify(clip_of("n9-1")).matches[0].speaker == "n9-1"


@pytest.fixture
def own_server():
    """A plain PostgreSQL cluster for this test alone: it is restarted."""
    from _postgres import start_server, stop_server

    server = start_server("plain", own=True)
    if isinstance(server, str):
        if os.environ.get("SPEAKERDB_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(server)
        pytest.skip(server)
    try:
        yield server
    finally:
        stop_server(server)


def test_the_server_restarts_under_load(own_server: Any, tmp_path: Path) -> None:
    url = own_server.create_database()
    with SpeakerDB(url, encoder=FakeEncoder()) as db:
        db.enroll("n9-0", [clip_of("n9-0")])
    logs = [tmp_path / f"node{i}.jsonl" for i in range(3)]
    nodes = [start_node(url, i, 20.0, log) for i, log in enumerate(logs)]
    deadline = time.monotonic() + 60
    while min(len(read_log(log)) for log in logs) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # every node is under way
    restarted_at = time.monotonic()
    own_server.restart()
    back_at = time.monotonic()
    finish(nodes)
    seen = [line for log in logs for line in read_log(log) if line["op"] == "error"]
    assert seen, "no node noticed the restart"
    for log in logs:
        lines = read_log(log)
        errors = [line for line in lines if line["op"] == "error"]
        for error in errors:  # clear: what happened and that it goes on by itself
            assert error["type"] == "DatabaseError", error
            assert "cannot reach the PostgreSQL server" in error["message"], error
            assert "reconnects by itself" in error["message"], error
            assert restarted_at - 1.0 < error["t1"] < back_at + 10.0, error
        recovered = [line for line in lines if line["op"] != "error" and line["t1"] > back_at + 1.0]
        assert len(recovered) > 5, f"{log.name} did not go on after the restart"
    returned = {line["name"] for log in logs for line in read_log(log) if line["op"] == "enroll"}
    gone = {line["name"] for log in logs for line in read_log(log) if line["op"] == "remove"}
    assert returned - gone <= stored_names(url)
