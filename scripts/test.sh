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
# above. The servers are CI's (.ci/run), or throwaway clusters started by the tests. The
# two runs use different servers and go side by side (each mostly one core); each one's
# output is shown when it is done.
logs=$(mktemp -d /tmp/speakerdb-test-backends.XXXXXX)
began=$(date +%s)
pids=()
for backend in postgres pgvector; do
  SPEAKERDB_TEST_BACKEND=$backend python -m pytest \
    tests/test_cli.py tests/test_cli_polish.py tests/test_api.py "$@" >"$logs/$backend" 2>&1 &
  pids+=("$!")
done
failed=0
for i in 0 1; do
  backend=$([ "$i" = 0 ] && echo postgres || echo pgvector)
  wait "${pids[$i]}" || failed=1
  echo "== the CLI and API suites on $backend"
  cat "$logs/$backend"
done
rm -rf "$logs"
echo "test.sh: the CLI and API suites on both PostgreSQL backends took $(( $(date +%s) - began )) s"
exit "$failed"
