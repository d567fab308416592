#!/usr/bin/env python3
"""What the lifecycle's per-query checks cost identify, at 10^4 speakers, in one run.

Before each identify and verify, speakerdb deletes the voiceprints whose expiry
passed and reads the watchlist (``speakerdb/services/_watchlist.py``: one read of
two indexed queries), then flags a best match on the watchlist. This measures, with
``bench_identify``'s stand-in encoder (an encoder that replays a 512-d embedding at
no cost, so only identify's own work is timed) and its 10^4 clustered templates:

* the search step alone (``Storage.search``, top-10);
* identify's own work with the checks, and with them replaced by no-ops;
* the checks' cost as a fraction of the search step (goal: at most 0.10), with an
  empty watchlist and with 50 watchlisted speakers.

Medians over interleaved repeats, all in one run. Groups (the other half of that
goal in issue 15) are not implemented, so they are not measured.

    python scripts/bench_lifecycle.py [--speakers 10000] [--repeats 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_identify import Replay, fill, interleaved

from speakerdb import SpeakerDB
from speakerdb.audio import clip_from_array
from speakerdb.services import _querying, _watchlist
from speakerdb.types import EncoderInfo

DIM = 512


def measure(db: SpeakerDB, repeats: int) -> dict[str, float]:
    clip = clip_from_array(np.zeros(16_000, np.float32) + 0.01, 16_000)
    query = db._storage.search  # the search step, as identify calls it
    vector = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    checked = _querying.query_guard

    def unchecked(storage: object) -> frozenset[str]:
        return frozenset()

    def identify_without() -> object:
        _querying.query_guard = unchecked  # type: ignore[assignment]
        try:
            return db.identify(clip)
        finally:
            _querying.query_guard = checked

    db.identify(clip)
    return interleaved(
        {
            "search": lambda: query(vector[None, :], 10),
            "checks": lambda: _watchlist.query_guard(db._storage),
            "identify": lambda: db.identify(clip),
            "identify without checks": identify_without,
        },
        repeats,
    )


def report(label: str, medians: dict[str, float]) -> None:
    search, checks = medians["search"], medians["checks"]
    added = medians["identify"] - medians["identify without checks"]
    print(
        f"  {label}: search step {search * 1e3:.3f} ms; the checks alone {checks * 1e3:.3f} ms "
        f"= {checks / search:.3f} of the search step; identify {medians['identify'] * 1e3:.3f} "
        f"ms with them, {medians['identify without checks'] * 1e3:.3f} ms without: "
        f"+{added / search:.3f} of the search step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    vector = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    encoder = Replay(EncoderInfo("stand-in", "1", DIM, 16_000), vector)
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        with SpeakerDB(Path(tmp) / "bench.db", encoder=encoder) as db:  # type: ignore[arg-type]
            db.audit.configure(False)  # creates the file
            fill(db, args.speakers)
            print(f"{args.speakers} speakers, 512-d, stand-in encoder (identify's own work):")
            report("empty watchlist", measure(db, args.repeats))
            for i in range(50):
                db.lifecycle.set_watchlist(f"speaker-{i * 97:06d}")
            report("50 watchlisted", measure(db, args.repeats))


if __name__ == "__main__":
    main()
