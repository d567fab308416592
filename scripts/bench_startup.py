#!/usr/bin/env python3
"""Start-up: wall time of the commands that only look, as fresh processes.

Fills a database with ``--speakers`` synthetic speakers, then runs each command
``--repeats`` times (interleaved) and prints the median wall time next to the
floor of a bare ``python -c pass`` and of ``import speakerdb.cli``, and the
full path that ``list`` took before (opening a ``SpeakerDB``). The target
of issue 5 is 0.3 s for ``--help``, ``list`` and ``info``.

    python scripts/bench_startup.py [--speakers 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_enroll import prefill

from speakerdb.types import EncoderInfo

TARGET_S = 0.3


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "speakers.db")
        prefill(Path(db), EncoderInfo("resemblyzer", "bench", 256, 16_000), args.speakers)
        cli = [sys.executable, "-m", "speakerdb"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import speakerdb.cli": [sys.executable, "-c", "import speakerdb.cli"],
            "speakerdb --help": [*cli, "--help"],
            "speakerdb list": [*cli, "list", "--db", db],
            "speakerdb info": [*cli, "info", "--db", db],
            "speakerdb show NAME": [*cli, "show", "synthetic-0000001", "--db", db],
            # What list did before the fast reader: open a SpeakerDB (SQLAlchemy, numpy).
            "SpeakerDB().speakers()": [
                sys.executable,
                "-c",
                f"from speakerdb import SpeakerDB; SpeakerDB({db!r}, create=False).speakers()",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                times[name].append(wall(command))
    print(f"{args.speakers} speakers, median of {args.repeats} runs")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = (
            ""
            if not name.startswith("speakerdb ")
            else ("  ok" if median <= TARGET_S else f"  over {TARGET_S} s")
        )
        print(f"{name:24s} {median:6.3f} s{verdict}")


if __name__ == "__main__":
    main()
