"""The open-set evaluation scripts' shared command line: ``--json``, ``--shipped``, the
seed and population count eval_open_set's trials draw with, and the run's closing lines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import eval_open_set as eos


def parsed(
    doc: str,
    seed: int,
    populations: int,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The script's arguments (``--json``, and what ``more`` adds), also set as
    eval_open_set's, whose trials draw populations with their seed and count."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write every figure here")
    if more is not None:
        more(parser)
    args = parser.parse_args()
    args.seed, args.populations = seed, populations
    eos.ARGS = args
    return args


def shipped_option(parser: argparse.ArgumentParser) -> None:
    """``--shipped``: a pre-registered script's run at the identify default that ships now
    instead of the curve its protocol pinned (a report, not the pre-registered test)."""
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="report at the identify default that ships now, if it is not the protocol's",
    )


def finished(start: float, json_path: Path | None, results: dict[str, object]) -> int:
    """The run's wall time (on stderr) and, with ``--json``, every figure written; 0."""
    print(f"\nwall time {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if json_path:
        json_path.write_text(json.dumps(results, indent=1, default=eos.jsonable))
    return 0
