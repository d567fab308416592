"""How ``scripts/eval_replay.py`` looks a fold up (evaluation only): a :data:`Setup` is a
database and the index rows read per query key, and these are the setups of each kind of
run, with the share of stored clips each database's lookup scores."""

from __future__ import annotations

from _replay_lookup import SCORED_SHARE

from speakerdb.services._replay import ROWS_PER_KEY

#: How a fold is looked up: in which database (:data:`OWN`, its own stored clips only;
#: :data:`SCALE`, with the distractors too; :data:`CLEAN`, with the distractors that share
#: no recorded audio with a genuine clip); and how many index rows per query key are read
#: (None: every row, the old lookup).
Setup = tuple[str, int | None]
OWN, SCALE, CLEAN = "own", "scale", "clean"
#: The fold's own stored clips and a crowd of other people's (``--crowd other``:
#: :mod:`_replay_crowd`).
OTHER = "other voices"
#: The clean database looked up as before the scored candidates grew with the stored
#: clips (the ten best-voted scored), in the same run.
PREVIOUS = "clean, 10 scored"
#: The share of the stored clips scored exactly, by database (the shipped one else), and
#: the database each other way of looking up looks in (``--also-share`` adds one).
SHARES = {PREVIOUS: 0.0}
LOOKS_IN = {PREVIOUS: CLEAN}


def share_of(db: str) -> float:
    return SHARES.get(db, SCORED_SHARE)


def also_share(share: float) -> Setup:
    """The setup that looks up the clean database scoring ``share`` of the stored clips."""
    name = f"clean, {100 * share:g}% scored"
    SHARES[name], LOOKS_IN[name] = share, CLEAN
    return name, ROWS_PER_KEY


#: The rows per key the choice rule picks from (speakerdb.services._replay.ROWS_PER_KEY).
ROWS_CHOICES = (4, 8, 16, 32)
SETUPS: list[Setup] = [
    (db, r) for db in (OWN, SCALE) for r in dict.fromkeys((None, *ROWS_CHOICES, ROWS_PER_KEY))
] + [(CLEAN, r) for r in dict.fromkeys((ROWS_PER_KEY, None))]


#: The setups of ``--at-scale``: the shipped lookup in each database.
AT_SCALE: list[Setup] = [
    (OWN, ROWS_PER_KEY),
    (SCALE, ROWS_PER_KEY),
    (CLEAN, ROWS_PER_KEY),
    (PREVIOUS, ROWS_PER_KEY),
]


#: The setups of ``--crowd other``: the shipped lookup in the fold's own database, in the
#: clean same-voice one and in the other-voice one.
CROWD_SETUPS: list[Setup] = [(OWN, ROWS_PER_KEY), (CLEAN, ROWS_PER_KEY), (OTHER, ROWS_PER_KEY)]


#: The suspect-aware check (``--suspect``, :mod:`_replay_suspect`), by database name: the
#: database it looks in.
SUSPECT = {"own, suspect-aware": OWN, "other voices, suspect-aware": OTHER}
SUSPECT_SETUPS: list[Setup] = [(db, ROWS_PER_KEY) for db in SUSPECT]
