"""scripts/setup.sh: one line per step, pip's output in a log, and quiet and quick when
run again. The venv's python is a stub that records what it is asked to run."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUB = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls"
case "$*" in
  *fail-here*) echo "pip: something went wrong"; exit 3 ;;
  -c*) echo 2.13.0 ;;
  *) echo "pip chatter: Collecting, Downloading, Successfully installed" ;;
esac
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with setup.sh and pyproject.toml, and a .venv whose python is the stub."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB)
    python.chmod(0o755)
    return tmp_path


def setup(checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def calls(checkout: Path) -> list[str]:
    path = checkout / ".venv" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_first_run_shows_one_line_per_step_and_logs_pip(checkout: Path) -> None:
    result = setup(checkout)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("setup: ") for line in lines)
    assert len(lines) == 4 and "torch 2.13.0" in lines[-1]
    assert "chatter" not in result.stdout + result.stderr
    assert "chatter" in (checkout / ".venv" / "setup.log").read_text()
    installs = [c for c in calls(checkout) if "install" in c]
    assert any(".[export,resemblyzer,fast,plot,server,dev,eval]" in c for c in installs)
    assert any("torch==2.13.0" in c for c in installs)


def test_second_run_is_quiet_and_quick_until_something_changes(checkout: Path) -> None:
    assert setup(checkout).returncode == 0
    before = len(calls(checkout))
    start = time.perf_counter()
    again = setup(checkout)
    assert time.perf_counter() - start < 2.0  # 0.02-0.05 s here
    assert again.returncode == 0 and again.stdout.count("\n") == 1 and not again.stderr
    assert "up to date" in again.stdout
    assert len(calls(checkout)) == before  # pip was not run
    with (checkout / "pyproject.toml").open("a") as fh:
        fh.write("\n# a new dependency\n")
    assert "installing" in setup(checkout).stdout
    assert len(calls(checkout)) > before
    assert "installing" in setup(checkout, SETUP_FORCE="1").stdout


def test_a_failed_step_shows_the_log_and_installs_again_next_time(checkout: Path) -> None:
    failed = setup(checkout, TORCH_SPEC="fail-here")
    assert failed.returncode == 1
    assert "something went wrong" in failed.stderr and "failed: installing" in failed.stderr
    assert "installing" in setup(checkout, TORCH_SPEC="fail-here").stdout  # no stamp was left


def test_the_readme_names_every_extra_it_installs() -> None:
    # The README's Set up listed five of the seven extras setup.sh installs.
    script = (ROOT / "scripts" / "setup.sh").read_text()
    extras = re.search(r'pip_install -e "\.\[([a-z,]+)\]"', script)
    assert extras, "setup.sh no longer installs .[extras] in one line"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    set_up = " ".join(readme.split("\n## Set up\n", 1)[1].split("\n### ", 1)[0].split())
    missing = [e for e in extras.group(1).split(",") if f"`{e}`" not in set_up]
    assert not missing, f"README's Set up does not name the extras {missing}"
