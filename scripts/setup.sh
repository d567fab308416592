#!/usr/bin/env bash
# Create ./.venv and install speakerdb into it: CPU-only torch, the offline GE2E encoder
# (resemblyzer's weights), the bf16 fast path (OpenVINO) and the test tools. Safe to run
# again; it only adds what is missing.
#
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0, a CPU build here).
#                Elsewhere, point pip at PyTorch's CPU wheel index with PIP_EXTRA_INDEX_URL so
#                that no multi-GB CUDA build is downloaded.
#   PYTHON       interpreter for the venv (default python3, 3.10 or newer)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

pip_install() { python -m pip install --quiet --disable-pip-version-check "$@"; }

# torch first and pinned: an unpinned torch pulled in as a dependency can be a CUDA build.
pip_install "$TORCH_SPEC"
pip_install -e ".[resemblyzer,fast,plot,dev]"
# resemblyzer ships the pretrained GE2E weights; its declared dependencies (librosa,
# webrtcvad) are not needed by speakerdb and webrtcvad no longer builds.
pip_install --no-deps "resemblyzer==0.1.4"
echo "speakerdb installed in $(pwd)/.venv ($(python -c 'import torch; print("torch", torch.__version__)'))"
