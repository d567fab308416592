#!/usr/bin/env python3
"""Start-up: wall time of the commands that only look, as fresh processes.

Fills a database with ``--speakers`` synthetic speakers, then runs each command
``--repeats`` times (interleaved) and prints the median wall time next to the
floor of a bare ``python -c pass`` and of ``import speakerdb.cli``, and the
full path that ``list`` took before (opening a ``SpeakerDB``). The target
of issue 5 is 0.3 s for ``--help``, ``list`` and ``info``.

With ``--baseline DIR`` (a source checkout of another version, e.g. made with
``git worktree add /tmp/base <commit>``) every command also runs on that
version's code, interleaved with this one's, and the ratio of the medians is
printed: the way issue 10 compares start-up before and after a change.

    python scripts/bench_startup.py [--speakers 1000] [--repeats 7] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_enroll import prefill

from speakerdb.types import EncoderInfo

TARGET_S = 0.3


HERE = Path(__file__).resolve().parent.parent


def wall(command: list[str], source: Path) -> float:
    """Seconds that ``command`` takes with speakerdb imported from ``source``.

    Bytecode is cached as for an installed package (pip compiles it at install
    time): PYTHONDONTWRITEBYTECODE, set in some shells, would make every run
    compile every module again, and time that instead of the start-up.
    """
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def verdict(name: str, median: float) -> str:
    if not name.startswith("speakerdb "):
        return ""
    return "  ok" if median <= TARGET_S else f"  over {TARGET_S} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="source checkout to compare with")
    args = parser.parse_args()
    sources = {"this": HERE, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
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
        times: dict[tuple[str, str], list[float]] = {(n, s): [] for n in commands for s in sources}
        for command in commands.values():  # a first run writes the bytecode caches
            for source in sources.values():
                wall(command, source)
        for _ in range(args.repeats):
            for name, command in commands.items():
                for label, source in sources.items():
                    times[name, label].append(wall(command, source))
    print(f"{args.speakers} speakers, median of {args.repeats} interleaved runs")
    for name in commands:
        median = statistics.median(times[name, "this"])
        line = f"{name:24s} {median:6.3f} s"
        if args.baseline:
            base = statistics.median(times[name, "baseline"])
            line += f"   baseline {base:6.3f} s   ratio {median / base:5.2f}"
        print(line + verdict(name, median))


if __name__ == "__main__":
    main()
