#!/usr/bin/env python3
"""What a database enrolled before the spoken part costs: identify at the shipped
defaults with voiceprints of whole clips and queries of their spoken part. A
measurement; nothing here chooses a default.

Since the library cuts every clip to its words and up to 0.5 s either side before
embedding it (``Clip.spoken``), a database enrolled by an older speakerdb holds
voiceprints of whole clips (and each clip's whole length as its ``duration_s``)
while its queries are embedded from their spoken part. Compared, on the open-set
evaluation's data and draws (``scripts/eval_open_set.py``, ``scripts/_openset_data.py``:
fold B's speakers as probes, populations of N = 3, 6, 10 drawn from all 11 speakers, 8
per probe, seed 1234), at the shipped margin-duration identify curve and minimum net
speech:

- *spoken / spoken*: enrollments and queries both from their spoken part (a database
  enrolled today, or brought up to date by ``speakerdb reembed``);
- *whole / spoken*: enrollments of whole clips timed by their length, queries from
  their spoken part (a database enrolled before, used today).

Both again with each enrollment clip padded with 1 s of digital silence either side
(``PAD_S``), as a door's fixed recording window enrolls people; the queries stay as
they are.

RESULT (2026-12-08; fold B: asterisk-armelle-fr, asterisk-ivrvoice-ru,
asterisk-june-frca, fillets-cs-big, fillets-nl-big; 500 single clips and 200 items of
3 s or more, as strangers and as enrolled speakers, at N = 3 / 6 / 10):

- corpus clips as they are (trimmed): spoken / spoken reproduces the shipped figures
  (correct single clips 69.8 / 57.4 / 50.6%, items 90.0 / 79.0 / 70.5%); whole / spoken
  identifies no fewer: 72.8 / 60.4 / 53.0% and 92.0 / 84.0 / 75.5%. Strangers named:
  10 / 3 / 0 of 500 single clips and 3 / 1 / 0 of 200 items (spoken), 9 / 3 / 0 and
  3 / 0 / 0 (whole). On clips without silence around the words an upgraded database
  loses nothing (a whole clip is nearly its spoken part).
- enrollment clips padded with 1 s of silence: spoken / spoken 65.2 / 50.4 / 44.2% and
  78.5 / 68.0 / 58.0%; whole / spoken 45.4 / 30.0 / 21.6% and 54.5 / 39.0 / 31.0%:
  20-27 points fewer correct identifications. Strangers named stay at 0-1.4%.

So voiceprints of whole clips cost only where enrollments had silence around the words,
and then much; a database cannot tell which, hence ``info``'s count, the warning on the
first query and ``speakerdb reembed`` with the database's own model.

    nice -n 10 python scripts/eval_upgrade_mismatch.py   # ~1 minute with the cache
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_open_set as base
from corpus import ensure_corpus

from speakerdb.config import MIN_QUERY_SPEECH_S

SEED = 1234
#: Silence either side of the enrollment clips in the padded rows: a door's fixed window.
PAD_S = 1.0


def table(by_name: dict[str, base.Speaker], probes: list[str], every: list[str]) -> None:
    """Strangers named and correct identifications of ``probes``' items at the shipped
    margin-duration curve, per N."""
    curve = base.shipped_thresholds()[base.DEFAULT_KIND]
    kind = base.DEFAULT_KIND
    for n in base.SIZES:
        rows = {
            which: (
                base.trials(by_name, probes, every, n, True, kind, which, None),
                base.trials(by_name, probes, every, n, False, kind, which, None),
            )
            for which in base.SETS
        }
        figures = base.figures_of(rows, lambda x, n=n: base.bar(curve, n, x), MIN_QUERY_SPEECH_S)
        print(f"  N={n:2d} | " + " | ".join(map(base.fmt, figures.values())))


def main() -> None:
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    base.ARGS = argparse.Namespace(singles=100, items=40, populations=8, seed=SEED)
    corpus = ensure_corpus()
    every = sorted(s.name for s in base.load_speakers(corpus, 100, 40, SEED)[0])
    probes = every[1::2]
    print(f"fold B (probes): {', '.join(probes)}; populations from all {len(every)}")
    print(f"shipped: {base.shipped()}")
    print(
        f"  {'':5s} | {'strangers named: single clips':27s} | {'items >= 3 s':27s} "
        f"| {'correct: single clips':27s} | {'items >= 3 s':27s}"
    )
    for pad, whole in ((0.0, False), (0.0, True), (PAD_S, False), (PAD_S, True)):
        speakers, _ = base.load_speakers(
            corpus, 100, 40, SEED, whole_enroll=whole, enroll_pad_s=pad
        )
        padding = f"enrollment clips padded with {pad:g} s of silence; " if pad else ""
        print(f"{padding}enrollments / queries: {'whole' if whole else 'spoken'} / spoken")
        table({s.name: s for s in speakers}, probes, every)
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
