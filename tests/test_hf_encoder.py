"""The real transformers path, with a tiny random x-vector model saved to disk and loaded back."""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import voice

import speakerdb.encoders._hf as hf_encoder
from speakerdb import ModelError, ModelMismatch, SpeakerDB
from speakerdb.audio import SAMPLE_RATE
from speakerdb.encoders import Encoder, HFXVectorEncoder, OnnxXVectorEncoder, load_encoder

DIM = 24  # xvector_output_dim of the tiny model in conftest.py
MISSING = "speakerdb-tests/no-such-model"


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Offline mode as ``HF_HUB_OFFLINE=1`` gives it, and every socket use fails loudly."""
    import huggingface_hub.constants

    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise NetworkUsed(f"network use attempted: {args!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import: set what it read, too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name in ("SPEAKERDB_MODEL", "SPEAKERDB_OFFLINE", "SPEAKERDB_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def hub_requests(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The ``local_files_only`` of every load speakerdb asks transformers for."""
    seen: list[bool] = []
    real = hf_encoder._load_parts

    def spy(model: str, kwargs: dict[str, object]) -> tuple[object, object]:
        seen.append(bool(kwargs["local_files_only"]))
        return real(model, kwargs)

    monkeypatch.setattr(hf_encoder, "_load_parts", spy)
    return seen


@pytest.fixture(scope="module", params=["torch", "onnx"])
def encoder(tiny_model_dir: Path, request: pytest.FixtureRequest) -> Encoder:
    """The model on each backend: transformers and torch, and its ONNX export."""
    loaded = load_encoder(str(tiny_model_dir), backend=request.param)
    assert isinstance(loaded, HFXVectorEncoder if request.param == "torch" else OnnxXVectorEncoder)
    return loaded


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def model_card_embedding(model_dir: Path, audio: np.ndarray) -> np.ndarray:
    """The embedding as the model card computes it."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

    feature_extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioXVector.from_pretrained(model_dir).eval()
    inputs = feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        embeddings = model(**inputs).embeddings
    return torch.nn.functional.normalize(embeddings, dim=-1)[0].numpy()


def test_loaded_as_users_do(tiny_model_dir: Path, tmp_path: Path, write_voice) -> None:
    path = tmp_path / "speakers.db"
    clips = [write_voice("a1.wav", 120, seed=1), write_voice("a2.wav", 120, seed=2)]
    with SpeakerDB(path, model=str(tiny_model_dir)) as db:
        enrollment = db.enroll("alice", clips)
        db.enroll("bob", [write_voice("b1.flac", 240, seed=1, rate=44_100)])
        info = db.info().encoder
        assert info is not None
        assert info.model == str(tiny_model_dir.resolve())
        assert (info.dim, info.sample_rate) == (DIM, SAMPLE_RATE)
        assert info.revision is not None and info.revision.startswith("sha256:")
        assert enrollment.speaker.n_utterances == 2
        assert db.embed(clips).shape == (2, DIM)

    # Reopened without --model, the stored model is used; the clip is found again.
    query = write_voice("b-query.flac", 240, seed=1, rate=44_100)
    with SpeakerDB(path) as db:
        assert db.model == str(tiny_model_dir.resolve())
        result = db.identify(query, top_k=2)
        assert result.best is not None and result.best.speaker == "bob"
        assert result.best.score == pytest.approx(1.0, abs=1e-5)
        assert len(result.matches) == 2


def test_relative_model_directory_is_recorded_absolute(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_model_dir.parent)
    with SpeakerDB(tmp_path / "speakers.db", model=tiny_model_dir.name) as db:
        assert db.model == str(tiny_model_dir.resolve())
        db.enroll("alice", [(voice(120), SAMPLE_RATE)])
        assert db.info().encoder.model == str(tiny_model_dir.resolve())  # type: ignore[union-attr]


def test_embeddings_are_float32_unit_rows(encoder: Encoder, tiny_model_dir: Path) -> None:
    import json

    config = json.loads((tiny_model_dir / "config.json").read_text())
    clips = [voice(120, 2.0), voice(200, 1.3, seed=2), voice(330, 3.0, seed=3)]
    embeddings = encoder.encode(clips)
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (3, config["xvector_output_dim"]) == (3, encoder.info.dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(embeddings).all()


def test_batch_does_not_change_an_embedding(encoder: Encoder) -> None:
    # Mixed lengths, some repeated (batched together), more same-length clips than a batch holds.
    lengths = [1.0, 0.7, 1.0, 1.4, 0.7, *([0.5] * 10)]
    clips = [voice(100 + 25 * i, seconds, seed=i) for i, seconds in enumerate(lengths)]
    together = encoder.encode(clips)
    for i, clip in enumerate(clips):
        alone = encoder.encode([clip])[0]
        assert cosine(together[i], alone) >= 0.99999, i


def test_matches_model_card_computation(
    encoder: Encoder, tiny_model_dir: Path, tmp_path: Path
) -> None:
    audio = voice(150, 2.5, seed=4)
    reference = model_card_embedding(tiny_model_dir, audio)
    assert cosine(encoder.encode([audio])[0], reference) >= 0.99999
    with SpeakerDB(tmp_path / "speakers.db", model=str(tiny_model_dir)) as db:
        assert cosine(db.embed([(audio, SAMPLE_RATE)])[0], reference) >= 0.99999


def test_missing_hub_model_offline_names_the_fix(
    tmp_path: Path,
    no_network: list[object],
    hub_requests: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = str(tmp_path / "empty-cache")
    with pytest.raises(ModelError) as caught:
        load_encoder(MISSING, local_files_only=True, cache_dir=cache)
    message = str(caught.value)
    assert MISSING in message and "--model" in message and "resemblyzer" in message
    assert "offline" in message and "nothing of it in" in message
    # Refused before transformers was asked, or imported: the cache holds nothing of it.
    assert hub_requests == []
    assert no_network == []

    # The same through SpeakerDB, and with SPEAKERDB_OFFLINE instead of the argument.
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, model=MISSING, local_files_only=True, cache_dir=cache) as db:
        with pytest.raises(ModelError, match="resemblyzer"):
            db.enroll("alice", [(voice(120), SAMPLE_RATE)])
        assert not path.exists()  # the failed first enrollment created nothing
    monkeypatch.setenv("SPEAKERDB_OFFLINE", "1")
    with pytest.raises(ModelError, match="--model"):
        load_encoder(MISSING, cache_dir=cache)
    assert hub_requests == []
    assert no_network == []


def test_online_load_is_tried_only_when_allowed(
    tmp_path: Path,
    no_network: list[object],
    hub_requests: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without local_files_only or SPEAKERDB_OFFLINE, a download is attempted after the cache
    # misses, when the Hub answers (refused here by the hub's own offline mode).
    monkeypatch.setattr(hf_encoder, "_hub_reachable", lambda: True)
    with pytest.raises(ModelError, match="resemblyzer"):
        load_encoder(MISSING, cache_dir=str(tmp_path / "empty-cache"))
    assert hub_requests == [False]  # an empty cache is not asked
    # With something of the model cached (another revision, a partial download), the
    # cache is asked first, and transformers says what is missing.
    (tmp_path / "some-cache" / f"models--{MISSING.replace('/', '--')}").mkdir(parents=True)
    with pytest.raises(ModelError, match="resemblyzer"):
        load_encoder(MISSING, cache_dir=str(tmp_path / "some-cache"))
    assert hub_requests == [False, True, False]
    assert no_network == []


def test_unreachable_hub_fails_at_once_without_download_retries(
    tmp_path: Path,
    no_network: list[object],
    hub_requests: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probes: list[object] = []

    def unreachable(address: object, timeout: float) -> None:
        probes.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(ModelError, match=r"cannot be reached.*--model resemblyzer"):
        load_encoder(MISSING, cache_dir=str(tmp_path / "empty-cache"))
    assert hub_requests == []  # refused before transformers: no download, no retries
    assert len(probes) == 1  # one quick reachability probe
    assert no_network == []


def test_hub_model_in_the_default_cache_loads_offline(
    tiny_model_dir: Path,
    tmp_path: Path,
    no_network: list[object],
    hub_requests: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No cache_dir: the model is found where transformers looks by default."""
    import huggingface_hub.constants

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    hub = tmp_path / "hub"
    snapshot = hub / "models--speakerdb-tests--tiny" / "snapshots" / commit
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))  # read at import
    info = load_encoder("speakerdb-tests/tiny", backend="torch", local_files_only=True).info
    assert (info.revision, info.dim) == (commit, DIM)
    assert hub_requests == [True]  # from the cache at the first try
    assert no_network == []


def test_wrong_directory(tmp_path: Path, tiny_model_dir: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ModelError, match="save_pretrained"):
        load_encoder(str(empty))

    half = tmp_path / "config-only"
    half.mkdir()
    shutil.copy(tiny_model_dir / "config.json", half / "config.json")
    with pytest.raises(ModelError, match=str(half)):
        load_encoder(str(half))

    with SpeakerDB(tmp_path / "speakers.db", model=str(empty)) as db:
        with pytest.raises(ModelError):
            db.embed([(voice(120), SAMPLE_RATE)])


def test_revision_is_a_stable_weights_hash(tiny_model_dir: Path) -> None:
    weights = tiny_model_dir / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    first = load_encoder(str(tiny_model_dir)).info
    second = load_encoder(str(tiny_model_dir)).info
    assert first.revision == second.revision == f"sha256:{digest[:16]}"
    assert first == second


def test_changed_weights_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForAudioXVector

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    path = tmp_path / "speakers.db"
    with SpeakerDB(path, model=str(model_dir)) as db:
        db.enroll("alice", [(voice(120), SAMPLE_RATE)])

    # Retrain in place: same directory and dimension, other weights.
    torch.manual_seed(1)
    config = AutoConfig.from_pretrained(model_dir)
    AutoModelForAudioXVector.from_config(config).save_pretrained(model_dir)
    with SpeakerDB(path, model=str(model_dir)) as db:
        with pytest.raises(ModelMismatch, match="--model"):
            db.identify((voice(120), SAMPLE_RATE))
        assert [s.name for s in db.speakers()] == ["alice"]
