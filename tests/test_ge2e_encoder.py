"""The real GE2E encoder: resemblyzer's shipped weights, run by speakerdb's own code.

Tests that need the weights skip when resemblyzer is not installed
(`pip install --no-deps resemblyzer`); tests on real speech skip when the shared
corpus (``$SPEAKERDB_CORPUS``, built by shared/data/build_corpus.py) is absent.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerdb.encoders._ge2e import GE2EEncoder
from speakerdb.errors import AudioError, ModelError

WEIGHTS_SPEC = importlib.util.find_spec("resemblyzer")
needs_weights = pytest.mark.skipif(
    WEIGHTS_SPEC is None,
    reason="resemblyzer weights not installed: pip install --no-deps resemblyzer",
)
CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", "~/.cache/speakerdb-corpus")).expanduser()
HAS_VAD = importlib.util.find_spec("webrtcvad") is not None


def voice(seconds: float = 2.5, f0: float = 140.0, level: float = 0.01) -> np.ndarray:
    """A deterministic vowel-like signal: 19 harmonics with vibrato and a slow tremolo."""
    t = np.arange(int(seconds * 16_000)) / 16_000
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / 16_000
    wav = sum(np.sin(k * phase) / k for k in range(1, 20))
    return (level * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)) * wav).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def encoder() -> GE2EEncoder:
    if WEIGHTS_SPEC is None:
        pytest.skip("resemblyzer weights not installed: pip install --no-deps resemblyzer")
    return GE2EEncoder.load()


@needs_weights
def test_info_names_the_weights(encoder: GE2EEncoder) -> None:
    assert WEIGHTS_SPEC is not None and WEIGHTS_SPEC.submodule_search_locations
    weights = Path(WEIGHTS_SPEC.submodule_search_locations[0]) / "pretrained.pt"
    info = encoder.info
    assert info.model == "resemblyzer"
    assert info.revision == hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    assert (info.dim, info.sample_rate) == (256, 16_000)


@needs_weights
def test_shape_dtype_and_unit_rows(encoder: GE2EEncoder) -> None:
    clips = [voice(1.0), voice(2.5, f0=220.0), voice(7.3, f0=110.0)]
    out = encoder.encode(clips)
    assert out.shape == (3, 256)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 256)


@needs_weights
def test_matches_resemblyzer_golden_values(encoder: GE2EEncoder) -> None:
    # Computed with resemblyzer 0.1.4 and librosa 0.11:
    # VoiceEncoder().embed_utterance(preprocess_wav(voice(), 16000)), top 8 dimensions.
    top = [189, 146, 122, 49, 180, 82, 248, 111]
    values = [0.28550, 0.20794, 0.20727, 0.18918, 0.18614, 0.17886, 0.17545, 0.16464]
    out = encoder.encode([voice()])[0]
    np.testing.assert_allclose(out[top], values, atol=2e-4)


@needs_weights
def test_deterministic(encoder: GE2EEncoder) -> None:
    clips = [voice(3.0), voice(4.0, f0=200.0)]
    np.testing.assert_array_equal(encoder.encode(clips), encoder.encode(clips))


@needs_weights
def test_embedding_does_not_depend_on_other_clips(encoder: GE2EEncoder) -> None:
    clip = voice(3.0)
    alone = encoder.encode([clip])[0]
    together = encoder.encode([voice(1.2, f0=300.0), clip, voice(9.0, f0=90.0)])[1]
    assert cosine(alone, together) >= 0.99999


@needs_weights
def test_quiet_clips_are_raised_to_the_same_level(encoder: GE2EEncoder) -> None:
    quiet = voice(level=0.01)
    quieter = (quiet * 0.1).astype(np.float32)
    a, b = encoder.encode([quiet, quieter])
    assert cosine(a, b) >= 0.9999


@needs_weights
@pytest.mark.parametrize(
    "clip",
    [
        np.zeros(0, np.float32),
        np.zeros((2, 16_000), np.float32),
        np.full(16_000, np.nan, np.float32),
    ],
    ids=["empty", "2-d", "nan"],
)
def test_unusable_clips_raise_audio_error(encoder: GE2EEncoder, clip: np.ndarray) -> None:
    with pytest.raises(AudioError, match="clip 1"):
        encoder.encode([voice(), clip])


def corpus_pairs(per_speaker: int = 2) -> dict[str, list[Path]]:
    """The first clips of 2.5-6 s of each corpus speaker, in path order."""
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"real-speech corpus not built: {manifest} (run shared/data/build_corpus.py)")
    clips: dict[str, list[Path]] = {}
    with manifest.open(newline="") as fh:
        for row in sorted(csv.DictReader(fh), key=lambda r: r["path"]):
            chosen = clips.setdefault(row["speaker_id"], [])
            if 2.5 <= float(row["duration_s"]) <= 6.0 and len(chosen) < per_speaker:
                chosen.append(Path(row["path"]))
    return {spk: paths for spk, paths in clips.items() if len(paths) == per_speaker}


@needs_weights
def test_same_speaker_scores_higher_than_other_speakers(encoder: GE2EEncoder) -> None:
    clips = corpus_pairs()
    assert len(clips) >= 2, "the corpus needs two speakers with two 2.5-6 s clips"
    emb = {
        spk: encoder.encode([sf.read(p, dtype="float32")[0] for p in paths])
        for spk, paths in clips.items()
    }
    for spk, (a, b) in emb.items():
        same = float(a @ b)
        others = [float(x @ y) for o in emb if o != spk for x in (a, b) for y in emb[o]]
        assert same > max(others), f"{spk}: same-speaker {same:.3f}, best other {max(others):.3f}"


def test_missing_weights_file_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="pip install --no-deps resemblyzer"):
        GE2EEncoder.load(weights=tmp_path / "pretrained.pt")


def hide_module(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    """Make ``importlib.util.find_spec`` report ``hidden`` as not installed."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == hidden else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_resemblyzer_raises_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "resemblyzer")
    with pytest.raises(ModelError, match="pip install --no-deps resemblyzer") as caught:
        GE2EEncoder.load()
    # A library caller is told its own spelling of the export folder route too.
    assert "model='OUT' in Python" in str(caught.value)


def test_corrupt_weights_raise_model_error(tmp_path: Path) -> None:
    weights = tmp_path / "pretrained.pt"
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load GE2E weights"):
        GE2EEncoder.load(weights=weights)


class Payload:
    """An arbitrary object: a safe loader must refuse to unpickle it."""


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    import torch

    weights = tmp_path / "evil.pt"
    torch.save({"model_state": {}, "extra": Payload()}, weights)
    with pytest.raises(ModelError, match="cannot load GE2E weights"):
        GE2EEncoder.load(weights=weights)


def test_silence_trimming_without_webrtcvad_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "webrtcvad")
    with pytest.raises(ModelError, match="pip install webrtcvad-wheels"):
        GE2EEncoder.load(trim_silences=True)


@needs_weights
@pytest.mark.skipif(not HAS_VAD, reason="webrtcvad is not installed")
def test_silence_trimming_shortens_long_silences() -> None:
    from speakerdb.encoders._ge2e import _trim_long_silences

    speech = voice(2.0, level=0.05)  # -30 dBFS: what the VAD sees after volume normalisation
    gapped = np.concatenate([speech, np.zeros(48_000, np.float32), speech])
    kept = len(_trim_long_silences(gapped))
    assert 2 * len(speech) <= kept <= 2 * len(speech) + 8_000  # 3 s of silence -> < 0.5 s
    out = GE2EEncoder.load(trim_silences=True).encode([gapped])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, speakerdb.encoders._ge2e; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
