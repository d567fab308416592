"""The evaluation set of ``segments`` (scripts/_conversations.py) is what the README says:
2-4 speakers, 1-3 minutes, turns of 1-8 s with pauses, strangers and overlap where the
condition says, reference RTTM, and no enrollment or digital-silence clip used."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from _conversations import (
    CONDITIONS,
    SPLITS,
    Builder,
    build_set,
    conversation_pools,
    enrollment_clips,
)


def test_the_conversations_follow_their_conditions(corpus: Path, tmp_path: Path) -> None:
    conversations = build_set(corpus, "report", 1, tmp_path)
    strangers = SPLITS["report"][1]
    assert len(conversations) == len(CONDITIONS)
    for conv in conversations:
        counts, n_strangers, overlap = CONDITIONS[conv.condition]
        assert len(set(conv.speakers)) in counts
        assert len(set(conv.speakers) & set(strangers)) == n_strangers
        assert 60.0 <= conv.duration <= 181.0
        info = sf.info(str(tmp_path / f"{conv.name}.wav"))
        assert info.samplerate == 16000 and abs(info.duration - conv.duration) < 0.01
        rttm = (tmp_path / f"{conv.name}.rttm").read_text().splitlines()
        assert len(rttm) == len(conv.turns)
        assert all(line.split()[0] == "SPEAKER" and line.split()[1] == conv.name for line in rttm)
        for (start, end, _), (next_start, _, _) in itertools.pairwise(conv.turns):
            assert 0.99 <= end - start <= 8.01 or end >= conv.duration - 1.5
            gap = next_start - end
            assert gap >= 0.19 or (overlap and gap < 0)
        assert any(b[0] < a[1] for a, b in itertools.pairwise(conv.turns)) == overlap


def test_no_enrollment_or_silence_clip_is_used_in_conversations(corpus: Path) -> None:
    enrolled, strangers = SPLITS["report"]
    pools = conversation_pools(corpus, enrolled + strangers)
    used = {p for pool in pools.values() for p in pool}
    enrollment = {p for clips in enrollment_clips(corpus, enrolled).values() for p in clips}
    assert enrollment and not used & enrollment
    assert not any("silence__" in Path(p).name for p in used)
    assert set(SPLITS["tune"][0] + SPLITS["tune"][1]).isdisjoint(enrolled + strangers)
    assert Builder(pools, seed=1)  # the pools are usable as they are
