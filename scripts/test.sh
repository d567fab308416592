#!/usr/bin/env bash
# The checks CI runs: install, build the real-speech corpus if needed, lint, type-check, test
# (the whole suite on SQLite, then the CLI and API suites on each PostgreSQL backend).
# Extra arguments go to each pytest run, e.g. scripts/test.sh -k cli -x
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

# One suite, every backend: the CLI and API suites again on PostgreSQL without pgvector
# (the FAISS cache) and with it (HNSW); the storage contract suite runs on every backend
# above. The servers are CI's (.ci/run), or throwaway clusters started by the tests.
for backend in postgres pgvector; do
  began=$(date +%s)
  SPEAKERDB_TEST_BACKEND=$backend python -m pytest \
    tests/test_cli.py tests/test_cli_polish.py tests/test_api.py "$@"
  echo "test.sh: the CLI and API suites on $backend took $(( $(date +%s) - began )) s"
done
