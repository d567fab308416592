"""What fingerprint version 2 costs a query's replay check, against version 1, in one run.

The replay check (:mod:`speakerdb.services._replay`) fingerprints each query in the
current version and in every older version the database holds prints of, and looks it up
among the stored prints of each. This times, per query, on the shared corpus
(``scripts/corpus.py``), a temporary SQLite database holding ``--stored`` enrolled clips'
prints:

- the baseline: version 1 alone (the check before version 2), in a database of version-1
  prints;
- today's check (:func:`~speakerdb.services._replay.replayed`), in a database of
  version-2 prints (a database enrolled after the upgrade: version 1 is skipped);
- the same in a database of version-1 prints (enrolled before the upgrade: the query is
  printed in both versions, and looked up in version 1 only).

It prints each median and its ratio to the baseline. The machine is shared: read the
ratios, not the milliseconds.

    nice -n 10 python scripts/bench_replay_versions.py --stored 300 --queries 40
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np
from _replay_corpus import clips_by_speaker, load
from _replay_lookup import EPOCH, database

from speakerdb.audio._fingerprint import VERSION, fingerprint, fingerprint_with_margins
from speakerdb.errors import AudioError
from speakerdb.services._replay import best_stored_match, replayed
from speakerdb.storage import Storage


def check_seconds(storage: Storage, samples: np.ndarray, versions: Sequence[int]) -> float:
    """One query's replay check: today's with no ``versions``, else a print and a lookup
    in each of ``versions``."""
    start = time.perf_counter()
    if not versions:
        replayed(storage, samples, EPOCH)
    for version in versions:
        printed, margins = fingerprint_with_margins(samples, version)
        best_stored_match(storage, printed, margins, EPOCH)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    every, _ = clips_by_speaker()
    paths = [p for clips in every.values() for p in clips[: (args.stored + args.queries) // 5]]
    usable = []
    for path in paths:
        try:
            fingerprint(load(path), 1)
        except AudioError:
            continue
        usable.append(path)
    stored, queries = usable[: args.stored], [load(p) for p in usable[-args.queries :]]
    runs = {}
    for label, kept, versions in (
        ("version 1 alone, version-1 prints (baseline)", 1, (1,)),
        ("the check, version-2 prints (enrolled after)", VERSION, ()),
        ("the check, version-1 prints (enrolled before)", 1, ()),
    ):
        with database([fingerprint(load(p), kept) for p in stored]) as storage:
            check_seconds(storage, queries[0], versions)  # warm the caches
            runs[label] = statistics.median(check_seconds(storage, q, versions) for q in queries)
    base = next(iter(runs.values()))
    seconds = sum(q.size for q in queries) / 16_000 / len(queries)
    print(f"{len(stored)} stored clips, {len(queries)} queries of {seconds:.1f} s on average")
    for label, median in runs.items():
        print(f"  {label:52s} {1000 * median:7.1f} ms  x{median / base:.2f}")


if __name__ == "__main__":
    main()
