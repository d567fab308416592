"""An installed, non-editable speakerdb creates and migrates databases.

Builds the wheel, installs it (without dependencies, which the test venv
already has) into a fresh folder, and runs it from a working directory outside
the source tree, so that the migrations must come from inside the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from speakerdb.storage.sql import KNOWN_REVISIONS, SCHEMA_HEAD

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(out)],
        check=True,
    )
    (wheel,) = out.glob("speakerdb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "speakerdb/storage/sql/migrations/env.py" in names
    for revision in KNOWN_REVISIONS:
        assert any(
            n.startswith(f"speakerdb/storage/sql/migrations/versions/{revision}") for n in names
        )
    target = out / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import speakerdb, sys; print(speakerdb.__file__, file=sys.stderr); " + (
        "from speakerdb.cli import run; sys.argv = ['speakerdb', *sys.argv[1:]]; run()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_installed_package_is_typed(installed: Path) -> None:
    """PEP 561: without py.typed, an application's mypy treats speakerdb as untyped."""
    assert (installed / "speakerdb" / "py.typed").is_file()


def test_installed_package_creates_a_database(installed: Path, tmp_path: Path) -> None:
    create = "from speakerdb import SpeakerDB; SpeakerDB('new.db').set_threshold(0.6)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    subprocess.run([sys.executable, "-c", create], cwd=tmp_path, env=env, check=True)
    result = run_installed(installed, tmp_path, "info", "--json", "--db", "new.db")
    assert result.returncode == 0, result.stderr
    assert str(installed) in result.stderr.splitlines()[0]  # the wheel, not the source tree
    info = json.loads(result.stdout)
    assert info["schema_revision"] == SCHEMA_HEAD
    assert (tmp_path / "new.db").stat().st_mode & 0o077 == 0


def test_installed_package_migrates_a_frozen_database(installed: Path, tmp_path: Path) -> None:
    frozen = ROOT / "tests" / "data" / "speakers-0001.db"
    if not frozen.exists():
        pytest.fail("tests/data/speakers-0001.db is missing")
    db = tmp_path / "old.db"
    shutil.copy(frozen, db)
    refused = run_installed(installed, tmp_path, "list", "--db", str(db))
    assert refused.returncode == 2 and "speakerdb db upgrade" in refused.stderr
    result = run_installed(installed, tmp_path, "db", "upgrade", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"from": "0001", "to": SCHEMA_HEAD}
    listed = run_installed(installed, tmp_path, "list", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout), "the frozen database's speakers survive"
