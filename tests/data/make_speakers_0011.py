"""Recreate ``speakers-0011.db``: a tiny database frozen at schema revision 0011.

It was made by the last speakerdb whose migrations lived in ``storage/sqlite/`` (main
at 77e2f4d, before ``storage/sql/`` was split out), so that the tests show a database
written before that move still opens, and later upgrades, with every table's rows
intact. Run it only with a speakerdb whose head is 0011; later revisions must keep
opening the committed file, not a new one. ``tests/test_schema.py`` checks the
contents listed here. It uses the public API only, so it runs on either layout:

    git archive 77e2f4d speakerdb | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/make_speakers_0011.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _frozen import compact, remove  # noqa: E402
from conftest import FakeEncoder, voice_0001  # noqa: E402

from speakerdb import SpeakerDB  # noqa: E402

TARGET = HERE / "speakers-0011.db"
#: speaker -> (pitch, seeds of the one-second clips enrolled for them)
CONTENT = {"alice": (110.0, (1, 2)), "bob": (170.0, (1,)), "carol": (260.0, (1,))}
THRESHOLD = 0.8
#: alice's metadata; carol is on the watchlist; dave enrolled, then opted out.
EXTERNAL_ID, ATTRIBUTES = "emp-1", {"team": "red"}
GROUP, MEMBERS = "door", ("alice", "bob")
KEY = "reception"


def main() -> None:
    # As the test session sets them (tests/conftest.py _test_switches): voice() clips are
    # harmonic tones, and alice's verify clip is one she enrolled.
    os.environ.update(
        SPEAKERDB_REPLAY_WINDOW="0", SPEAKERDB_REPLAY_CHECK="off", SPEAKERDB_SPEECH_GATE="off"
    )
    remove(TARGET)
    with SpeakerDB(TARGET, encoder=FakeEncoder()) as db:
        for name, (pitch, seeds) in {**CONTENT, "dave": (330.0, (1,))}.items():
            db.enroll(name, [(voice_0001(pitch, 1.0, 16000, seed), 16000) for seed in seeds])
        db.set_threshold(THRESHOLD)
        db.lifecycle.set_metadata("alice", external_id=EXTERNAL_ID, attributes=ATTRIBUTES)
        db.lifecycle.set_watchlist("carol")
        db.lifecycle.groups.add(GROUP, list(MEMBERS))
        db.keys.create(KEY, "query", group=GROUP)
        db.lifecycle.opt_out("dave")
        db.audit.configure(True)
        db.verify("alice", (voice_0001(110.0, 1.0, 16000, 1), 16000))
        revision = db.info().schema_revision
    assert revision == "0011", f"the frozen database must be made at revision 0011, not {revision}"
    compact(TARGET)


if __name__ == "__main__":
    main()
