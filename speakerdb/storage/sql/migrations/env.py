"""Alembic environment for speakerdb: one chain of revisions for every SQL engine
(SQLite and PostgreSQL), against the models of :mod:`speakerdb.storage.sql._models`.

speakerdb runs Alembic as a library: the caller passes an open connection in
``config.attributes["connection"]``, inside its own transaction. Run from the
command line (``alembic -x db=PATH ...``), it opens the database itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from speakerdb.storage.sql._models import Base

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # SQLite cannot ALTER most things in place; batch mode copies the table.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    db = context.get_x_argument(as_dictionary=True).get("db", "speakers.db")
    with create_engine(f"sqlite:///{db}").begin() as conn:
        _run(conn)
