"""The ONNX Runtime backend and the bf16 fast paths (OpenVINO, torch), on the tiny random
x-vector model: exact (or, in bf16, close) against the model card, built once and cached,
rebuilt when corrupt, and a query path that imports neither torch nor transformers."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_probed, voice

import speakerdb.encoders._onnx as onnx_encoder
from speakerdb import ModelError, SpeakerDB
from speakerdb.audio import SAMPLE_RATE
from speakerdb.encoders import (
    ExportError,
    HFXVectorEncoder,
    OnnxXVectorEncoder,
    WaveformFeatures,
    load_encoder,
)

LENGTHS = (0.6, 1.0, 1.37, 2.5, 4.01)  # seconds: the time axis is dynamic


@pytest.fixture(autouse=True)
def cache(fresh_cache: Path) -> Path:
    """Every test here runs on a fresh cache (conftest.fresh_cache)."""
    return fresh_cache


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every export built, by destination."""
    built: list[Path] = []
    real = onnx_encoder.build_export

    def spy(network: object, destination: Path) -> None:
        built.append(destination)
        real(network, destination)

    monkeypatch.setattr(onnx_encoder, "build_export", spy)
    return built


def model_card(model_dir: Path, clips: list[np.ndarray]) -> np.ndarray:
    """The embeddings as the model card computes them: one clip per call, fp32."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

    features = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioXVector.from_pretrained(model_dir).eval()
    out = []
    for clip in clips:
        inputs = features(clip, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            vector = model(**inputs).embeddings
        out.append(torch.nn.functional.normalize(vector, dim=-1)[0].numpy())
    return np.stack(out)


def clips_of(lengths: tuple[float, ...]) -> list[np.ndarray]:
    return [voice(100 + 37 * i, s, seed=i) for i, s in enumerate(lengths)]


def centred_cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosines after subtracting the reference set's mean: what random weights leave."""
    a, b = vectors - reference.mean(axis=0), reference - reference.mean(axis=0)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_reproduces_the_model_card_at_every_length(
    tiny_model_dir: Path, builds: list[Path]
) -> None:
    encoder = load_encoder(str(tiny_model_dir))
    assert isinstance(encoder, OnnxXVectorEncoder)  # the default backend
    assert len(builds) == 1 and builds[0].is_file()
    clips = clips_of(LENGTHS)
    reference = model_card(tiny_model_dir, clips)
    got = encoder.encode(clips)
    assert got.dtype == np.float32 and got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=2e-6)
    assert np.sum(got * reference, axis=1).min() >= 0.99999
    assert centred_cosines(got, reference).min() >= 0.99999
    # The same identity as the torch backend's: a database accepts either.
    assert encoder.info == load_encoder(str(tiny_model_dir), backend="torch").info


def test_export_is_built_once_and_reused(tiny_model_dir: Path, builds: list[Path]) -> None:
    first = load_encoder(str(tiny_model_dir), backend="onnx")
    again = load_encoder(str(tiny_model_dir), backend="onnx")
    assert len(builds) == 1
    assert not [p for p in builds[0].parent.iterdir() if "partial" in p.name]  # no leftovers
    clip = [voice(150, 1.5)]
    np.testing.assert_array_equal(first.encode(clip), again.encode(clip))


def test_changed_weights_get_a_new_export(
    tiny_model_dir: Path, tmp_path: Path, builds: list[Path]
) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForAudioXVector

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    before = load_encoder(str(model_dir))
    torch.manual_seed(7)
    retrained = AutoModelForAudioXVector.from_config(AutoConfig.from_pretrained(model_dir))
    retrained.save_pretrained(model_dir)  # same size, same folder, other weights
    after = load_encoder(str(model_dir))
    assert before.info.revision != after.info.revision
    assert len(builds) == 2 and builds[0] != builds[1]
    clip = voice(150, 1.5)
    np.testing.assert_allclose(after.encode([clip]), model_card(model_dir, [clip]), atol=2e-6)


@pytest.mark.parametrize("damaged", ["export", "prepared model", "prepared weights"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_rebuilt(
    tiny_model_dir: Path,
    builds: list[Path],
    caplog: pytest.LogCaptureFixture,
    damaged: str,
    damage: str,
) -> None:
    load_encoder(str(tiny_model_dir))
    export = builds[0]
    prepared = next(export.parent.glob(f"{export.stem}-prepared-*"))
    if damaged == "export":
        shutil.rmtree(prepared)  # as a new ONNX Runtime version or another CPU finds it
    path = {"export": export, "prepared model": prepared / "model.onnx"}.get(
        damaged, prepared / "weights.bin"
    )
    data = path.read_bytes()
    path.write_bytes(b"not a model" * 50 if damage == "garbage" else data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        encoder = load_encoder(str(tiny_model_dir))
    assert isinstance(encoder, OnnxXVectorEncoder)
    if damaged == "export":
        assert "rebuilding" in caplog.text and len(builds) == 2
    else:  # made again from the plain export, without torch
        assert "making it again" in caplog.text and len(builds) == 1
    assert path.read_bytes() == data or damaged == "prepared weights"
    clip = voice(200, 2.0)
    expected = model_card(tiny_model_dir, [clip])
    np.testing.assert_allclose(encoder.encode([clip]), expected, atol=2e-6)


def test_export_failure_falls_back_to_torch_or_is_an_error(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(network: object, destination: Path) -> None:
        raise ExportError("torch.onnx could not export it (simulated)")

    monkeypatch.setattr(onnx_encoder, "build_export", fail)
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        encoder = load_encoder(str(tiny_model_dir))
    assert isinstance(encoder, HFXVectorEncoder)
    assert "running" in caplog.text and "simulated" in caplog.text
    with pytest.raises(ModelError, match="simulated"):
        load_encoder(str(tiny_model_dir), backend="onnx")


def test_a_failed_export_is_not_retried_on_every_query(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    import speakerdb.encoders._onnx_export as onnx_export

    attempts: list[Path] = []

    def fail(module: object, target: Path, example: object, dynamic_axis: int) -> None:
        attempts.append(target)
        raise ExportError("torch.onnx could not export it (simulated)")

    with monkeypatch.context() as patched:
        patched.setattr(onnx_export, "_export", fail)
        assert isinstance(load_encoder(str(tiny_model_dir)), HFXVectorEncoder)
        assert isinstance(load_encoder(str(tiny_model_dir)), HFXVectorEncoder)
        assert len(attempts) == 1  # the second load knew, and went to torch at once
        again = r"as before; delete .*failed to try exporting again"
        with pytest.raises(ModelError, match=again):
            load_encoder(str(tiny_model_dir), backend="onnx")
    for marker in (cache / "onnx").glob("*.failed"):
        marker.unlink()
    assert isinstance(load_encoder(str(tiny_model_dir)), OnnxXVectorEncoder)


def test_a_prepared_model_that_cannot_be_saved_keeps_the_export(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    import speakerdb.encoders._ort_session as ort_session

    real = ort_session.open_session

    def disk_full(path: Path, threads: int | None = None, *, save_to: Path | None = None):  # type: ignore[no-untyped-def]
        if save_to is not None:
            raise ExportError("Fail: No space left on device (simulated)")
        return real(path, threads)

    clip = voice(140, 2.0)
    reference = load_encoder(str(tiny_model_dir), backend="torch").encode([clip])
    monkeypatch.setattr(ort_session, "open_session", disk_full)
    for _ in range(2):
        encoder = load_encoder(str(tiny_model_dir), backend="onnx")
        np.testing.assert_allclose(encoder.encode([clip]), reference, atol=1e-5)
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1  # built once, never deleted


def test_missing_onnxruntime(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert isinstance(load_encoder(str(tiny_model_dir)), HFXVectorEncoder)
    with pytest.raises(ModelError, match="pip install onnxruntime"):
        load_encoder(str(tiny_model_dir), backend="onnx")


def test_speakerdb_takes_a_backend(tiny_model_dir: Path, tmp_path: Path) -> None:
    clip = (voice(140, 2.0), SAMPLE_RATE)
    with SpeakerDB(tmp_path / "a.db", model=str(tiny_model_dir), backend="torch") as db:
        assert isinstance(db.encoder(), HFXVectorEncoder)
        db.enroll("alice", [clip])
    # Built with torch, queried with ONNX Runtime: the same encoder, the same scores.
    with SpeakerDB(tmp_path / "a.db") as db:
        assert isinstance(db.encoder(), OnnxXVectorEncoder)
        assert db.verify("alice", clip).score == pytest.approx(1.0, abs=1e-5)


def test_unknown_backend_names_the_choices(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakerdb import InputError

    monkeypatch.setenv("SPEAKERDB_BACKEND", "tensorrt")
    with pytest.raises(InputError, match=r"auto, onnx, torch, openvino-bf16, torch-bf16"):
        load_encoder(str(tiny_model_dir))


def test_cached_hub_model_has_the_same_identity_on_every_backend(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The Hugging Face cache layout, as huggingface_hub writes it.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--speakerdb-tests--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    options = {"cache_dir": str(tmp_path / "hub"), "local_files_only": True}
    infos = {
        backend: load_encoder("speakerdb-tests/tiny", backend=backend, **options).info
        for backend in ("torch", "onnx", "auto")
    }
    assert infos["onnx"] == infos["torch"] == infos["auto"]
    assert infos["onnx"].revision == commit


@pytest.mark.parametrize("do_normalize", [True, False])
def test_numpy_features_match_transformers(do_normalize: bool) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    settings = {"sampling_rate": SAMPLE_RATE, "do_normalize": do_normalize}
    reference = Wav2Vec2FeatureExtractor(feature_size=1, return_attention_mask=True, **settings)
    ours = WaveformFeatures.from_config(
        "m", {"feature_extractor_type": "Wav2Vec2FeatureExtractor", **settings}
    )
    rng = np.random.default_rng(3)
    for clip in (
        voice(120, 1.3),
        (0.2 * rng.standard_normal(16_001)).astype(np.float32),
        rng.standard_normal(8000),  # float64 in
        np.full(4000, 0.25, dtype=np.float32),  # constant: variance 0
    ):
        expected = reference(clip, sampling_rate=SAMPLE_RATE, return_tensors="np")
        np.testing.assert_array_equal(ours(clip), expected["input_values"])


def test_other_feature_extractors_are_left_to_torch(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "preprocessor_config.json").read_text())
    (model_dir / "preprocessor_config.json").write_text(
        json.dumps({**config, "feature_extractor_type": "SomeOtherFeatureExtractor"})
    )
    with pytest.raises(ModelError, match="SomeOtherFeatureExtractor"):
        load_encoder(str(model_dir), backend="onnx")


def cpu_has_bf16(backend: str) -> bool:
    """Whether ``backend``'s library finds bfloat16 instructions on this CPU."""
    if backend == "openvino-bf16":
        from speakerdb.encoders import bf16_available

        return bf16_available()
    from speakerdb.encoders import bf16_supported

    return bf16_supported()


@pytest.fixture
def openvino_bf16() -> None:
    """Skip where the fast path cannot really run: OpenVINO (the ``fast`` extra, which
    scripts/setup.sh installs) missing, or a CPU without bf16 instructions."""
    pytest.importorskip("openvino")
    from speakerdb.encoders import bf16_available

    if not bf16_available():
        pytest.skip("this CPU has no bf16 instructions: openvino-bf16 falls back to auto")


@pytest.mark.parametrize("backend", ["openvino-bf16", "torch-bf16"])
def test_bf16_fast_path_is_close_to_fp32(tiny_model_dir: Path, backend: str) -> None:
    if backend == "openvino-bf16":
        pytest.importorskip("openvino")
    clips = clips_of((1.2, 2.0, 2.5, 3.1, 1.7, 2.2, 4.0, 0.9))
    fp32 = load_encoder(str(tiny_model_dir), backend="torch").encode(clips)
    fast = load_encoder(str(tiny_model_dir), backend=backend)
    # Without bf16 instructions the fast path is not taken (and says so): fp32 it is.
    expected = HFXVectorEncoder if backend == "torch-bf16" else OnnxXVectorEncoder
    assert isinstance(fast, expected if cpu_has_bf16(backend) else OnnxXVectorEncoder)
    got = fast.encode(clips)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert centred_cosines(got, fp32).min() >= 0.99
    if cpu_has_bf16(backend):  # bfloat16 really ran: close, not equal
        assert np.abs(got - fp32).max() > 1e-5
    assert fast.info == load_encoder(str(tiny_model_dir), backend="torch").info


@pytest.mark.parametrize(
    ("backend", "check"),
    [
        ("openvino-bf16", "speakerdb.encoders._openvino.bf16_available"),
        ("torch-bf16", "speakerdb.encoders._hf.bf16_supported"),
    ],
)
def test_bf16_without_cpu_support_falls_back(
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    backend: str,
    check: str,
) -> None:
    monkeypatch.setattr(check, lambda: False)
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        encoder = load_encoder(str(tiny_model_dir), backend=backend)
    assert isinstance(encoder, OnnxXVectorEncoder)
    assert "no bf16 instructions" in caplog.text
    clip = [voice(150, 1.5)]
    np.testing.assert_allclose(encoder.encode(clip), model_card(tiny_model_dir, clip), atol=2e-6)


def test_openvino_missing_names_the_extra(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(ModelError, match=r"pip install 'speakerdb\[fast\]'"):
        load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    # GE2E has no bf16 path to take: it runs on ONNX Runtime and needs no OpenVINO.
    assert load_encoder("resemblyzer", backend="openvino-bf16").info.dim == 256


@pytest.mark.usefixtures("openvino_bf16")
def test_openvino_shares_the_cached_export_and_its_compiled_model(
    tiny_model_dir: Path, builds: list[Path], cache: Path
) -> None:
    load_encoder(str(tiny_model_dir))  # ONNX Runtime builds the export
    fast = load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    again = load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    assert len(builds) == 1  # one export for both runtimes
    blobs = list((cache / "openvino").iterdir())  # OpenVINO's compiled model, for fast loads
    assert blobs
    clip = [voice(150, 1.5)]
    np.testing.assert_array_equal(fast.encode(clip), again.encode(clip))
    for blob in blobs:  # a damaged compiled model is compiled again, not trusted
        data = blob.read_bytes()
        blob.chmod(0o600)
        blob.write_bytes(data[: len(data) // 2] + b"x" * 1000)
    damaged = load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    np.testing.assert_array_equal(damaged.encode(clip), fast.encode(clip))


@pytest.mark.usefixtures("openvino_bf16")
def test_openvino_rebuilds_a_damaged_export(
    tiny_model_dir: Path, builds: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    load_encoder(str(tiny_model_dir))
    builds[0].write_bytes(b"not a model" * 50)
    with caplog.at_level(logging.WARNING, logger="speakerdb"):
        fast = load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    assert "rebuilding" in caplog.text and len(builds) == 2
    clip = [voice(150, 1.5)]
    assert float(np.sum(fast.encode(clip) * model_card(tiny_model_dir, clip))) > 0.999


@pytest.mark.usefixtures("openvino_bf16")
def test_openvino_encoder_is_thread_safe(tiny_model_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    encoder = load_encoder(str(tiny_model_dir), backend="openvino-bf16")
    clips = clips_of((0.7, 1.3, 2.1, 0.9, 1.6, 2.4))
    alone = encoder.encode(clips)
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda clip: encoder.encode([clip])[0], clips * 4))
    np.testing.assert_array_equal(np.stack(together), np.concatenate([alone] * 4))


@pytest.mark.usefixtures("openvino_bf16")
def test_speakerdb_built_on_fp32_is_queried_on_openvino(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    clip = (voice(140, 2.0), SAMPLE_RATE)
    with SpeakerDB(tmp_path / "a.db", model=str(tiny_model_dir)) as db:
        db.enroll("alice", [clip])
    with SpeakerDB(tmp_path / "a.db", backend="openvino-bf16") as db:
        assert db.verify("alice", clip).score == pytest.approx(1.0, abs=0.01)


QUERY_HEAVY = {"torch", "transformers", "huggingface_hub"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "openvino-bf16"])
def test_cli_query_imports_neither_torch_nor_transformers(
    tiny_model_dir: Path, tmp_path: Path, cache: Path, backend: str
) -> None:
    clip = tmp_path / "alice.wav"
    sf.write(clip, voice(120, 2.0), SAMPLE_RATE)
    db = tmp_path / "speakers.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPEAKERDB_CACHE_DIR": str(cache)}
    env["SPEAKERDB_BACKEND"] = backend
    with SpeakerDB(db, model=str(tiny_model_dir)) as database:
        database.enroll("alice", [clip])  # builds and caches the export

    def heavy(*args: str) -> tuple[object, set[str]]:
        proc, code, loaded = run_probed(args, env=env)
        assert "accepted" in proc.stdout or "alice" in proc.stdout, proc.stderr
        return code, loaded & QUERY_HEAVY

    assert heavy("verify", "--db", str(db), "alice", str(clip)) == (0, set())
    assert heavy("identify", "--db", str(db), str(clip))[1] == set()


# -- the GE2E encoder on ONNX Runtime ---------------------------------------


def test_ge2e_onnx_matches_torch_and_is_cached(cache: Path) -> None:
    from speakerdb.encoders._ge2e import GE2EEncoder

    clips = [voice(120, 1.0), voice(210, 2.6, seed=1), voice(90, 9.0, seed=2)]
    reference = GE2EEncoder.load(backend="torch").encode(clips)
    fast = GE2EEncoder.load()  # auto: exports once
    exports = sorted((cache / "onnx").glob("ge2e-*.onnx"))
    assert len(exports) == 1
    np.testing.assert_allclose(fast.encode(clips), reference, atol=1e-5)
    assert fast.info == GE2EEncoder.load(backend="torch").info
    exports[0].write_bytes(b"corrupt")
    again = GE2EEncoder.load(backend="onnx")  # rebuilt
    np.testing.assert_allclose(again.encode(clips), reference, atol=1e-5)


@pytest.mark.slow
def test_cli_query_with_ge2e_imports_no_torch(tmp_path: Path, cache: Path) -> None:
    clip = tmp_path / "alice.wav"
    sf.write(clip, voice(120, 2.0), SAMPLE_RATE)
    db = tmp_path / "speakers.db"
    with SpeakerDB(db, model="resemblyzer") as database:
        database.enroll("alice", [clip])
    env = {**os.environ, "SPEAKERDB_CACHE_DIR": str(cache)}
    proc, code, loaded = run_probed(["verify", "--db", str(db), "alice", str(clip)], env=env)
    assert (code, loaded & QUERY_HEAVY) == (0, set()), proc.stderr
