"""Speaker names from a PostgreSQL database through the driver alone.

Shell completion asks at every <TAB>: it must not pay for SQLAlchemy's ORM and
numpy, as the SQLite backend's fast reader (:mod:`..sqlite._reader`) does not.
"""

from __future__ import annotations

__all__ = ["speaker_names"]


def speaker_names(url: str) -> list[str]:
    """Every enrolled name, sorted; any problem raises (the caller stays silent)."""
    import psycopg

    rest = url.split("://", 1)[1]
    with psycopg.connect(f"postgresql://{rest}", connect_timeout=2) as conn:
        rows = conn.execute("SELECT name FROM speakers ORDER BY name").fetchall()
    return [str(row[0]) for row in rows]
