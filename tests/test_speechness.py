"""The enrollment speech gate: generated non-speech is refused with a reason, real speech passes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows, voice

from speakerdb.audio import SpeechAssessment, assess_speech, load_clip

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _nonspeech import KINDS, make

#: The words each kind's reason must contain: the gate says what the clip sounds like.
EXPECTED = {
    "white": "steady noise",
    "pink": "noise",
    "brown": "noise",
    "hum50": "mains hum",
    "hum60": "mains hum",
    "tone": "pure tone",
    "multitone": "looks like",
    "sweep": "looks like",
    "clicks": "looks like",
    "chords": "music",
    "melody": "music",
    "drums": "drums",
    "gated_noise": "noise",
    "faint_noise": "silence",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("seconds", [2.0, 5.0])
def test_generated_non_speech_is_refused_with_a_reason(kind: str, seconds: float) -> None:
    level = -70.0 if kind == "faint_noise" else -20.0
    result = assess_speech(make(kind, seconds, level, seed=7))
    assert not result.is_speech
    assert result.reason is not None
    assert EXPECTED[kind] in result.reason
    assert "--force" in result.reason  # the way out is named


@pytest.mark.parametrize("level", [-45.0, -6.0])
def test_white_noise_and_hum_are_refused_at_any_level(level: float) -> None:
    for kind in ("white", "hum50"):
        assert not assess_speech(make(kind, 3.0, level, seed=1)).is_speech


def test_digital_silence_and_tiny_clips_are_refused_without_error() -> None:
    for samples in (np.zeros(16000, np.float32), np.zeros(0, np.float32), np.ones(10, np.float32)):
        result = assess_speech(samples)
        assert not result.is_speech
        assert result.reason


def test_integer_samples_are_read_as_full_scale_fractions() -> None:
    wav = make("white", 2.0, -20.0, seed=3)
    as_int = (wav * 32767).astype(np.int16)
    assert assess_speech(as_int).level_dbfs == pytest.approx(assess_speech(wav).level_dbfs, abs=0.1)


def test_the_result_is_frozen_and_carries_its_cues() -> None:
    result = assess_speech(make("tone", 1.0, -20.0, seed=0))
    assert isinstance(result, SpeechAssessment)
    assert result.energy_spread_db < 1.0
    with pytest.raises(AttributeError):
        result.is_speech = True  # type: ignore[misc]


def test_the_tests_synthetic_voice_is_refused_as_a_steady_sound() -> None:
    # voice() is a steady buzz with no syllables: fixtures that enroll it must turn the gate off.
    result = assess_speech(voice(150.0, 2.0))
    assert not result.is_speech
    assert "steady" in (result.reason or "")


def test_real_corpus_clips_are_accepted(corpus: Path) -> None:
    # Both recording families, short prompts and long lines: the enrollment clips of the protocol.
    rows = read_rows(corpus / "protocol" / "enroll.csv")
    for row in rows:
        result = assess_speech(load_clip(row["path"]).samples)
        assert result.is_speech, (row["path"], result)


#: Real clips nearest a limit (scripts/eval_speech_gate.py): few vowels, a whisper, a pure
#: sinusoid of a vowel, a game voice that holds its pitch.
EDGE_CLIPS = [
    "asterisk-armelle-fr/digits__6.wav",
    "fillets-nl-big/computer__nl__poc-v-pssst.wav",
    "asterisk-menardi-it/digits__8.wav",
    "fillets-cs-small/music__cs__ves-m-krab.wav",
]


@pytest.mark.parametrize("name", EDGE_CLIPS)
def test_real_clips_near_a_limit_are_accepted(corpus: Path, name: str) -> None:
    result = assess_speech(load_clip(corpus / "wav" / name).samples)
    assert result.is_speech, result


def test_gated_noise_is_refused_although_its_level_moves_like_syllables() -> None:
    result = assess_speech(make("gated_noise", 3.0, -20.0, seed=2))
    assert result.energy_spread_db > 10  # the level cue alone would call it speech
    assert not result.is_speech and "noise" in (result.reason or "")


def test_the_module_is_light() -> None:
    # Nothing but numpy: the gate runs where the CLI runs, without heavy imports.
    import speakerdb.audio._speechness as module

    source = Path(module.__file__).read_text()
    assert "import scipy" not in source and "import torch" not in source
