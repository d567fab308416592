"""One node of the multi-node tests (test_multinode.py): a process that shares a
PostgreSQL database with others, and logs what it saw to a file of JSON lines.

    python tests/_node.py URL NODE SECONDS LOG [--only-enroll]

Every node enrolls speakers of its own (``n{node}-{i}``, each one clip whose audio
only that speaker has), removes every other one of them again, and identifies clips
of any node's speakers, for ``SECONDS`` (and at least ``MIN_ROUNDS`` rounds, within a
minute more). Each line is logged once the operation has
returned, with ``time.monotonic()`` (system-wide on Linux) before and after it:

    {"op": "enroll", "name": ..., "t0": ..., "t1": ...}
    {"op": "remove", "name": ..., "t0": ..., "t1": ...}
    {"op": "identify", "probe": ..., "names": [...], "t0": ..., "t1": ...}
    {"op": "error", "during": ..., "type": ..., "message": ..., "t1": ...}

Lines are flushed and fsynced as they are written, so a node killed with SIGKILL
leaves every line of an operation that returned.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any, TextIO

import numpy as np
from conftest import FakeEncoder, voice

from speakerdb import SpeakerDB, SpeakerDBError

#: Nodes and speakers per node a probe may name; pitches stay apart by 1.5 Hz.
MAX_NODES = 8
MAX_SPEAKERS = 400


def clip_of(name: str) -> tuple[np.ndarray, int]:
    """The one clip of speaker ``n{node}-{i}``: audio no other speaker has."""
    node, i = (int(part) for part in name[1:].split("-"))
    pitch = 90.0 + 1.5 * (node * MAX_SPEAKERS + i)
    return voice(pitch, 1.0, 16000, seed=node * MAX_SPEAKERS + i), 16000


def log_line(out: TextIO, **fields: Any) -> None:
    out.write(json.dumps(fields) + "\n")
    out.flush()
    os.fsync(out.fileno())


#: Rounds a node completes even past its time: on a busy machine the test still sees
#: enough enrollments, removals and queries from every node to check.
MIN_ROUNDS = 4


def run(url: str, node: int, seconds: float, out: TextIO, only_enroll: bool) -> None:
    rng = random.Random(node)
    deadline = time.monotonic() + seconds
    db = None
    i = 0
    while (time.monotonic() < deadline or i < MIN_ROUNDS) and time.monotonic() < deadline + 60:
        during = "open"
        try:
            if db is None:
                db = SpeakerDB(url, encoder=FakeEncoder())
            name = f"n{node}-{i}"
            during = "enroll"
            t0 = time.monotonic()
            db.enroll(name, [clip_of(name)])
            log_line(out, op="enroll", name=name, t0=t0, t1=time.monotonic())
            i += 1
            if only_enroll:
                continue
            if i % 2 == 0:
                during = "remove"
                gone = f"n{node}-{i - 1}"
                t0 = time.monotonic()
                db.remove(gone)
                log_line(out, op="remove", name=gone, t0=t0, t1=time.monotonic())
            during = "identify"
            probe = f"n{rng.randrange(3)}-{rng.randrange(max(1, i + 2))}"
            t0 = time.monotonic()
            found = db.identify(clip_of(probe), top_k=10)
            names = [m.speaker for m in found.matches]
            log_line(out, op="identify", probe=probe, names=names, t0=t0, t1=time.monotonic())
        except SpeakerDBError as exc:
            log_line(
                out,
                op="error",
                during=during,
                type=type(exc).__name__,
                message=str(exc),
                t1=time.monotonic(),
            )
            if during == "enroll":
                i += 1  # its fate is unknown: the name is not used again
            time.sleep(0.05)
    if db is not None:
        db.close()


def main() -> int:
    url, node, seconds, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    with open(path, "a", encoding="utf-8") as out:
        run(url, node, seconds, out, "--only-enroll" in sys.argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
