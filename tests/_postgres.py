"""PostgreSQL servers for the tests: given by CI, or started here for the session.

``SPEAKERDB_TEST_POSTGRES_URL`` (plain PostgreSQL, no pgvector) and
``SPEAKERDB_TEST_PGVECTOR_URL`` (with pgvector) name servers that ``.ci/run``
started; without them, a throwaway cluster of each kind is started by
``scripts/pg_cluster.py`` in a temporary folder and stopped when the session
ends (or, should the run be killed, by a watchdog), so ``pytest`` alone works
too. A server that cannot be had skips its tests, unless
``SPEAKERDB_TEST_REQUIRE_POSTGRES=1`` (CI) makes that an error.
Each test gets a database of its own, created empty and dropped afterwards (in the
background; the session waits for every drop before it ends).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
        self._dropping: ThreadPoolExecutor | None = None
        self._drops: list[Future[None]] = []
        self._swept = False

    def database_url(self, name: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + name

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of the database ``template`` names; its URL.

        Its name holds this process's id: the first call sweeps the databases of test
        processes that ended without dropping theirs (killed), so they never pile up."""
        if not self._swept:
            self._swept = True
            self._sweep()
        name = f"t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
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

    def drop_later(self, url: str) -> None:
        """Drop the database in the background. A drop takes the server a second or
        two, mostly waiting (several at once take about half as long each), which the
        next test need not wait for; :meth:`finish` waits for every drop, and fails if
        any did."""
        if self._dropping is None:
            self._dropping = ThreadPoolExecutor(4, thread_name_prefix=f"drop-{self.kind}")
        self._drops.append(self._dropping.submit(self.drop_database, url))

    def _sweep(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        for name in names:
            parts = name.split("_")
            ours = len(parts) == 3 and parts[0] == "t" and parts[1].isdigit()
            if ours and not alive(int(parts[1])):
                self.drop_later(self.database_url(name))

    def finish(self) -> None:
        """Wait for the drops :meth:`drop_later` began; raise the first that failed."""
        if self._dropping is not None:
            self._dropping.shutdown(wait=True)
            self._dropping = None
        drops, self._drops = self._drops, []
        for drop in drops:
            drop.result()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def restart(self) -> None:
        """Restart the server (a cluster started here only)."""
        assert self.folder is not None, "only a cluster started by the tests can be restarted"
        pg_cluster().pg_ctl(self.folder, "restart", "-m", "fast")


def start_server(kind: str, *, own: bool = False) -> Server | str:
    """The server of ``kind``: CI's (unless ``own``), or a new cluster; or why there is none.

    A cluster started here is stopped and deleted when this process ends, even when it
    is killed (SIGKILL leaves no teardown or atexit to run): see :func:`watch`.
    """
    given = os.environ.get(ENV[kind])
    if given and not own:
        return Server(kind, given, None)
    folder = Path(tempfile.mkdtemp(prefix=f"speakerdb-pg-{kind}-"))
    watch(folder)
    try:
        url = pg_cluster().start(kind, folder)
    except (SystemExit, OSError) as exc:
        pg_cluster().stop(folder)
        return f"no PostgreSQL ({kind}) here: {exc}"
    return Server(kind, url, folder)


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


#: The write ends of the watchdogs' pipes, open as long as this process lives.
_WATCHED: list[int] = []


def watch(folder: Path) -> None:
    """Start a watchdog (``pg_cluster.py watch``, in a session of its own, so that a ^C
    to the test run does not end it first) that stops the cluster in ``folder`` once a
    pipe only this process holds reads end-of-file, that is once this process has
    ended, however it ended. A normal teardown stops the cluster first; the watchdog
    then finds nothing to do. It touches that folder's cluster only."""
    read, write = os.pipe()  # neither end is inherited by the test's own subprocesses
    try:
        subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "pg_cluster.py"), "watch", str(read), folder],
            pass_fds=(read,),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(read)
    _WATCHED.append(write)


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
        try:
            started.finish()
        finally:
            stop_server(started)


def database_fixture(server: Server) -> Iterator[str]:
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_later(url)
