"""Request bodies: read in memory under a size cap and a time limit, and the clips in
them (one raw audio body, or multipart files in a field named ``clips``).

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

from ..errors import InputError, RequestTimeout, TooLarge

__all__ = ["Upload", "read_body", "uploads"]


@dataclass(frozen=True, slots=True)
class Upload:
    """One clip's encoded bytes and the file name it came with, if any."""

    data: bytes
    filename: str | None


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


def uploads(content_type: str, body: bytes) -> list[Upload]:
    """The clips of an enrollment: the files of a multipart body's ``clips`` field, or
    the body itself when it is raw audio."""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        return [Upload(body, None)]
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InputError("the multipart body could not be read; send the clips as form files")
    found = [
        Upload(_payload(part), part.get_filename())
        for part in message.iter_parts()
        if part.get_param("name", header="content-disposition") == "clips"
    ]
    if not found:
        raise InputError(
            "no clips in the form: send each clip as a file in a field named 'clips' "
            "(curl -F clips=@a.wav -F clips=@b.wav)"
        )
    return found


def _payload(part: email.message.Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""
