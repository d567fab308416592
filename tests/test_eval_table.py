"""The accuracy table's front ends (scripts/eval_table.py): its rows hear and time a clip
as the library does, from its words and up to 0.5 s either side, but the "whole clips"
rows, which hear and time all of it (the table itself needs the shared corpus and is
not run here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_table

from speakerdb.audio import clip_from_array
from speakerdb.encoders import embed_clips

RATE = 16_000


def padded_speech(seconds: float, pad: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    silence = np.zeros(int(pad * RATE))
    return np.concatenate([silence, voice, silence]).astype(np.float32)


def test_the_table_embeds_and_times_a_padded_clip_as_the_library_does() -> None:
    clip = clip_from_array(padded_speech(2.0, 2.0), RATE, "padded.wav")
    embed = eval_table.Embedder(None)
    library = embed_clips(embed.encoder, [clip])[0]
    for variant in ("plain", "windows"):
        assert np.allclose(embed(clip, variant), library, atol=1e-5)
        assert eval_table.duration_of(clip, variant) == clip.spoken_s
    whole = embed(clip, "whole")
    assert np.allclose(whole, embed.encoder.encode([clip.samples])[0], atol=1e-5)
    assert not np.allclose(whole, library, atol=1e-3)
    assert clip.spoken_s < eval_table.duration_of(clip, "whole") == clip.duration_s
