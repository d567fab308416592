"""PostgreSQL servers for the tests: given by CI, or started here for the session.

``SPEAKERDB_TEST_POSTGRES_URL`` (plain PostgreSQL, no pgvector) and
``SPEAKERDB_TEST_PGVECTOR_URL`` (with pgvector) name servers that ``.ci/run``
started; without them, a throwaway cluster of each kind is started by
``scripts/pg_cluster.py`` in a temporary folder and stopped when the session
ends, so ``pytest`` alone works too. A server that cannot be had skips its
tests, unless ``SPEAKERDB_TEST_REQUIRE_POSTGRES=1`` (CI) makes that an error.
Each test gets a database of its own, created empty and dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("plain", "pgvector")
ENV = {"plain": "SPEAKERDB_TEST_POSTGRES_URL", "pgvector": "SPEAKERDB_TEST_PGVECTOR_URL"}


def pg_cluster() -> ModuleType:
    """scripts/pg_cluster.py, as a module."""
    spec = importlib.util.spec_from_file_location("pg_cluster", ROOT / "scripts" / "pg_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """One PostgreSQL server: its admin URL, and the folder of a cluster started here."""

    def __init__(self, kind: str, url: str, folder: Path | None) -> None:
        self.kind = kind
        self.url = url
        self.folder = folder

    def database_url(self, name: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + name

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of the database ``template`` names; its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        if template is None:
            self._admin(f'CREATE DATABASE "{name}"')
            return self.database_url(name)
        source = template.rsplit("/", 1)[1]
        # A template must have no other sessions; a closed SpeakerDB leaves none, but
        # the server may not have noticed yet that its connections went away.
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{source}' AND pid <> pg_backend_pid()"
        )
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def restart(self) -> None:
        """Restart the server (a cluster started here only)."""
        assert self.folder is not None, "only a cluster started by the tests can be restarted"
        pg_cluster().pg_ctl(self.folder, "restart", "-m", "fast")


def start_server(kind: str, *, own: bool = False) -> Server | str:
    """The server of ``kind``: CI's (unless ``own``), or a new cluster; or why there is none."""
    given = os.environ.get(ENV[kind])
    if given and not own:
        return Server(kind, given, None)
    folder = Path(tempfile.mkdtemp(prefix=f"speakerdb-pg-{kind}-"))
    try:
        url = pg_cluster().start(kind, folder)
    except (SystemExit, OSError) as exc:
        pg_cluster().stop(folder)
        return f"no PostgreSQL ({kind}) here: {exc}"
    return Server(kind, url, folder)


def stop_server(server: Server) -> None:
    if server.folder is not None:
        pg_cluster().stop(server.folder)


def server_fixture(kind: str, request: pytest.FixtureRequest) -> Iterator[Server]:
    started = start_server(kind)
    if isinstance(started, str):
        if os.environ.get("SPEAKERDB_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(started)
        pytest.skip(started)
    try:
        yield started
    finally:
        stop_server(started)


def database_fixture(server: Server) -> Iterator[str]:
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)
