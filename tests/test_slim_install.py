"""The slim install: the wheel with its base dependencies only, in a fresh venv without torch.

It builds the wheel, installs it with pip into a new venv (no system site-packages;
the base dependencies come from the package index), and runs ``speakerdb enroll``,
``identify`` and ``verify`` there on a model exported by this, the full,
environment; the answers must be the full environment's with the original model.
Needs the package index (PyPI); about 1-3 minutes, most of it pip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from conftest import voice

from speakerdb.encoders import export_model

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

MODELS = ["tiny"]
if importlib.util.find_spec("resemblyzer") is not None:
    MODELS.append("resemblyzer")


@pytest.fixture(scope="module")
def slim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv holding the wheel and its base dependencies."""
    out = tmp_path_factory.mktemp("slim")
    pip = ["-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [sys.executable, *pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", out],
        check=True,
    )
    (wheel,) = out.glob("speakerdb-*.whl")
    subprocess.run([sys.executable, "-m", "venv", out / "venv"], check=True)
    bin_dir = out / "venv" / "bin"
    install = [bin_dir / "python", *pip, "install", wheel]
    done = subprocess.run(install, env=_env(out), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Clips, and the exports the full environment made of each model in ``MODELS``."""
    home = tmp_path_factory.mktemp("home")
    for name, pitch, seed in (("a1", 120, 1), ("a2", 125, 2), ("b1", 210, 3), ("q", 123, 4)):
        sf.write(home / f"{name}.wav", voice(pitch, 2.0, seed=seed), 16000)
    for model in MODELS:
        original = str(tiny_model_dir) if model == "tiny" else model
        export_model(original, home / f"{model}-export")
    return home


def _env(home: Path, source: bool = False) -> dict[str, str]:
    """The environment of a command: its own cache, no network, and the source tree
    only for this (the full) environment's commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPEAKERDB_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(SPEAKERDB_CACHE_DIR=str(home / "cache"), HF_HUB_OFFLINE="1")
    # The session's switches for synthetic voices (conftest._test_switches) are kept.
    env.update(
        SPEAKERDB_REPLAY_WINDOW="0", SPEAKERDB_REPLAY_CHECK="off", SPEAKERDB_SPEECH_GATE="off"
    )
    return {**env, "PYTHONPATH": str(ROOT)} if source else env


def run(command: list[Any], home: Path, *args: Any) -> subprocess.CompletedProcess[str]:
    env = _env(home, source=command[0] == sys.executable)
    return subprocess.run(
        [*command, *map(str, args)], cwd=home, env=env, capture_output=True, text=True
    )


def rounded(value: Any) -> Any:
    """``value`` with floats to 5 decimals: the slim venv may have another ONNX Runtime."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def answers(command: list[Any], home: Path, db: str, model: str) -> list[Any]:
    """enroll, identify and verify's JSON documents (or exit codes) with ``--model model``."""
    steps = [
        ("enroll", "alice", "a1.wav", "a2.wav"),
        ("enroll", "bob", "b1.wav"),
        ("identify", "q.wav", "--top-k", "2"),
        ("verify", "alice", "q.wav"),
    ]
    out = []
    for step in steps:
        result = run(command, home, *step, "--db", db, "--model", model, "--json")
        assert result.returncode in (0, 1), result.stderr
        doc = json.loads(result.stdout)
        if step[0] == "enroll":
            doc = {"speaker": doc["speaker"]["name"], "added": len(doc["added"])}
        out.append((result.returncode, rounded(doc)))
    return out


def test_slim_venv_has_no_torch(slim: Path, home: Path) -> None:
    for module in ("torch", "transformers", "onnx"):
        result = run([slim / "python"], home, "-c", f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module
    help_text = run([slim / "speakerdb"], home, "model", "export", "--help")
    assert help_text.returncode == 0 and "portable ONNX export" in " ".join(
        help_text.stdout.split()
    )


def test_slim_model_without_export_names_the_fix(
    slim: Path, home: Path, tiny_model_dir: Path
) -> None:
    args = ("enroll", "x", "q.wav", "--db", "refused.db", "--model", tiny_model_dir)
    result = run([slim / "speakerdb"], home, *args)
    assert result.returncode == 2, result.stderr
    assert "pip install 'speakerdb[export]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "refused.db").exists()


@pytest.mark.skipif("resemblyzer" not in MODELS, reason="needs resemblyzer's weights to export")
def test_slim_ge2e_without_its_weights_names_the_export_folder(slim: Path, home: Path) -> None:
    # The README's slim route: GE2E from an export folder. A database made with one
    # records `resemblyzer`, so a later command without --model asks for the weights.
    slim_cli = [slim / "speakerdb"]
    first = run(slim_cli, home, "enroll", "x", "a1.wav", "--db", "g.db", "--model", "resemblyzer")
    assert not (home / "g.db").exists()
    export = ("--model", "resemblyzer-export")
    assert run(slim_cli, home, "enroll", "x", "a1.wav", "--db", "g.db", *export).returncode == 0
    later = run(slim_cli, home, "enroll", "y", "b1.wav", "--db", "g.db")
    for result in (first, later):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        message = " ".join(result.stderr.split())
        assert "`speakerdb model export resemblyzer OUT`" in message, message
        assert "SPEAKERDB_MODEL=OUT" in message and "pip install --no-deps resemblyzer" in message


@pytest.mark.parametrize("model", MODELS)
def test_slim_answers_as_the_full_install(
    slim: Path, home: Path, tiny_model_dir: Path, model: str
) -> None:
    full = [sys.executable, "-c", "from speakerdb.cli import run; run()"]
    original = str(tiny_model_dir) if model == "tiny" else model
    expected = answers(full, home, f"full-{model}.db", original)
    got = answers([slim / "speakerdb"], home, f"slim-{model}.db", f"{model}-export")
    assert got == expected
    # The slim machine's database is the original model's: the full install accepts it.
    again = run(full, home, "verify", "alice", "q.wav", "--db", f"slim-{model}.db", "--json")
    assert again.returncode == expected[3][0], again.stderr
