#!/usr/bin/env bash
# Create ./.venv and install speakerdb into it with every extra: CPU-only torch and the
# model export (`export`), the offline GE2E encoder (resemblyzer's weights), the bf16
# fast path (OpenVINO), DET plots, the HTTP service (`server`), the test tools and
# the segments evaluation's metrics (`eval`).
#
# Quiet: one line per step; pip's output goes to .venv/setup.log, shown when a step
# fails. Quick when run again: the install is skipped while .venv/.setup-stamp matches
# a hash of pyproject.toml, this script, TORCH_SPEC and the checkout's path (a fresh
# clone, as in CI, has no .venv and installs everything).
#
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0, a CPU build here).
#                Elsewhere, point pip at PyTorch's CPU wheel index with PIP_EXTRA_INDEX_URL so
#                that no multi-GB CUDA build is downloaded.
#   PYTHON       interpreter for the venv (default python3, 3.10 or newer)
#   SETUP_FORCE  set to 1 to run pip even when the stamp matches
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
LOG=.venv/setup.log
STAMP=.venv/.setup-stamp

wanted=$(cat pyproject.toml scripts/setup.sh <(echo "$TORCH_SPEC $(pwd)") | sha256sum | cut -c1-32)
if [ "${SETUP_FORCE:-0}" != 1 ] && [ -x .venv/bin/python ] && [ -f "$STAMP" ] \
  && [ "$(cat "$STAMP")" = "$wanted" ]; then
  echo "setup: .venv is up to date (SETUP_FORCE=1 to reinstall)"
  exit 0
fi

step() {  # step MESSAGE COMMAND...: one line of progress; the log when it fails
  local message=$1
  shift
  echo "setup: $message"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: failed: $message; the last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  echo "setup: created .venv with $("$PYTHON" --version 2>&1)"
fi
rm -f "$STAMP"
: >"$LOG"
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check "$@"; }

# torch first and pinned: an unpinned torch pulled in as a dependency can be a CUDA build.
step "installing $TORCH_SPEC" pip_install "$TORCH_SPEC"
step "installing speakerdb[export,resemblyzer,fast,plot,server,dev,eval] (editable)" \
  pip_install -e ".[export,resemblyzer,fast,plot,server,dev,eval]"
# resemblyzer ships the pretrained GE2E weights; its declared dependencies (librosa,
# webrtcvad) are not needed by speakerdb and webrtcvad no longer builds.
step "installing resemblyzer's GE2E weights" pip_install --no-deps "resemblyzer==0.1.4"
echo "$wanted" >"$STAMP"
torch=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')
echo "setup: speakerdb installed in $(pwd)/.venv (torch $torch; pip's log in $LOG)"
