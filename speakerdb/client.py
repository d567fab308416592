"""A Python client of ``speakerdb serve``, with :class:`~speakerdb.SpeakerDB`'s method names.

::

    from speakerdb.client import Client

    door = Client("https://speakerdb.example.lan:8443", key="sdb_...")
    answer = door.verify("alice", "door.wav")       # the service's JSON document
    if answer["outcome"] == "accepted":
        ...

Results are the service's JSON documents (dicts, as the CLI's ``--json`` writes them);
errors are raised as the library's own classes (:class:`~speakerdb.SpeakerNotFound`,
:class:`~speakerdb.Unauthorized`, ...) from the error document's ``type``, so that a
caller handles them as it would in process, fix included: ``exc.fix`` (a
:class:`~speakerdb.errors.Fix`) and ``exc.fix_args`` are the library's, while the
message spells the fix as the service does (``send force=true ...``, which
``force=True`` here applies), not as a command or a call the caller cannot make::

    try:
        door.enroll("alice", ["a.wav"])
    except EnrollmentRefused as exc:
        if exc.fix is Fix.FORCE and operator_agrees(str(exc)):
            door.enroll("alice", ["a.wav"], force=True)

Only the standard library is used: a clip is a file path, the bytes of an audio file,
or a binary file object.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Union

from . import errors

__all__ = ["Client", "ClipSource"]

#: What the client sends as a clip: a path, an audio file's bytes, or a binary file object.
ClipSource = Union[str, os.PathLike, bytes, BinaryIO]


class Client:
    """The service at ``url`` (``http://127.0.0.1:8000``), asked with ``key``."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._timeout = timeout

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/v1/info")

    def speakers(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/speakers")

    def speaker(self, name: str) -> dict[str, Any]:
        """The speaker, as ``speakerdb show NAME --json``'s ``speaker``."""
        return self._call("GET", _speaker_path(name))["speaker"]

    def utterances(self, name: str) -> list[dict[str, Any]]:
        return self._call("GET", _speaker_path(name))["utterances"]

    def rename(self, old: str, new: str) -> dict[str, Any]:
        body = json.dumps({"name": new}).encode()
        return self._call("PATCH", _speaker_path(old), body, "application/json")

    def remove(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", _speaker_path(name))

    def enroll(
        self, name: str, clips: Sequence[ClipSource], *, force: bool = False
    ) -> dict[str, Any]:
        body, kind = _multipart([_read(clip) for clip in clips])
        query = "?force=true" if force else ""
        return self._call("POST", _speaker_path(name) + "/enrollments" + query, body, kind)

    def identify(
        self,
        clip: ClipSource,
        *,
        top_k: int = 5,
        threshold: float | None = None,
        score_norm: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        query = _query(top_k=top_k, threshold=threshold, score_norm=score_norm, group=group)
        return self._decide("/v1/identify" + query, clip)

    def verify(
        self,
        name: str,
        clip: ClipSource,
        *,
        threshold: float | None = None,
        score_norm: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        query = _query(threshold=threshold, score_norm=score_norm, group=group)
        return self._decide(_speaker_path(name) + "/verify" + query, clip)

    def _decide(self, path: str, clip: ClipSource) -> dict[str, Any]:
        # A retry of the same request (urllib does not retry; a caller may) gets the
        # first decision: one Idempotency-Key per call.
        data = _read(clip)[1]
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return self._call("POST", path, data, "application/octet-stream", headers)

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = {"Authorization": f"Bearer {self._key}", **(headers or {})}
        if content_type is not None:
            sent["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=body, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except urllib.error.URLError as exc:
            raise errors.ServiceError(
                f"{self.url}: cannot reach the service ({exc.reason})"
            ) from None


def _speaker_path(name: str) -> str:
    return "/v1/speakers/" + urllib.parse.quote(name, safe="")


def _query(**values: object) -> str:
    given = {k: v for k, v in values.items() if v is not None}
    return "?" + urllib.parse.urlencode(given) if given else ""


def _read(clip: ClipSource) -> tuple[str | None, bytes]:
    """The clip's file name (if any) and its bytes."""
    if isinstance(clip, (bytes, bytearray)):
        return None, bytes(clip)
    if isinstance(clip, (str, os.PathLike)):
        path = Path(clip)
        return path.name, path.read_bytes()
    return getattr(clip, "name", None), clip.read()


def _multipart(files: list[tuple[str | None, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        disposition = 'form-data; name="clips"'
        # Bytes go without a file name, as the library keeps none for them: the service
        # stores no source and calls the clip by its place ("form file 2 of 3").
        if name:
            disposition += '; filename="{}"'.format(Path(name).name.replace('"', ""))
        head = (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _error(status: int, body: bytes) -> errors.SpeakerDBError:
    """The library's error for an error answer (:func:`~speakerdb.errors.error_from_document`),
    or a :class:`~speakerdb.errors.ServiceError` when the answer is no error document (a
    proxy's page)."""
    try:
        return errors.error_from_document(json.loads(body))
    except (ValueError, KeyError, TypeError):
        return errors.ServiceError(f"HTTP {status}: {body[:200]!r}")
