#!/usr/bin/env python3
"""The shipped open-set defaults on 8 voices nobody has used, hundreds of clips each, in
enrolled populations of up to 30 speakers.

PROTOCOL (pre-registered: committed before any figure was computed on these voices).

The rule. The shipped defaults are applied unchanged and nothing is tuned on these
voices: GE2E (the offline encoder), margin-duration scores, identify's default the
shipped curve of the population's size N and the query's duration d,
``0.9016 + 0.0031 / N - 0.01 x ln(d / 0.5 s)`` (d clamped to 0.5-30 s, N held from 10;
:data:`PROTOCOL_CURVE`; the script stops if the library's default is no longer it),
clips under 0.5 s of net speech answered ``not_enough_speech`` (a miss). If the defaults
miss a target here, that is reported as it is; neither the defaults nor this protocol
change after seeing it. Anything looked at later is labelled post hoc.

Voices. Probes: the 8 Tux Paint voices of scripts/tuxpaint_voices.py (its rule fixed
before any figure; be, bg, ca, da, el, es, ro, ru: the stamps' spoken descriptions, one
volunteer credited per language; 278-606 clips a voice, median 0.9-1.6 s). Enrolled only,
never probes: the shared corpus's 11 voices (3 enrollment clips each,
scripts/_openset_data.py) and the 13 unseen voices of scripts/unseen_voices.py (KLettres
and ktuberling's Catalan artists; they name other people than these). The ktuberling
voices of scripts/fresh_voices.py are never used: their da and ru voices are untagged
and may be the same people as these.

Split, per Tux Paint voice (and per unseen voice), seed 1234, as
scripts/eval_long_queries.py splits (eval_open_set_fresh's ``fresh_speakers`` with gated
enrollment): 3 enrollment clips of at least 1 s drawn among the clips the enrollment gate
accepts (at least 0.5 s of net speech, as ``speakerdb enroll`` requires), every other
clip a single-clip query, the queries joined in path order into items of 3 s or more.

Populations (eval_open_set.drawn_populations and trials: 8 seeded populations per
probe, role and N, the probe's items spread over them in turn; strangers never face
their own voice), each Tux Paint voice a probe:

- tuxpaint: drawn from the other 7 Tux Paint voices, N = 3, 6 and 7 (a stranger faces
  at most 7 others);
- mixed: drawn from them and the shared corpus's 11, N = 3, 6, 10, 15 and 18;
- large: drawn from them, the shared corpus's 11 and the 13 unseen voices, N = 3, 6,
  10, 20 and 30.

A stranger's item is *named* when its best score reaches the threshold and it has
enough net speech; an enrolled speaker's is *correct* when its own speaker scores best,
reaches the threshold and it has enough net speech.

Figures (95% Wilson intervals; a probe's items are not independent, so they are
narrower than the truth): strangers named and correct identifications, single clips
and items of 3 s or more, per slice and N, at the shipped default and after
``calibrate`` (calibrate_population from the population's own 3-clip enrollments,
target 1% of strangers; where it keeps the default, the default decides at each
duration), as scripts/eval_open_set.py computes them. Secondary: after calibrate with a
cohort (30 query clips of every voice of the slice neither enrolled nor the probe); the
share of clips and items under 0.5 s of net speech; strangers named per probe voice at
each slice's largest N; a label check that changes nothing (per voice, the share of its
clips and items whose best template among the 8 Tux Paint voices, all enrolled, is its
own).

Judged against the issue's targets (strangers named at most 5% of single clips and 2%
of items of 3 s or more; correct at least 40% and 60%), on the point estimates, saying
also where the whole interval lies on one side (eval_open_set_fresh's ``verdicts``).
Primary: the default and calibrate, every slice and N.

RESULT of the pre-registered run (the script's output; 6 minutes, embeddings cached
after it). 4,085 single clips (median 0.9-1.6 s a voice; 473, 11.6%, under 0.5 s of net
speech, a miss) and 1,486 items of 3 s or more; the decoder refused 128 clips.

- Strangers stay out at every slice and N, at the default and after calibrate: at most
  48/4085 (1.2%) of single clips and 8/1486 (0.5%) of items named (large, N = 3); at
  N = 20 and 30, 0.3-0.4% and 0-0.1%. Every interval lies under the targets.
- Correct identifications meet both targets up to N = 7 among Tux Paint voices (53.9%
  of single clips, 73.4% of items at N = 7), N = 6 in mixed and N = 10 in large (48.2%,
  64.8%), and fall with N: items of 3 s or more miss 60% from mixed N = 10 (52.9%;
  44.9% at 18) and large N = 20 (52.0%; 44.1% at 30), single clips miss 40% at large
  N = 30 (35.1%). After calibrate fewer are identified from N = 6 (it raises the bar
  there): also large N = 6 items (58.9%) and large N = 20 single clips (38.8%) miss.
- Label check: items are their own voice's best among the 8 for 96-100%, single clips
  for 92-100% but ru's (57.4%).

Looked at after the run (ad hoc, not in the script): the Spanish voice's strangers'
clips named at mixed N = 18 (15) and large N = 30 (9) all went to asterisk-july-esco
(credited to July E. Jiménez); the Danish voice's 4 at large N = 30 to klettres-de.

    python scripts/tuxpaint_voices.py && python scripts/unseen_voices.py   # once
    nice -n 10 python scripts/eval_open_set_tuxpaint.py [--json out.json] [--shipped]
"""

from __future__ import annotations

import logging
import sys
import time

import eval_open_set as eos
from _openset_cli import finished, parsed, shipped_option
from _openset_data import Embedder, load_speakers
from corpus import ensure_corpus
from eval_open_set_fresh import describe_voices, fresh_speakers, label_check, slice_report
from tuxpaint_voices import TUXPAINT
from tuxpaint_voices import manifest as tuxpaint_manifest
from unseen_voices import UNSEEN, manifest_rows

from speakerdb.config import MIN_QUERY_SPEECH_S
from speakerdb.encoders._registry import ThresholdCurve

SEED = 1234
#: The identify default this protocol was registered with.
PROTOCOL_CURVE = ThresholdCurve(0.9016, 0.0031, fall=0.01)
POPULATIONS = 8
COHORT_CLIPS = 30
TUXPAINT_SIZES = (3, 6, 7)
MIXED_SIZES = (3, 6, 10, 15, 18)
LARGE_SIZES = (3, 6, 10, 20, 30)


def main() -> int:
    logging.getLogger("speakerdb").setLevel(logging.ERROR)
    start = time.perf_counter()
    shipped = eos.shipped_thresholds()[eos.DEFAULT_KIND]
    curve = shipped if ARGS.shipped else PROTOCOL_CURVE
    if shipped != curve:
        print(
            f"identify's default is now {shipped}, not the protocol's: "
            "--shipped reports at it (a report, not the pre-registered test)",
            file=sys.stderr,
        )
        return 2
    by_voice = tuxpaint_manifest()  # both sets built, or exit 2 saying how, before any work
    unseen_rows = manifest_rows()
    embed = Embedder(TUXPAINT / "embeddings")
    tuxpaint, refused = fresh_speakers(embed, gated=True, by_voice=by_voice)
    embed.save()
    unseen_embed = Embedder(UNSEEN / "embeddings")
    unseen, _ = fresh_speakers(unseen_embed, gated=True, by_voice=unseen_rows)
    unseen_embed.save()
    shared, _ = load_speakers(ensure_corpus(), COHORT_CLIPS, 1, SEED)
    by_name = {s.name: s for s in [*tuxpaint, *shared, *unseen]}
    probes = [s.name for s in tuxpaint]
    shared_names = [s.name for s in shared]
    print(
        f"offline GE2E, {eos.DEFAULT_KIND} at the shipped default "
        f"{eos.described({eos.DEFAULT_KIND: curve})}, minimum net speech "
        f"{MIN_QUERY_SPEECH_S} s; {len(probes)} Tux Paint voices ({refused} clips refused "
        f"by the decoder); enrolled only: {len(shared)} shared-corpus voices, "
        f"{len(unseen)} unseen voices"
    )
    results: dict[str, object] = {"not_enough_speech": describe_voices(tuxpaint)}
    slices = {
        "tuxpaint": (probes, TUXPAINT_SIZES),
        "mixed": (probes + shared_names, MIXED_SIZES),
        "large": (sorted(by_name), LARGE_SIZES),
    }
    results.update(slice_report(by_name, probes, slices, curve))
    print(f"\n== label check: own voice best among all {len(probes)} Tux Paint voices ==")
    results["label check"] = label_check(by_name, probes)
    return finished(start, ARGS.json, results)


if __name__ == "__main__":
    ARGS = parsed(__doc__, SEED, POPULATIONS, shipped_option)
    sys.exit(main())
