#!/usr/bin/env python3
"""Make sure the real-speech corpus of ../shared/data is built; print where it is.

The corpus (11 real voices from Debian packages, about 0.6 GB) goes to
$SPEAKERDB_CORPUS, by default ~/.cache/speakerdb-corpus. Building it the first
time installs Debian packages with apt-get and needs root. It is never committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SPEAKERDB_SHARED_DATA", ROOT.parent / "shared" / "data"))
CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))


def ensure_corpus() -> Path:
    """Build the corpus and its protocol unless they exist; return the corpus folder."""
    if (CORPUS / "protocol" / "test.csv").is_file():
        return CORPUS
    if not (SHARED_DATA / "build_corpus.py").is_file():
        sys.exit(
            f"no corpus at {CORPUS} and no builder at {SHARED_DATA}; set SPEAKERDB_SHARED_DATA"
        )
    for script in ("build_corpus.py", "protocol.py"):
        print(f"running {SHARED_DATA / script}", file=sys.stderr)
        subprocess.run([sys.executable, str(SHARED_DATA / script)], check=True)
    return CORPUS


if __name__ == "__main__":
    print(ensure_corpus())
