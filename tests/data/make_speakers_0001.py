"""Recreate ``speakers-0001.db``: a tiny database frozen at schema revision 0001.

Run it only with a speakerdb whose head is 0001 (the release that introduced
that revision); later revisions must keep opening the committed file, not a new
one. ``tests/test_schema.py`` checks the contents listed in ``CONTENT``.

    python tests/data/make_speakers_0001.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _frozen import compact, remove  # noqa: E402
from conftest import FakeEncoder, voice_0001  # noqa: E402

from speakerdb import SpeakerDB  # noqa: E402
from speakerdb.storage.sql import SCHEMA_HEAD  # noqa: E402

TARGET = HERE / "speakers-0001.db"
#: speaker -> (pitch, seeds of the one-second clips enrolled for them)
CONTENT = {"alice": (110.0, (1, 2)), "bob": (170.0, (1,))}
THRESHOLD = 0.8


def main() -> None:
    assert SCHEMA_HEAD == "0001", "the frozen database must be made at revision 0001"
    remove(TARGET)
    with SpeakerDB(TARGET, encoder=FakeEncoder()) as db:
        for name, (pitch, seeds) in CONTENT.items():
            db.enroll(name, [(voice_0001(pitch, 1.0, 16000, seed), 16000) for seed in seeds])
        db.set_threshold(THRESHOLD)
    compact(TARGET)


if __name__ == "__main__":
    main()
