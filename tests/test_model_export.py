"""``speakerdb model export``: a portable ONNX export that loads as the original model.

The x-vector path uses the tiny random model of ``conftest.tiny_model_dir``; GE2E
tests skip when resemblyzer's weights are not installed. What a slim install
(no torch) does is tested here by hiding torch from ``find_spec``, and for real
in ``tests/test_slim_install.py``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import voice
from typer.testing import CliRunner

from speakerdb import SpeakerDB
from speakerdb.cli import app
from speakerdb.encoders import export_model, load_encoder
from speakerdb.errors import ModelError, ModelMismatch

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None,
    reason="resemblyzer weights not installed: pip install --no-deps resemblyzer",
)
CLIPS = [voice(120, seed=1), voice(125, 2.5, seed=2), voice(210, 1.3, seed=3)]
PAIRS = [(clip, 16000) for clip in CLIPS]  # as the database takes in-memory audio


@pytest.fixture(autouse=True)
def cache(fresh_cache: Path) -> Path:
    """Every test here runs on a fresh cache (conftest.fresh_cache)."""
    return fresh_cache


@pytest.fixture
def exported(tiny_model_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "tiny-export"
    export_model(str(tiny_model_dir), out)
    return out


def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a slim install: torch and transformers cannot be found."""
    find_spec = importlib.util.find_spec

    def hiding(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in ("torch", "transformers") else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", hiding)


def test_export_is_the_original_model(tiny_model_dir: Path, exported: Path) -> None:
    original = load_encoder(str(tiny_model_dir))
    export = load_encoder(str(exported))
    assert export.info == original.info
    assert export.info.model == str(tiny_model_dir.resolve())
    np.testing.assert_allclose(export.encode(CLIPS), original.encode(CLIPS), atol=1e-6)


def test_export_holds_the_portable_model_and_its_identity(exported: Path) -> None:
    names = sorted(p.name for p in exported.iterdir())
    assert names == [
        "model.onnx",
        "model.onnx.seal",
        "speakerdb-export.json",
        "speakerdb-export.json.seal",
    ]
    manifest = json.loads((exported / "speakerdb-export.json").read_text())
    assert manifest["dim"] == 24 and manifest["sample_rate"] == 16000
    assert manifest["preprocessor"]["feature_extractor_type"] == "Wav2Vec2FeatureExtractor"
    # Not the CPU-specific prepared form: a plain graph with its weights inside.
    assert (exported / "model.onnx").stat().st_size > 100_000


def test_export_loads_without_torch_once_copied_elsewhere(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = load_encoder(str(exported)).encode(CLIPS)
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(exported, copy)  # new inodes and times: the seals are checked by digest
    monkeypatch.setenv("SPEAKERDB_CACHE_DIR", str(tmp_path / "other-cache"))
    without_torch(monkeypatch)
    np.testing.assert_array_equal(load_encoder(str(copy)).encode(CLIPS), expected)


def test_a_changed_export_is_refused(exported: Path) -> None:
    onnx = exported / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"SHA-256 mismatch.*export the model again"):
        load_encoder(str(exported))


def test_a_database_of_the_original_accepts_the_export_and_refuses_others(
    tiny_model_dir: Path, exported: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "speakers.db"
    with SpeakerDB(db_path, model=str(tiny_model_dir)) as db:
        db.enroll("alice", PAIRS[:2])
        expected = db.verify("alice", PAIRS[2]).score
    with SpeakerDB(db_path, model=str(exported)) as db:
        assert db.verify("alice", PAIRS[2]).score == pytest.approx(expected, abs=1e-6)
        db.enroll("bob", PAIRS[2:])  # recorded as the original model
    with SpeakerDB(db_path) as db:
        assert db.info().encoder is not None
        assert db.info().encoder.model == str(tiny_model_dir.resolve())
    with pytest.raises(ModelMismatch):
        SpeakerDB(db_path, model="resemblyzer")


@needs_weights
def test_ge2e_export(tmp_path: Path) -> None:
    out = tmp_path / "ge2e"
    info = export_model("resemblyzer", out)
    assert info.model == "resemblyzer" and info.dim == 256
    original = load_encoder("resemblyzer").encode(CLIPS)
    np.testing.assert_allclose(load_encoder(str(out)).encode(CLIPS), original, atol=1e-6)
    db_path = tmp_path / "ge2e.db"
    with SpeakerDB(db_path, model="resemblyzer") as db:
        db.enroll("alice", PAIRS[:2])
    with SpeakerDB(db_path, model=str(out)) as db:
        assert db.identify(PAIRS[2]).matches[0].speaker == "alice"
        assert db.policy().score_norm == "margin-duration"  # GE2E's defaults hold


def test_without_torch_a_model_not_exported_names_the_fix(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_torch(monkeypatch)
    for backend in ("auto", "onnx", "torch"):
        with pytest.raises(ModelError, match=r"pip install 'speakerdb\[export\]'.*model export"):
            load_encoder(str(tiny_model_dir), backend=backend)


@needs_weights
def test_without_torch_ge2e_not_exported_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    without_torch(monkeypatch)
    with pytest.raises(ModelError, match=r"speakerdb\[export\].*model export resemblyzer OUT"):
        load_encoder("resemblyzer")


def test_export_refuses_a_folder_in_use_and_an_export(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not an empty folder"):
        export_model("resemblyzer", exported)
    with pytest.raises(ModelError, match="an export already"):
        export_model(str(exported), tmp_path / "again")


def test_cli_model_export(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-export"
    args = ["model", "export", str(tiny_model_dir), str(out), "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["encoder"]["model"] == str(tiny_model_dir.resolve())
    again = CliRunner().invoke(app, args[:-1], catch_exceptions=False)
    assert again.exit_code == 2 and "not an empty folder" in again.output
