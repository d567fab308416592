"""The backend the CLI and API suites run on: SQLite files, or PostgreSQL databases.

``SPEAKERDB_TEST_BACKEND`` is ``sqlite`` (the default), ``postgres`` (Debian's
PostgreSQL, searched by each process's FAISS cache) or ``pgvector`` (PostgreSQL with
pgvector's HNSW); ``scripts/test.sh`` runs tests/test_cli.py, test_cli_polish.py and
test_api.py once more on each server. A test names its database by a file path
through the ``store`` fixture (tests/conftest.py): on SQLite it gets that path back;
on a server, a new database for each distinct path, dropped when the test ends.

A test about the SQLite file itself (its path, permissions, bytes, the index file
beside it) carries ``@pytest.mark.file_store("why")``; on a server it is deselected,
and the run ends with the list of what was deselected and why.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from _postgres import Server

BACKENDS = ("sqlite", "postgres", "pgvector")
#: The PostgreSQL server (tests/_postgres.py) of each server backend.
SERVER_KIND = {"postgres": "plain", "pgvector": "pgvector"}


def backend() -> str:
    name = os.environ.get("SPEAKERDB_TEST_BACKEND") or "sqlite"
    if name not in BACKENDS:
        raise ValueError(f"SPEAKERDB_TEST_BACKEND must be one of {', '.join(BACKENDS)}: {name!r}")
    return name


BACKEND = backend()
ON_SERVER = BACKEND != "sqlite"

Location = Path | str


class Stores:
    """The databases of one test (or one module): a file path on SQLite, a new database
    on ``server`` for each distinct path otherwise, all dropped by :meth:`close`."""

    def __init__(self, server: Server | None) -> None:
        self.server = server
        self._made: dict[Path, str] = {}

    def __call__(self, path: str | os.PathLike[str]) -> Location:
        """The store a test names ``path`` (relative paths are taken from the working folder)."""
        key = Path(path).absolute()
        if self.server is None:
            return Path(path)
        if key not in self._made:
            self._made[key] = self.server.create_database()
        return self._made[key]

    def copy(self, source: Location, path: str | os.PathLike[str]) -> Location:
        """A copy of the database at ``source`` (with its index file), named ``path``."""
        if self.server is None:
            shutil.copyfile(source, path)
            index = Path(f"{source}.faiss")
            if index.exists():
                shutil.copyfile(index, f"{path}.faiss")
            return Path(path)
        url = self.server.create_database(template=str(source))
        self._made[Path(path).absolute()] = url
        return url

    def exists(self, location: Location) -> bool:
        """Whether ``location`` holds a speakerdb database (a file; a server's schema)."""
        if isinstance(location, Path):
            return location.exists()
        return "alembic_version" in tables(location)

    def dump(self, location: Location) -> dict[str, Any]:
        """Every row of every table (and the index file's bytes): equal means unchanged."""
        if isinstance(location, Path):
            return _dump_file(location)
        import psycopg

        state: dict[str, Any] = {}
        with psycopg.connect(location) as conn:
            for table in tables(location):
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # type: ignore[arg-type]
                state[table] = sorted((tuple(map(_plain, row)) for row in rows), key=repr)
        return state

    def close(self) -> None:
        assert self.server is not None or not self._made
        for url in self._made.values():
            self.server.drop_later(url)  # type: ignore[union-attr]
        self._made.clear()


def tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return sorted(row[0] for row in rows)


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def _dump_file(path: Path) -> dict[str, Any]:
    con = sqlite3.connect(path)
    try:
        names = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        state: dict[str, Any] = {
            name: sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in sorted(names)
        }
    finally:
        con.close()
    index = Path(f"{path}.faiss")
    state["<index file>"] = index.read_bytes() if index.exists() else None
    return state
