"""Request bodies: read in memory under a size cap and a time limit, and the clips in
them (one raw audio body, or multipart files in a field named ``clips``), each named
for messages as its client knows it (:attr:`Upload.called`).

Nothing is written to disk: the multipart body is split in memory (the standard
library's MIME parser), never spooled to temporary files.
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from ..errors import AudioError, InputError, RequestTimeout, TooLarge

__all__ = ["REQUEST_BODY", "Upload", "one_clip", "read_body", "uploads"]

#: What messages call a clip sent as the raw body: it has no file name.
REQUEST_BODY = "the request body"

#: How a client sends a clip as the raw body, for the messages that say so.
RAW_BODY = (
    "send the clip's bytes as the body (`Content-Type: audio/wav`; curl `--data-binary @clip.wav`)"
)


@dataclass(frozen=True, slots=True)
class Upload:
    """One clip's encoded bytes, the file name it came with (if any), and what messages
    call it: the file name, :data:`REQUEST_BODY`, or a form's file by its place ("form
    file 2 of 3"), so that no message calls a clip by the library's ``<bytes>`` or
    ``<array>``, and no two unnamed clips of a request alike."""

    data: bytes
    filename: str | None
    called: str


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body: :class:`TooLarge` past ``max_bytes`` (read no further),
    :class:`RequestTimeout` when it takes longer than ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    try:
        return await asyncio.wait_for(_read_capped(request, max_bytes), timeout_s)
    except asyncio.TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:.0f} s; send it faster, "
            "or in a smaller clip"
        ) from None
    except ClientDisconnect:
        raise InputError("the client went away before the body arrived") from None


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"the request body is over the service's cap of {max_bytes // 2**20} MiB; "
        "send a shorter clip"
    )


def one_clip(content_type: str, body: bytes) -> Upload:
    """The clip of a decision (identify, verify): the raw body. A form is refused with
    the way to send the clip instead, not read as audio that is "damaged"."""
    if _is_form(content_type):
        raise InputError(
            "this endpoint takes one clip as the raw request body, not a form: "
            f"{RAW_BODY}, not `-F`"
        )
    return _raw(body)


def uploads(content_type: str, body: bytes) -> list[Upload]:
    """The clips of an enrollment: the files of a multipart body's ``clips`` field, or
    the body itself when it is raw audio."""
    if not _is_form(content_type):
        return [_raw(body)]
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InputError("the multipart body could not be read; send the clips as form files")
    parts = [
        part
        for part in message.iter_parts()
        if part.get_param("name", header="content-disposition") == "clips"
    ]
    if not parts:
        raise InputError(
            "no clips in the form: send each clip as a file in a field named 'clips' "
            "(curl -F clips=@a.wav -F clips=@b.wav)"
        )
    return [_file(part, i, len(parts)) for i, part in enumerate(parts, 1)]


def _file(part: email.message.Message, place: int, count: int) -> Upload:
    filename = part.get_filename()
    return Upload(_payload(part), filename, filename or f"form file {place} of {count}")


def _is_form(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def _raw(body: bytes) -> Upload:
    if not body:
        raise AudioError(f"{REQUEST_BODY} is empty; {RAW_BODY}")
    return Upload(body, None, REQUEST_BODY)


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""
