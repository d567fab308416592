"""A bounds-checked walk over the FAISS payload of an index file, before FAISS reads it.

FAISS trusts the sizes written in a file: one changed byte in a size field
makes ``read_index`` try to allocate gigabytes. :func:`walk` reads only the
fixed-size fields of the two layouts speakerdb writes (``IndexIDMap2`` over
``IndexFlatIP``, and ``IndexIVFFlat`` with inner product; FAISS 1.x), checks
that every size agrees with the header and with the bytes that are really
there, and says where the rows are, so that :func:`content_digest` can hash
them (:mod:`speakerdb.storage._digest`). Anything else is refused. Nothing here
imports numpy or FAISS.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from . import _digest

__all__ = ["MAX_DIM", "PayloadError", "Segment", "content_digest", "walk"]

#: Widest embedding an index file may hold.
MAX_DIM = 1 << 16
# FAISS's index header after the four-letter code: d, ntotal, two unused words,
# is_trained, metric type.
_HEADER = struct.Struct("<iqqqBi")
_SIZE = struct.Struct("<Q")
_METRIC_INNER_PRODUCT = 0
# Rows hashed per read.
_CHUNK_ROWS = 4096

#: Rows stored together: (offset of their vectors, offset of their ids, how many).
Segment = tuple[int, int, int]


class PayloadError(Exception):
    """The payload is not an index speakerdb wrote, or its sizes do not add up."""


class _Cursor:
    """Reads fields from ``fh`` between ``start`` and ``end``, never past ``end``."""

    def __init__(self, fh: BinaryIO, start: int, end: int) -> None:
        self.fh, self.at, self.end = fh, start, end

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.end - self.at:
            raise PayloadError(f"a field of {n} bytes runs past the end of the file")
        self.fh.seek(self.at)
        data = self.fh.read(n)
        if len(data) != n:
            raise PayloadError("the file is shorter than it was when checked")
        self.at += n
        return data

    def skip(self, n: int) -> int:
        """Step over ``n`` bytes (checked against the end); return where they start."""
        if n < 0 or n > self.end - self.at:
            raise PayloadError(f"a block of {n} bytes runs past the end of the file")
        start = self.at
        self.at += n
        return start

    def size(self) -> int:
        return int(_SIZE.unpack(self.take(_SIZE.size))[0])

    def code(self) -> bytes:
        return self.take(4)


def walk(fh: BinaryIO, start: int, end: int, dim: int, count: int) -> tuple[str, list[Segment]]:
    """Check the payload in ``fh[start:end]`` holds ``count`` rows of ``dim`` floats;
    return its kind (``flat`` or ``ivf``) and where its rows are. PayloadError if not."""
    if not 0 < dim <= MAX_DIM or not 0 <= count <= (end - start) // (4 * dim + 8):
        raise PayloadError(f"{count} rows of {dim} floats cannot fit in {end - start} bytes")
    cursor = _Cursor(fh, start, end)
    code = cursor.code()
    if code == b"IxM2":
        segments = [_id_map(cursor, dim, count)]
        kind = "flat"
    elif code == b"IwFl":
        segments = _ivf(cursor, dim, count)
        kind = "ivf"
    else:
        raise PayloadError(f"index type {code!r} is not one speakerdb writes")
    if cursor.at != end:
        raise PayloadError(f"{end - cursor.at} bytes follow the index")
    return kind, segments


def _index_header(cursor: _Cursor, dim: int, count: int) -> None:
    d, ntotal, _, _, _, metric = _HEADER.unpack(cursor.take(_HEADER.size))
    if (d, ntotal, metric) != (dim, count, _METRIC_INNER_PRODUCT):
        raise PayloadError(
            f"an index of {ntotal} {d}-d rows (metric {metric}), not {count} {dim}-d"
        )


def _flat(cursor: _Cursor, dim: int, count: int) -> int:
    """An ``IndexFlatIP`` of ``count`` rows; the offset of its vectors."""
    if cursor.code() != b"IxFI":
        raise PayloadError("the id map does not hold a flat inner-product index")
    _index_header(cursor, dim, count)
    if cursor.size() != count * dim:
        raise PayloadError("the flat index's vector size disagrees with its header")
    return cursor.skip(4 * count * dim)


def _id_map(cursor: _Cursor, dim: int, count: int) -> Segment:
    _index_header(cursor, dim, count)
    vectors = _flat(cursor, dim, count)
    if cursor.size() != count:
        raise PayloadError("the id map's size disagrees with its header")
    return vectors, cursor.skip(8 * count), count


def _ivf(cursor: _Cursor, dim: int, count: int) -> list[Segment]:
    _index_header(cursor, dim, count)
    nlist, _nprobe = cursor.size(), cursor.size()
    if not 0 < nlist <= max(count, 1) or nlist > (cursor.end - cursor.at) // (4 * dim):
        raise PayloadError(f"{nlist} lists for {count} rows")
    _flat(cursor, dim, nlist)  # the coarse quantizer: one centroid per list
    if cursor.take(1) != b"\x00" or cursor.size() != 0:
        raise PayloadError("an IVF index with a direct map, which speakerdb does not write")
    if cursor.code() != b"ilar" or cursor.size() != nlist or cursor.size() != 4 * dim:
        raise PayloadError("the inverted lists disagree with the index")
    sizes = _list_sizes(cursor, nlist)
    if sum(sizes) != count:
        raise PayloadError(f"the lists hold {sum(sizes)} rows, not {count}")
    segments = []
    for n in sizes:
        if n:
            vectors = cursor.skip(4 * dim * n)
            segments.append((vectors, cursor.skip(8 * n), n))
    return segments


def _list_sizes(cursor: _Cursor, nlist: int) -> list[int]:
    layout = cursor.code()
    if layout == b"full":
        if cursor.size() != nlist:
            raise PayloadError("the list sizes disagree with the list count")
        return list(struct.unpack(f"<{nlist}Q", cursor.take(8 * nlist)))
    if layout == b"sprs":
        n = cursor.size()
        if n % 2 or n > 2 * nlist:
            raise PayloadError("the sparse list sizes are malformed")
        pairs = struct.unpack(f"<{n}Q", cursor.take(8 * n))
        sizes = [0] * nlist
        for list_no, size in zip(pairs[::2], pairs[1::2], strict=True):
            if list_no >= nlist:
                raise PayloadError(f"list {list_no} of {nlist}")
            sizes[list_no] = size
        return sizes
    raise PayloadError(f"inverted-list layout {layout!r} is not one speakerdb writes")


def content_digest(fh: BinaryIO, segments: list[Segment], dim: int) -> str:
    """The digest of the rows at ``segments`` (:func:`walk`), as the store computes it."""
    return _digest.digest_of(_rows(fh, segments, dim))


def _rows(fh: BinaryIO, segments: list[Segment], dim: int) -> Iterator[tuple[int, bytes]]:
    width = 4 * dim
    for vectors, ids, count in segments:
        for first in range(0, count, _CHUNK_ROWS):
            n = min(_CHUNK_ROWS, count - first)
            fh.seek(ids + 8 * first)
            id_list = struct.unpack(f"<{n}q", fh.read(8 * n))
            fh.seek(vectors + width * first)
            block = fh.read(width * n)
            for row, speaker_id in enumerate(id_list):
                yield speaker_id, block[row * width : (row + 1) * width]
