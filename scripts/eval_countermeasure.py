"""The example countermeasure ``bandwidth`` on the shared corpus, speakers left out.

``bandwidth`` (speakerdb.decision._countermeasure) calls a clip a spoof when it has
(almost) no power above 4 kHz: a copy played through an 8 kHz telephone line. It
only suits deployments whose microphones capture the full band, so it is measured
on the corpus's full-band voices (the ``fillets-*`` speakers; the ``asterisk-*``
prompts are telephone-band recordings themselves, and every one of them is a
"spoof" to it, which the script prints too):

- the threshold is chosen on the tuning speakers (fillets-cs-*): 3 dB above the
  highest score of their telephone copies (every copy caught, as few live clips as
  possible refused);
- reported on the held-out speakers (fillets-nl-*): live clips flagged, and their
  telephone copies (``_replay_transforms.telephone``: band-pass, 8 kHz, mu-law) detected.

The 60 ``silence__N.wav`` clips are left out (digital silence, not speech).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rates import rate
from _replay_corpus import clips_by_speaker, load
from _replay_transforms import telephone

from speakerdb.audio import Clip
from speakerdb.decision import BandwidthCountermeasure

PER_SPEAKER = 80


def scores(paths: list[str], transform: bool = False) -> np.ndarray:
    meter = BandwidthCountermeasure()
    rng = np.random.default_rng(0)
    out = []
    for path in paths:
        x = load(path)
        if transform:
            x = telephone(x, rng)
        out.append(meter.score(Clip(x.astype(np.float32), path, "")))
    return np.array(out)


def main() -> None:
    every, _ = clips_by_speaker()
    sample = {}
    for spk, paths in sorted(every.items()):
        paths = sorted(paths)
        random.Random(spk).shuffle(paths)
        sample[spk] = paths[:PER_SPEAKER]
    tuning = [p for s, ps in sample.items() if s.startswith("fillets-cs") for p in ps]
    held_out = [p for s, ps in sample.items() if s.startswith("fillets-nl") for p in ps]
    live_tuning, copies_tuning = scores(tuning), scores(tuning, transform=True)
    threshold = float(copies_tuning.max()) + 3.0
    print(
        f"tuning speakers fillets-cs-*: live clips {live_tuning.min():.1f} to "
        f"{live_tuning.max():.1f} dB above 4 kHz, telephone copies {copies_tuning.min():.1f} "
        f"to {copies_tuning.max():.1f}; threshold {threshold:.1f} dB "
        f"(shipped {BandwidthCountermeasure.threshold:.1f})"
    )
    for label, t in (("tuned", threshold), ("shipped", BandwidthCountermeasure.threshold)):
        live = scores(held_out)
        copies = scores(held_out, transform=True)
        print(f"held-out fillets-nl-*, {label} threshold {t:.1f} dB:")
        print(f"  live clips flagged as spoofs    {rate(int((live < t).sum()), live.size)}")
        print(f"  telephone copies detected       {rate(int((copies < t).sum()), copies.size)}")
    phone = [p for s, ps in sample.items() if s.startswith("asterisk") for p in ps]
    native = scores(phone)
    flagged = int((native < BandwidthCountermeasure.threshold).sum())
    print(f"asterisk-* prompts (telephone-band recordings) flagged {rate(flagged, native.size)}")


if __name__ == "__main__":
    main()
