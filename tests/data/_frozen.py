"""What every ``make_speakers_NNNN.py`` does alike: start afresh, and leave one small file."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def remove(target: Path) -> None:
    """Delete ``target`` and its WAL files, so the database is made afresh."""
    for path in (target, *(target.with_name(target.name + s) for s in ("-wal", "-shm"))):
        path.unlink(missing_ok=True)


def compact(target: Path) -> None:
    """Rewrite ``target`` with the smallest pages and no free space, drop the derived
    index file and its lock beside it, and say how large it is."""
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA page_size = 512")
    conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    for derived in (".faiss", ".faiss.lock"):
        target.with_name(target.name + derived).unlink(missing_ok=True)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
