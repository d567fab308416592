"""Search by pgvector: the templates in a ``vector`` column with an HNSW index.

The table ``speaker_vectors`` (speaker id, template) is derived data, like the
SQLite backend's FAISS file: it is written in the same transaction as the
speaker rows (:func:`apply`), deleted with them (``ON DELETE CASCADE``), and can
be rebuilt from ``speakers.template`` at any time (:func:`rebuild`). It is made
by the first change of templates, once the encoder's dimension is known: a
``vector(d)`` column needs it, and so does an HNSW index.

Two index kinds, by the ``vector_search`` setting: ``pgvector`` indexes the
float32 ``vector`` itself; ``halfvec`` indexes it cast to ``halfvec(d)`` (half the
index's memory), and the scores returned are still computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ...types import Match

__all__ = [
    "EXACT_GROUP_UP_TO",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_EF_SEARCH",
    "HNSW_M",
    "KINDS",
    "apply",
    "available",
    "create",
    "rebuild",
    "search",
]

#: The ``vector_search`` settings that search with pgvector.
KINDS = ("pgvector", "halfvec")
TABLE = "speaker_vectors"
# HNSW's graph degree and build beam (pgvector's defaults), and the search beam: 100
# gives recall@10 of at least 0.99 at 10^5 clustered speakers (scripts/bench_scale.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 100
#: Groups of up to this many members are searched exactly (every member scored).
EXACT_GROUP_UP_TO = 10_000


def available(session: Session) -> bool:
    """Whether the pgvector extension is installed in the database, installing it when
    the server has it and the role may (a failure leaves the transaction as it was)."""
    if _installed(session):
        return True
    offered = session.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    if offered is None:
        return False
    try:
        with session.begin_nested():
            session.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except Exception:  # no privilege to install it: search by the FAISS cache instead
        return False
    return True


def _installed(session: Session) -> bool:
    found = session.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    return found is not None


def create(session: Session, dim: int, kind: str) -> None:
    """Create the table and its HNSW index for ``dim``-d templates, if missing."""
    dim = int(dim)
    session.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "speaker_id integer PRIMARY KEY REFERENCES speakers (id) ON DELETE CASCADE, "
            f"template vector({dim}) NOT NULL)"
        )
    )
    indexed = "template vector_ip_ops" if kind == "pgvector" else _half(dim) + " halfvec_ip_ops"
    session.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS {TABLE}_hnsw ON {TABLE} USING hnsw ({indexed}) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )
    )


def _half(dim: int) -> str:
    return f"(template::halfvec({int(dim)}))"


def literal(vector: np.ndarray) -> str:
    """A vector as pgvector's text form; float32 values print exactly as float64 reprs."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, np.float32)) + "]"


def apply(session: Session, ops: Sequence[tuple[int, np.ndarray | None]]) -> None:
    """Write the template updates ``(speaker id, template or None to delete)``."""
    gone = [{"id": i} for i, template in ops if template is None]
    if gone:
        session.execute(text(f"DELETE FROM {TABLE} WHERE speaker_id = :id"), gone)
    kept = {i: template for i, template in ops if template is not None}  # the last one wins
    if kept:
        session.execute(
            text(
                f"INSERT INTO {TABLE} (speaker_id, template) VALUES (:id, CAST(:v AS vector)) "
                "ON CONFLICT (speaker_id) DO UPDATE SET template = EXCLUDED.template"
            ),
            [{"id": i, "v": literal(t)} for i, t in kept.items()],
        )


def rebuild(session: Session, dim: int, kind: str) -> int:
    """Refill the table from ``speakers.template``; return how many rows it holds."""
    from ..sql._models import from_blob

    create(session, dim, kind)
    session.execute(text(f"DELETE FROM {TABLE}"))
    rows = session.execute(text("SELECT id, template FROM speakers")).all()
    apply(session, [(int(i), from_blob(blob)) for i, blob in rows])
    return len(rows)


def search(
    conn: Connection,
    queries: np.ndarray,
    k: int,
    dim: int,
    kind: str,
    group: str | None = None,
    size: int | None = None,
) -> list[tuple[Match, ...]]:
    """The ``k`` best templates for each query row (of ``group``'s ``size`` members, when
    given), best first: each query one statement, which reads its own committed snapshot.
    HNSW's beam is the connection's ``hnsw.ef_search`` (:data:`HNSW_EF_SEARCH`), so at
    most that many are found.

    A group of up to :data:`EXACT_GROUP_UP_TO` members is scored exactly, member by
    member (the order by an expression the index cannot serve); a larger one by HNSW
    with the group as a filter and pgvector's iterative scan, which goes on scanning
    the graph until ``k`` members are found."""
    order = (
        "template <#> CAST(:q AS vector)"
        if kind == "pgvector"
        else f"{_half(dim)} <#> CAST(:q AS halfvec({int(dim)}))"
    )
    source = TABLE
    params: dict[str, object] = {"k": int(k)}
    if group is not None:
        exact = size is None or size <= EXACT_GROUP_UP_TO
        if exact:
            order = f"({order}) + 0"
        else:
            conn.execute(text("SET hnsw.iterative_scan = relaxed_order"))
        source = (
            f"{TABLE} WHERE speaker_id IN (SELECT m.speaker_id FROM group_members AS m "
            "JOIN groups AS g ON g.id = m.group_id WHERE g.name = :group)"
        )
        params["group"] = group
    statement = text(
        "SELECT s.name, -(v.template <#> CAST(:q AS vector)) AS score "
        f"FROM (SELECT speaker_id, template FROM {source} ORDER BY {order} LIMIT :k) AS v "
        "JOIN speakers AS s ON s.id = v.speaker_id"
    )
    found = []
    for query in queries:
        rows = conn.execute(statement, {**params, "q": literal(query)}).all()
        ranked = sorted(((float(score), str(name)) for name, score in rows), reverse=True)
        found.append(tuple(Match(name, score) for score, name in ranked))
    return found
