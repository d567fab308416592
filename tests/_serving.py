"""A real `speakerdb serve` process on a loopback port, and plain clients for it:
http.client for HTTP (which can also send a body slowly) and websockets for the streams."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakerdb import SpeakerDB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_keys(db_path: Path) -> dict[str, str]:
    """An admin and a query key on the database at ``db_path`` (created if missing)."""
    with SpeakerDB(db_path) as db:
        return {scope: db.keys.create(f"{scope}-key", scope)[1] for scope in ("admin", "query")}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """``speakerdb serve --db DB ARGS`` on a free loopback port until :meth:`stop`."""

    def __init__(self, db_path: Path, *args: str, log: Path, model: str = "resemblyzer") -> None:
        self.db_path, self.args, self.log_path, self.model = db_path, args, log, model
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> Server:
        command = [sys.executable, "-m", "speakerdb", "serve", "--db", str(self.db_path)]
        command += ["--port", str(self.port), "--model", self.model, *self.args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/healthz").status == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def connection(self, timeout: float = 120.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if content_type is not None:
            sent["Content-Type"] = content_type
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def multipart(files: list[tuple[str | None, bytes]], field: str = "clips") -> tuple[bytes, str]:
    """A multipart/form-data body holding ``files`` (name, data) in ``field``; a file
    named ``None`` is sent without a file name (as curl's ``-F clips=<a.wav``)."""
    boundary = "speakerdb-test-boundary-7f3a"
    parts = []
    for name, data in files:
        filename = "" if name is None else f'; filename="{name}"'
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"{filename}'
            "\r\nContent-Type: audio/wav\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def no_traceback(reply: Reply) -> None:
    assert b"Traceback" not in reply.body and b'File "' not in reply.body


def stop_quietly(server: Server) -> None:
    if server.proc is not None and server.proc.poll() is None:
        server.stop(signal.SIGKILL)
