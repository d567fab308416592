#!/usr/bin/env bash
# The checks CI runs: install, build the real-speech corpus if needed, lint, type-check, test.
# Extra arguments go to pytest, e.g. scripts/test.sh -k cli -x
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

ruff check speakerdb tests scripts
ruff format --check speakerdb tests scripts
mypy
lint-imports
python scripts/corpus.py
python -m pytest "$@"
