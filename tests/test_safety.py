"""Safety: nothing untrusted is unpickled, files are private, output never drives a terminal."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import ROOT, FakeEncoder, new_database, voice

from speakerdb import ModelError, SpeakerDB

# The migrations are inside the package (speakerdb/storage/sql/migrations/).
SOURCES = sorted((ROOT / "speakerdb").rglob("*.py"))
# Modules whose only use is to load pickles (or worse).
UNSAFE_MODULES = {"cPickle", "_pickle", "cloudpickle", "dill", "joblib", "marshal", "shelve"}
# What may be used of `pickle` itself: its exception types, to catch a refused load.
PICKLE_NAMES = {"PickleError", "PicklingError", "UnpicklingError"}


# -- nothing is unpickled ------------------------------------------------------


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None if all(k.arg != name for k in call.keywords) else "<not a constant>"


def unsafe_uses(path: Path) -> list[str]:
    """Every way the file could unpickle data, as ``file:line: what``."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            modules += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                if module.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: imports {module}")
            if isinstance(node, ast.ImportFrom) and node.module == "pickle":
                found += [f"{where}: from pickle import {a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and _dotted(node.value) == "pickle":
            if node.attr not in PICKLE_NAMES:
                found.append(f"{where}: pickle.{node.attr}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
                found.append(f"{where}: {name} without weights_only=True")
            if name.endswith(("read_pickle", "load_pickle")):
                found.append(f"{where}: {name}")
            if _keyword(node, "allow_pickle") not in (None, False):
                found.append(f"{where}: {name}(allow_pickle=...)")
            if _keyword(node, "trust_remote_code") not in (None, False):
                found.append(f"{where}: {name}(trust_remote_code=...)")
    return found


def test_the_package_never_unpickles() -> None:
    assert len(SOURCES) > 10
    problems = [problem for path in SOURCES for problem in unsafe_uses(path)]
    assert not problems, "\n".join(problems)
    # Not vacuous: the one torch.load there is is seen, with weights_only=True.
    loads = [
        node
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and _dotted(node.func) == "torch.load"
    ]
    assert loads and all(_keyword(call, "weights_only") is True for call in loads)


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.loads(data)",
        "from pickle import loads",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
        "import joblib",
        "Model.from_pretrained(name, trust_remote_code=True)",
    ],
)
def test_the_scan_sees_unsafe_code(tmp_path: Path, source: str) -> None:
    path = ROOT / "speakerdb" / "__scan_probe__.py"
    try:
        path.write_text(source + "\n", encoding="utf-8")
        assert unsafe_uses(path)
    finally:
        path.unlink(missing_ok=True)


class _Trap:
    """Unpickling this runs code: it creates the file named by ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return Path.touch, (self.marker,)


def test_a_model_whose_weights_run_code_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A pickled weights file that would run code on load: refused, and the code never runs."""
    import torch

    from speakerdb.encoders import load_encoder

    folder = tmp_path / "trap-model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({"weight": _Trap(marker)}, folder / "pytorch_model.bin")
    assert pickle.loads(pickle.dumps(_Trap(marker))) is None and marker.exists()  # it is a trap
    marker.unlink()

    with pytest.raises(ModelError, match="never unpickles") as caught:
        load_encoder(str(folder))
    assert str(folder) in str(caught.value)
    assert not marker.exists()


# -- private files -------------------------------------------------------------


def test_every_file_of_a_database_is_private(tmp_path: Path) -> None:
    """Database, WAL, shared memory, index and lock files: readable by their owner only."""
    path = tmp_path / "speakers.db"
    old_umask = os.umask(0)  # even a permissive umask
    try:
        db = SpeakerDB(path, encoder=FakeEncoder())
        db.enroll("alice", [(voice(110, 1.5, 16000, 1), 16000)])
        db.enroll("bob", [(voice(1000, 1.5, 16000, 2), 16000)])
        db.identify((voice(110, 1.5, 16000, 3), 16000))
        db.remove("bob")
        db.index.rebuild()
        db.audit.configure(True)
        db.verify("alice", (voice(110, 1.5, 16000, 4), 16000))
        files = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        db.close()
    finally:
        os.umask(old_umask)
    assert {"speakers.db", "speakers.db-wal", "speakers.db-shm", "speakers.db.faiss"} <= set(files)
    loose = {name: oct(mode) for name, mode in files.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"


# -- output never drives the terminal ------------------------------------------

#: Terminal control that a file name can carry: ESC sequences (clear the screen,
#: set the window title), a BEL, the one-byte CSI of 8-bit terminals (U+009B), and
#: a raw 0x9b byte that is not UTF-8 at all.
HOSTILE_NAMES = [
    "\x1b[2J\x1b]0;owned\x07evil.wav",
    "csi\u009b31mred.wav",
    os.fsdecode(b"raw\x9b[5mbyte.wav"),
]
CONTROL_BYTES = [b"\x1b", b"\x07", b"\xc2\x9b", b"\x9b"]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKERDB_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    # The session's switches for synthetic voices (conftest._test_switches) stay.
    env.update(SPEAKERDB_REPLAY_WINDOW="0", SPEAKERDB_SPEECH_GATE="off")
    env.update(SPEAKERDB_REPLAY_CHECK="off")
    command = [sys.executable, "-m", "speakerdb", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=120)


def _assert_clean(output: bytes, context: object) -> None:
    assert b"Traceback" not in output and b"unexpected" not in output, (context, output)
    for byte in CONTROL_BYTES:
        assert byte not in output, (context, output)


def test_file_names_with_control_sequences_are_printed_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command that shows a clip's file name, text and JSON, on success and on error."""
    from typer.testing import CliRunner

    from speakerdb.cli import app

    monkeypatch.setattr("speakerdb.services._model.load_encoder", lambda model, **_: FakeEncoder())
    monkeypatch.chdir(tmp_path)
    with SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [(voice(110, 1.5, 16000, 1), 16000)])
    runner = CliRunner()
    for i, name in enumerate(HOSTILE_NAMES):
        sf.write(os.fsencode(tmp_path / name), voice(350, 1.5, 16000, 10 + i), 16000, "PCM_16")
        (tmp_path / f"bad-{name}").write_bytes(b"not audio at all" * 10)
        for args in (
            ["enroll", f"carol{i}", name],
            ["show", f"carol{i}"],
            ["show", f"carol{i}", "--json"],
            ["identify", name, f"bad-{name}"],
            ["identify", name, f"bad-{name}", "--json"],
            ["verify", "alice", name],
            ["verify", "alice", f"bad-{name}", "--json"],
            ["enroll", "dave", f"bad-{name}"],
            ["list", "--db", name],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code in (0, 1, 2), (args, result.output)
            _assert_clean(result.stdout_bytes + result.stderr_bytes, args)
        shown = json.loads(runner.invoke(app, ["show", f"carol{i}", "--json"]).stdout)
        # JSON gives the name back exactly; bytes that are not UTF-8 are stored as \\xNN.
        stored = os.fsencode(name).decode("utf-8", "backslashreplace")
        assert shown["utterances"][0]["source"] == stored
    text = runner.invoke(app, ["identify", f"bad-{HOSTILE_NAMES[0]}"]).stderr
    assert "bad-\\x1b[2J\\x1b]0;owned\\x07evil.wav" in text  # and the escapes say what it was


@pytest.mark.slow
def test_file_names_with_control_sequences_in_a_real_process(tmp_path: Path) -> None:
    """As a user runs it: stdout is strict UTF-8, where an undecodable name once broke output."""
    new_database(tmp_path / "speakers.db", encoder=FakeEncoder())
    for name in HOSTILE_NAMES:
        (tmp_path / name).write_bytes(b"not audio at all" * 10)
        for args in (["identify", name], ["identify", name, "--json"], ["list", "--db", name]):
            proc = _run(tmp_path, *args)
            assert proc.returncode == 2, proc.stderr
            _assert_clean(proc.stdout + proc.stderr, args)
            if "--json" in args:
                assert json.loads(proc.stdout)[0]["source"] == name


def test_json_escapes_what_json_would_leave_raw(capsys: pytest.CaptureFixture[str]) -> None:
    from speakerdb.cli._render import emit_json

    value = {"source": "a\u009bb\x7fc" + os.fsdecode(b"\x9b") + "\x1b"}
    emit_json(value)
    text = capsys.readouterr().out
    assert all(ch not in text for ch in "\u009b\x7f\x1b\udc9b")
    assert json.loads(text) == value
