"""Concurrency: processes and threads enroll, remove and identify in one database at once.

Three writer processes enroll and remove their own speakers while two reader
processes identify clips of the writers' speakers, all for a few seconds on a
database none of them has created yet (see ``tests/_workers.py``). Nothing may
fail ("database is locked" included), nothing a writer reported may be lost,
readers' answers must be consistent, and the index must agree with SQLite.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _workers import RATE, read_events, writer_clip, writer_state
from conftest import FakeEncoder

from speakerdb import DatabaseBusy, DatabaseError, SpeakerDB
from speakerdb.types import Identification

WORKERS = Path(__file__).resolve().parent / "_workers.py"
WRITERS, READERS = 3, 2
SECONDS = 8.0


def _start(role: str, ident: int, db: Path, logs: Path, go: Path) -> subprocess.Popen[bytes]:
    args = [str(db), str(logs / f"{role}-{ident}.log"), str(ident), str(go), str(SECONDS)]
    if role == "reader":
        args.append(str(logs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with (logs / f"{role}-{ident}.stderr").open("wb") as stderr:
        return subprocess.Popen([sys.executable, str(WORKERS), role, *args], stderr=stderr, env=env)


def _all_ready(logs: Path, count: int) -> bool:
    return sum(any(e[0] == "ready" for e in read_events(p)) for p in logs.glob("*.log")) == count


@pytest.mark.slow
def test_processes_enroll_remove_and_identify_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path, logs, go = tmp_path / "speakers.db", tmp_path / "logs", tmp_path / "go"
    logs.mkdir()
    procs = [_start("writer", i, db_path, logs, go) for i in range(WRITERS)]
    procs += [_start("reader", i, db_path, logs, go) for i in range(READERS)]
    try:
        deadline = time.monotonic() + 60
        while not _all_ready(logs, len(procs)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), "a worker died while starting"
            time.sleep(0.02)
        go.touch()  # all open the not yet existing database at the same moment
        codes = [p.wait(timeout=SECONDS + 60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    stderr = "".join(p.read_text() for p in sorted(logs.glob("*.stderr")))
    assert codes == [0] * len(procs), stderr
    events = {p.name: read_events(p) for p in sorted(logs.glob("*.log"))}
    problems = [
        (name, " ".join(e))
        for name, lines in events.items()
        for e in lines
        # Errors ("database is locked" among them), wrong answers, and index rebuilds: with
        # the lock, no process ever finds the file behind the database.
        if e[0] in ("error", "bad") or (e[0] == "warning" and "index" in e[2])
    ]
    assert not problems, problems[:20]
    assert all(lines[-1] == ["done"] for lines in events.values()), "a worker did not finish"

    _, enrolled, removing = writer_state(logs)
    removed = {e[1] for lines in events.values() for e in lines if e[0] == "removed"}
    assert removing == removed
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        with SpeakerDB(db_path, encoder=FakeEncoder()) as db:
            speakers = {s.name: s.id for s in db.speakers()}
            assert set(speakers) == enrolled - removed, "an enrollment was lost or came back"
            assert sorted(db.index.current().ids()) == sorted(speakers.values())
            for name in sorted(speakers)[:30]:
                assert db.identify((writer_clip(name), RATE)).speaker == name
    notices = [r.getMessage() for r in caplog.records]
    assert not [m for m in notices if "index" in m], notices

    ops = {
        kind: sum(e[0] == kind for lines in events.values() for e in lines)
        for kind in ("enrolled", "removed", "op")
    }
    print(
        f"\nconcurrency: {WRITERS} writers and {READERS} readers for {SECONDS:.0f} s: "
        f"{ops['enrolled']} enrollments, {ops['removed']} removals, {ops['op']} identifications, "
        f"{sum(ops.values())} operations in all; {len(speakers)} speakers at the end"
    )


def test_threads_identify_while_another_enrolls(tmp_path: Path) -> None:
    """Two threads identify on one SpeakerDB while a third enrolls and removes on it."""
    path = tmp_path / "speakers.db"
    failures: list[str] = []
    lock = threading.Lock()
    live: set[str] = set()
    stop = threading.Event()
    counts = {"identify": 0, "write": 0}

    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        for number in range(6):
            name = f"w9-{number:03d}"
            db.enroll(name, [(writer_clip(name), RATE)])
            live.add(name)
        ever = set(live)

        def identify(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                with lock:
                    name = rng.choice(sorted(live))
                result: Identification = db.identify((writer_clip(name), RATE), top_k=3)
                with lock:
                    counts["identify"] += 1
                    still = name in live
                    known = set(ever)
                names = [m.speaker for m in result.matches]
                if not set(names) <= known:
                    failures.append(f"unknown speaker in {names}")
                if still and (result.best is None or result.best.speaker != name):
                    failures.append(f"{name} not found: {result.matches}")

        def write() -> None:
            for number in range(6, 200):
                if stop.is_set():
                    return
                name = f"w9-{number:03d}"
                with lock:
                    ever.add(name)
                db.enroll(name, [(writer_clip(name), RATE)])
                with lock:
                    live.add(name)
                    victim = f"w9-{number - 3:03d}"
                    live.discard(victim)
                db.remove(victim)
                with lock:
                    counts["write"] += 2

        errors = _run_threads([lambda: identify(1), lambda: identify(2), write], stop, 3.0)
        assert not errors, errors
        assert not failures, failures[:10]
        speakers = {s.name: s.id for s in db.speakers()}
        assert set(speakers) == live
        assert sorted(db.index.current().ids()) == sorted(speakers.values())
    assert counts["identify"] > 20 and counts["write"] > 10
    print(
        f"\nthreads: {counts['identify']} identifications in 2 threads and "
        f"{counts['write']} enrollments and removals in a third, at once"
    )


def test_two_threads_identify_at_once(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    names = [f"w8-{number:03d}" for number in range(12)]
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        for name in names:
            db.enroll(name, [(writer_clip(name), RATE)])
    with SpeakerDB(path, encoder=FakeEncoder()) as db:  # fresh: both threads load the index
        barrier = threading.Barrier(2)
        answers: list[list[str | None]] = [[], []]

        def work(slot: int) -> None:
            barrier.wait(timeout=30)
            for name in names * 5:
                answers[slot].append(db.identify((writer_clip(name), RATE)).speaker)

        threads = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert answers == [names * 5, names * 5]


def _run_threads(
    targets: list[Callable[[], None]], stop: threading.Event, seconds: float
) -> list[BaseException]:
    """Run the targets in threads until ``stop`` is set or ``seconds`` pass; return their errors."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return errors


# -- locks held by others --------------------------------------------------


def test_a_long_write_elsewhere_gives_a_clear_error_not_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("w7-000", [(writer_clip("w7-000"), RATE)])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. an sqlite3 shell left in a transaction
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseError, match="busy for over 0 s; retry") as caught:
                db.enroll("w7-001", [(writer_clip("w7-001"), RATE)])
            assert time.monotonic() - started < 5
            assert "database is locked" not in str(caught.value)
            assert isinstance(caught.value, DatabaseBusy)  # 503: retrying may work
            # Readers are not held up by a writer (WAL).
            assert db.identify((writer_clip("w7-000"), RATE)).speaker == "w7-000"
        finally:
            other.execute("ROLLBACK")
            other.close()
        db.enroll("w7-001", [(writer_clip("w7-001"), RATE)])
        assert [s.name for s in db.speakers()] == ["w7-000", "w7-001"]


def test_index_lock_held_too_long_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr("speakerdb.storage._index.LOCK_TIMEOUT_S", 0.3)
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("w7-000", [(writer_clip("w7-000"), RATE)])
        lock = path.with_name(path.name + ".faiss.lock")
        assert lock.stat().st_mode & 0o777 == 0o600
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a hung process in the middle of a change
        try:
            with pytest.raises(DatabaseBusy, match=r"index lock .* stop the speakerdb process"):
                db.enroll("w7-001", [(writer_clip("w7-001"), RATE)])
        finally:
            os.close(fd)
        assert [s.name for s in db.speakers()] == ["w7-000"]  # refused before writing


def test_a_killed_lock_holder_does_not_block_others(tmp_path: Path) -> None:
    path = tmp_path / "speakers.db"
    lock = path.with_name(path.name + ".faiss.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        holder.kill()  # SIGKILL: the lock file stays, the lock goes with the process
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert lock.exists()
    started = time.monotonic()
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        db.enroll("w7-000", [(writer_clip("w7-000"), RATE)])
        assert db.identify((writer_clip("w7-000"), RATE)).speaker == "w7-000"
    assert time.monotonic() - started < 10


def test_a_change_behind_the_locks_back_is_caught_by_the_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that ignores the lock (or died before saving) cannot mislabel the index."""
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        for name in ("w6-000", "w6-001"):
            db.enroll(name, [(writer_clip(name), RATE)])
        with sqlite3.connect(path) as other:  # removes w6-001, leaves the index file alone
            other.execute("PRAGMA foreign_keys = ON")
            other.execute("DELETE FROM speakers WHERE name = 'w6-001'")
            other.execute(
                "UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
        other.close()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="speakerdb"):
            db.enroll("w6-002", [(writer_clip("w6-002"), RATE)])
        assert any("stale" in r.getMessage() for r in caplog.records)
        speakers = {s.name: s.id for s in db.speakers()}
        assert set(speakers) == {"w6-000", "w6-002"}
        assert sorted(db.index.current().ids()) == sorted(speakers.values())
        assert db.info().index_state == "up to date (2 speakers)"
    with SpeakerDB(path, encoder=FakeEncoder()) as db:
        found = db.identify((writer_clip("w6-001"), RATE))
        assert "w6-001" not in [m.speaker for m in found.matches]
