"""Fast read-only answers for the commands that only look: stdlib ``sqlite3``, no ORM.

Opening a :class:`~speakerdb.SpeakerDB` imports SQLAlchemy's ORM and numpy,
which costs more than the rest of ``speakerdb list`` together. A
:class:`Reader` answers the same questions (:meth:`~Reader.speakers`,
:meth:`~Reader.speaker`, :meth:`~Reader.utterances`, :meth:`~Reader.info`,
:meth:`~Reader.threshold`) with plain SQL on a
read-only connection, and returns the same frozen results; a test checks that
the two always agree.

It handles only the common case: an existing speakerdb database at this
version's schema revision. For anything else (no such file, an older or newer
schema, another application's file, a database SQLite cannot open read-only)
:func:`open_reader` returns ``None`` and the caller opens a ``SpeakerDB``,
whose errors name the fix. Nothing here ever writes.

A database another program holds locked is waited for as long as every
connection waits (:data:`~speakerdb.storage.sqlite._connection.BUSY_TIMEOUT_MS`,
read at each use), then refused with :class:`~speakerdb.errors.DatabaseBusy`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..._metadata import attributes_from_json
from ..._names import clean_name
from ...config import DEFAULT_MODEL, ENV_MODEL, is_server_url
from ...types import DatabaseInfo, EncoderInfo, Speaker, Utterance
from .._describe import describe_database
from .._errors import no_such_speaker, sqlite_busy, sqlite_error
from ..sql._schema import SCHEMA_HEAD
from ._connection import busy_timeout_s

if TYPE_CHECKING:
    from ...decision._policy import PolicySources
    from .._protocol import StoreDescription

# The decision policy, the encoder registry and the index file's format are imported
# where ``info`` needs them: ``list`` and ``show`` start faster without them.

__all__ = ["Reader", "describe_file", "open_reader"]

log = logging.getLogger(__name__)

_SPEAKERS = """
    SELECT s.id, s.name, s.created_at, count(u.id), s.external_id, s.attributes, s.expires_at,
        s.watchlist, s.last_match_at, (SELECT group_concat(g.name, ' ') FROM group_members AS m
            JOIN groups AS g ON g.id = m.group_id WHERE m.speaker_id = s.id)
    FROM speakers AS s LEFT JOIN utterances AS u ON u.speaker_id = s.id
    {where} GROUP BY s.id
"""
_UTTERANCES = """
    SELECT id, source, audio_sha256, duration_s, created_at, spoken_margin_s
    FROM utterances WHERE speaker_id = ? ORDER BY id
"""

# As speakerdb.storage.sql._catalog.whole_clip_speakers.
_WHOLE_CLIP = "SELECT count(DISTINCT speaker_id) FROM utterances WHERE spoken_margin_s IS NULL"


class Reader:
    """Read-only queries on one database; each call reads one consistent snapshot."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    @property
    def model(self) -> str:
        """As :attr:`SpeakerDB.model`: ``SPEAKERDB_MODEL``, else the stored one, else default."""
        chosen = os.environ.get(ENV_MODEL)
        if chosen:
            from ...encoders._registry import normalize_model_name

            return normalize_model_name(chosen)
        stored = self._encoder()
        return stored.model if stored is not None else DEFAULT_MODEL

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def speakers(self) -> list[Speaker]:
        """All speakers, by name (as :meth:`SpeakerDB.speakers`)."""
        with self._snapshot():
            rows = self._db.execute(_SPEAKERS.format(where="") + " ORDER BY s.name").fetchall()
        return [_speaker(row) for row in rows]

    def speaker(self, name: str) -> Speaker:
        """Speaker ``name``; raise :class:`~speakerdb.errors.SpeakerNotFound` if none."""
        name = clean_name(name)
        with self._snapshot():
            return self._require(name)

    def utterances(self, name: str) -> list[Utterance]:
        """The enrolled clips of ``name``, oldest first (as :meth:`SpeakerDB.utterances`)."""
        name = clean_name(name)
        with self._snapshot():
            speaker = self._require(name)
            rows = self._db.execute(_UTTERANCES, (speaker.id,)).fetchall()
        return [
            Utterance(key, speaker.name, source, sha, float(duration), _utc(created), margin)
            for key, source, sha, duration, created, margin in rows
        ]

    def info(self) -> DatabaseInfo:
        """As :meth:`SpeakerDB.info`."""
        with self._snapshot():
            counts = self._db.execute(
                "SELECT (SELECT count(*) FROM speakers), (SELECT count(*) FROM utterances)"
            ).fetchone()
            sources = self._sources()
            encoder = self._encoder()
            where = describe_file(self.path, sources.stored.generation, sources.stored.index_digest)
            whole = self._db.execute(_WHOLE_CLIP).fetchone()[0]
            return describe_database(where, encoder, counts, sources, int(whole))

    def threshold(self) -> tuple[float, str]:
        """As :meth:`SpeakerDB.threshold`: the cosine threshold and where it came from."""
        with self._snapshot():
            return self._sources().cosine_threshold()

    def _sources(self) -> PolicySources:
        from ..._stored import StoredSettings
        from ...decision._policy import PolicySources

        # The model comes first: with no SPEAKERDB_MODEL it is read from the database.
        model = self.model
        raw = dict(self._db.execute("SELECT key, value FROM settings").fetchall())
        return PolicySources(model, StoredSettings.parse(raw))

    def _encoder(self) -> EncoderInfo | None:
        row = self._db.execute("SELECT model, revision, dim, sample_rate FROM encoder").fetchone()
        return None if row is None else EncoderInfo(row[0], row[1], int(row[2]), int(row[3]))

    def _require(self, name: str) -> Speaker:
        query = _SPEAKERS.format(where="WHERE s.name = ?")
        row = self._db.execute(query, (name,)).fetchone()
        if row is None:
            names = [r[0] for r in self._db.execute("SELECT name FROM speakers")]
            raise no_such_speaker(name, names)
        return _speaker(row)

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(self._db, self.path)


class _Snapshot:
    """One read transaction, so that several queries see the same moment; SQLite's
    errors become :class:`~speakerdb.errors.DatabaseError` naming the fix."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise sqlite_error(self._path, exc, busy_timeout_s()) from exc

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(self._path, exc, busy_timeout_s()) from exc


_BLANK = (
    "SELECT NOT EXISTS (SELECT 1 FROM settings) AND NOT EXISTS (SELECT 1 FROM speakers)"
    " AND NOT EXISTS (SELECT 1 FROM api_keys)"
)


def open_reader(path: Path | str) -> Reader | None:
    """A :class:`Reader` on the database file at ``path``, or ``None`` when a ``SpeakerDB``
    must open it instead (see the module's docstring): a PostgreSQL URL (a ``str``
    :func:`~speakerdb.config.is_server_url` accepts), a missing file, an older schema..."""
    if is_server_url(path):
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(
            f"file:{quote(os.fsencode(path.resolve()))}?mode=ro",
            uri=True,
            timeout=busy_timeout_s(),
            isolation_level=None,  # transactions are ours: see _Snapshot
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        log.debug("no read-only connection to %s (%s)", path, exc)
        return None
    try:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        (blank,) = db.execute(_BLANK).fetchone()
    except (sqlite3.Error, TypeError, ValueError) as exc:
        db.close()
        if isinstance(exc, sqlite3.Error) and sqlite_busy(exc):  # SpeakerDB would wait again
            raise sqlite_error(path, exc, busy_timeout_s()) from exc
        log.debug("%s: not read directly (%s)", path, exc)
        return None
    # A database whose first write never committed: SpeakerDB says so, with the fix.
    if revision != SCHEMA_HEAD or blank:
        db.close()
        return None
    return Reader(path, db)


def describe_file(path: Path, generation: int, digest: str | None) -> StoreDescription:
    """The database file at ``path`` and the state of its index file beside it, for a
    database at ``generation`` whose templates have ``digest``."""
    from .._indexfile import file_state, index_path_for
    from .._protocol import StoreDescription

    index = index_path_for(path)
    state = file_state(index, generation, digest)
    return StoreDescription(str(path.resolve()), str(index), state)


def _speaker(
    row: tuple[int, str, str, int, str | None, str | None, str | None, int, str | None, str | None],
) -> Speaker:
    # Group names hold no spaces (speakerdb._names.clean_group): one joins them.
    key, name, created, count, external_id, attributes, expires, watchlist, matched, groups = row
    return Speaker(
        id=int(key),
        name=name,
        n_utterances=int(count),
        created_at=_utc(created),
        external_id=external_id,
        attributes=attributes_from_json(attributes),
        expires_at=None if expires is None else _utc(expires),
        watchlist=bool(watchlist),
        last_match_at=None if matched is None else _utc(matched),
        groups=tuple(sorted(groups.split(" "))) if groups else (),
    )


def _utc(value: str) -> datetime:
    """A timestamp as SQLAlchemy stores it in SQLite (ISO text without a zone; all UTC)."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
