"""``speakerdb index``: show or choose the kind of search index (flat or IVF), and on
PostgreSQL the vector search (pgvector, halfvec or the FAISS cache)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import DbOpt, JsonOpt, echo, examples, handles_errors, open_db

__all__ = ["index", "register"]


def register(app: typer.Typer) -> None:
    """Add ``speakerdb index`` to the ``speakerdb`` app."""
    app.command(
        "index",
        epilog=examples(
            "speakerdb index",
            "speakerdb index --kind ivf --ivf-from 20000",
            "speakerdb index --search halfvec --db postgresql://HOST/speakers",
        ),
    )(handles_errors(index))


def index(
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            metavar="KIND",
            help="auto (flat below --ivf-from speakers, IVF above), flat (exact) or ivf.",
        ),
    ] = None,
    ivf_from: Annotated[
        int | None,
        typer.Option(
            "--ivf-from", min=1, help="Speakers from which auto uses IVF (default 50000)."
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            metavar="SEARCH",
            help="PostgreSQL only: pgvector (HNSW), halfvec (HNSW on half precision, half "
            "the memory) or faiss (each process's cache); chosen before the first enrollment.",
        ),
    ] = None,
    db: DbOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or choose the kind of search index.

    Flat or IVF for the FAISS index; on PostgreSQL, also pgvector or halfvec (--search).
    A new kind is stored and the index rebuilt by that setting.
    """
    from dataclasses import asdict

    from ._render import emit_json

    # The search is chosen before the first enrollment: choosing it may create the schema.
    with open_db(db, create=search is not None) as database:
        if search is not None:
            database.index.set_vector_search(search)
        if kind is None and ivf_from is None:
            choice = database.index.choice()
        else:
            setting = kind if kind is not None else database.index.choice().setting
            choice = database.index.configure(setting, ivf_from=ivf_from)
        where = database.index.where
    if json:
        emit_json({**asdict(choice), "where": where})
        return
    lists = f", {choice.nlist} lists, {choice.nprobe} searched" if choice.kind == "ivf" else ""
    echo(
        f"index: {choice.kind}{lists}; {choice.n_speakers} speaker(s); "
        f"setting {choice.setting} (IVF from {choice.ivf_from} speakers under auto); "
        f"in {where}"
    )
