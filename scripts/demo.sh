#!/usr/bin/env bash
# Install, then enroll real voices and identify held-out clips (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python scripts/demo.py "$@"
