#!/usr/bin/env python3
"""Scaling out: search on each store at 10^4 to 10^6 speakers, and bulk enrollment on Ray.

**Search.** For each size, the same clustered templates (``scripts/_clustered.py``,
fitted to GE2E's, 256-d) are loaded into four stores, and each answers the same
queries (half genuine, half strangers) through :meth:`Storage.search`, one query
at a time, as ``identify`` asks it:

* ``sqlite+faiss``: the SQLite file and its FAISS index (flat, IVF from 50,000);
* ``pg+faiss-cache``: PostgreSQL without pgvector, each process's FAISS cache;
* ``pg+pgvector``: PostgreSQL with pgvector, HNSW on ``vector``;
* ``pg+halfvec``: the same, HNSW on ``halfvec``.

Printed per store: p50 and p95 latency of a query, recall@10 against exact search,
and the bytes the store takes per speaker (table, index). Loading is by bulk SQL
(``COPY``), not by enrollment: it measures the search, not the writes.

**Bulk enrollment.** The default model's architecture (UniSpeech-SAT base x-vector,
randomly initialised: the Hub cannot be reached here; its cost is the real model's)
embeds real clips of the shared corpus: ``enroll-batch`` as is, then on Ray with
one and with two actors of one thread each. Printed: seconds and the ratios (2
actors / 1 actor; 2 actors / plain).

    python scripts/bench_scale.py [--sizes 10000,100000] [--skip-ray] [--skip-search]

The PostgreSQL servers are CI's (SPEAKERDB_TEST_POSTGRES_URL, SPEAKERDB_TEST_PGVECTOR_URL)
or throwaway clusters started by scripts/pg_cluster.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from _clustered import Population

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

DIM = 256


def generate(pop: Population, n: int) -> np.ndarray:
    out = np.empty((n, pop.dim), np.float32)
    for start in range(0, n, 100_000):
        out[start : min(n, start + 100_000)] = pop.templates(start, min(n, start + 100_000))
    return out


def make_queries(pop: Population, data: np.ndarray, count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    owners = rng.choice(len(data), count // 2, replace=False)
    strangers = pop.templates(10**9, 10**9 + count - len(owners))
    return np.concatenate([pop.queries(data[owners], 2), pop.queries(strangers, 3)])


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    out = []
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ data.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out += [set(row.tolist()) for row in top]
    return out


# -- loading the stores ----------------------------------------------------------


def create_schema(location: str) -> None:
    """Create the database with one speaker (schema, encoder, search choice), then empty it."""
    from conftest import FakeEncoder, voice

    from speakerdb import SpeakerDB

    with SpeakerDB(location, encoder=FakeEncoder(dim=DIM)) as db:
        db.enroll("seed", [(voice(200.0, 1.0, 16000, 0), 16000)], force=True)
        db.remove("seed")


def copy_rows(data: np.ndarray) -> Iterator[tuple[int, str, bytes]]:
    for i, vector in enumerate(data):
        yield i + 1, f"s{i:08d}", np.ascontiguousarray(vector, "<f4").tobytes()


def load_sqlite(path: Path, data: np.ndarray) -> None:
    import sqlite3

    create_schema(str(path))
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO speakers (id, name, template, created_at) "
            "VALUES (?, ?, ?, '2026-01-01 00:00:00')",
            copy_rows(data),
        )
        db.execute("UPDATE settings SET value = value + 1 WHERE key = 'generation'")
        db.execute("DELETE FROM settings WHERE key = 'index_digest'")
    db.close()


def load_postgres(url: str, data: np.ndarray, kind: str | None) -> None:
    """Bulk-load ``data`` as speakers (and into the pgvector table, index built after)."""
    import psycopg

    from speakerdb.storage import open_storage

    storage = open_storage(url)
    if kind is not None:
        storage.set_search(kind)  # type: ignore[attr-defined]
    storage.close()
    create_schema(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("DROP INDEX IF EXISTS speaker_vectors_hnsw")
        with conn.cursor().copy("COPY speakers (id, name, template, created_at) FROM STDIN") as cp:
            for row in copy_rows(data):
                cp.write_row((*row, "2026-01-01 00:00:00+00"))
        conn.execute("SELECT setval('speakers_id_seq', %s)", (len(data) + 1,))
        if kind is not None:
            with conn.cursor().copy("COPY speaker_vectors (speaker_id, template) FROM STDIN") as cp:
                for i, vector in enumerate(data):
                    text = "[" + ",".join(repr(float(x)) for x in vector) + "]"
                    cp.write_row((i + 1, text))
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute("SET max_parallel_maintenance_workers = 1")
            conn.commit()
            from speakerdb.storage.postgres import _pgvector

            indexed = (
                "template vector_ip_ops"
                if kind == "pgvector"
                else f"(template::halfvec({DIM})) halfvec_ip_ops"
            )
            conn.execute(
                f"CREATE INDEX speaker_vectors_hnsw ON speaker_vectors USING hnsw ({indexed}) "
                f"WITH (m = {_pgvector.HNSW_M}, ef_construction = {_pgvector.HNSW_EF_CONSTRUCTION})"
            )
        conn.execute("UPDATE settings SET value = (value::int + 1)::text WHERE key = 'generation'")
        conn.execute("DELETE FROM settings WHERE key = 'index_digest'")
        conn.commit()


def pg_sizes(url: str) -> tuple[int, int]:
    """Bytes of the speakers table (with TOAST) and of the pgvector table and its index."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        table = conn.execute("SELECT pg_total_relation_size('speakers')").fetchone()[0]
        vectors = conn.execute(
            "SELECT coalesce(pg_total_relation_size(to_regclass('speaker_vectors')), 0)"
        ).fetchone()[0]
    return int(table), int(vectors)


# -- measuring --------------------------------------------------------------------


def measure(
    search: Callable[[np.ndarray, int], list], queries: np.ndarray, truth: list[set[int]], k: int
) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@k) of one query at a time."""
    search(queries[:1], k)  # warm: the cache is built, the connection opened
    times, hits = [], 0
    for query, want in zip(queries, truth, strict=True):
        start = time.perf_counter()
        found = search(query[None, :], k)[0]
        times.append(time.perf_counter() - start)
        hits += len(want & {int(m.speaker[1:]) for m in found})
    times.sort()
    p50 = 1000 * times[len(times) // 2]
    p95 = 1000 * times[int(len(times) * 0.95)]
    return p50, p95, hits / (k * len(queries))


@contextmanager
def database(server: object) -> Iterator[str]:
    url = server.create_database()  # type: ignore[attr-defined]
    try:
        yield url
    finally:
        server.drop_database(url)  # type: ignore[attr-defined]


def search_sqlite(data: np.ndarray, queries: np.ndarray, truth: list[set[int]], n: int) -> None:
    from speakerdb.storage import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speakers.db"
        start = time.perf_counter()
        load_sqlite(path, data)
        storage = open_storage(path)
        storage.search(queries[:1], 10)  # builds the index
        load_s = time.perf_counter() - start
        p50, p95, rec = measure(storage.search, queries, truth, 10)
        storage.close()
        sizes = (path.stat().st_size, Path(str(path) + ".faiss").stat().st_size)
        report("sqlite+faiss", n, p50, p95, rec, sizes, load_s)


STORES = ("sqlite+faiss", "pg+faiss-cache", "pg+pgvector", "pg+halfvec")


def run_search(
    sizes: list[int], count: int, servers: dict[str, object], stores: tuple[str, ...] = STORES
) -> None:
    from speakerdb.storage import open_storage

    pop = Population(DIM, seed=0)
    print("store            speakers   p50 ms   p95 ms  recall@10  bytes/speaker: table + index")
    for n in sizes:
        data = generate(pop, n)
        queries = make_queries(pop, data, count)
        truth = [{i + 0 for i in t} for t in exact_top(data, queries, 10)]
        if "sqlite+faiss" in stores:
            search_sqlite(data, queries, truth, n)
        for label, server, kind in (
            ("pg+faiss-cache", servers["plain"], None),
            ("pg+pgvector", servers["pgvector"], "pgvector"),
            ("pg+halfvec", servers["pgvector"], "halfvec"),
        ):
            if label not in stores:
                continue
            with database(server) as url:
                start = time.perf_counter()
                load_postgres(url, data, kind)
                storage = open_storage(url)
                storage.search(queries[:1], 10)
                load_s = time.perf_counter() - start
                p50, p95, rec = measure(storage.search, queries, truth, 10)
                storage.close()
                report(label, n, p50, p95, rec, pg_sizes(url), load_s)
        sys.stdout.flush()


def report(
    label: str, n: int, p50: float, p95: float, rec: float, sizes: tuple[int, int], load: float
) -> None:
    table, index = sizes[0] / n, sizes[1] / n
    print(
        f"{label:16s} {n:9,d} {p50:8.2f} {p95:8.2f} {rec:10.3f}  {table:7,.0f} + {index:7,.0f}"
        f"   (loaded and indexed in {load:.0f} s)"
    )


# -- bulk enrollment on Ray ------------------------------------------------------------


def default_architecture(folder: Path) -> Path:
    """The default model's architecture (UniSpeech-SAT base x-vector), randomly initialised."""
    import torch
    from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    UniSpeechSatForXVector(UniSpeechSatConfig()).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(folder)
    return folder


def run_ray(per_speaker: int, seconds: float, repeats: int) -> None:
    import ray
    from bench_enroll import write_manifest

    from speakerdb import SpeakerDB
    from speakerdb.services import read_manifest
    from speakerdb.services._raybatch import RayOptions

    with tempfile.TemporaryDirectory() as tmp:
        model = str(default_architecture(Path(tmp) / "model"))
        rows = read_manifest(write_manifest(Path(tmp), per_speaker, seconds))  # bench_enroll's
        audio_s = sum(_duration(r.path) for r in rows)
        with SpeakerDB(Path(tmp) / "warm.db", model=model) as db:
            db.embed([rows[0].path])  # the ONNX export, once, before anything is timed
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        timings: dict[str, list[float]] = {"plain": [], "ray x1": [], "ray x2": []}
        for attempt in range(repeats):
            for label, options in (
                ("plain", None),
                ("ray x1", RayOptions(actors=1, threads=1)),
                ("ray x2", RayOptions(actors=2, threads=1)),
            ):
                path = Path(tmp) / f"{label.replace(' ', '')}-{attempt}.db"
                with SpeakerDB(path, model=model) as db:
                    start = time.perf_counter()
                    report = db.enroll_batch(rows, force=True, ray=options)
                    timings[label].append(time.perf_counter() - start)
                assert not report.failures, report.failures[:2]
        ray.shutdown()
    best = {label: statistics.median(values) for label, values in timings.items()}
    print(
        f"\n{len(rows)} clips, {audio_s:.0f} s of audio, UniSpeech-SAT base, median of {repeats}:"
    )
    for label, value in best.items():
        print(f"  {label:7s} {value:7.1f} s  ({audio_s / value:5.1f}x realtime)")
    print(f"  2 actors / 1 actor: {best['ray x1'] / best['ray x2']:.2f}x (target >= 1.6)")
    print(f"  2 actors / plain enroll-batch: {best['plain'] / best['ray x2']:.2f} (target >= 0.90)")


def _duration(path: str) -> float:
    import soundfile as sf

    return float(sf.info(path).duration)


def servers() -> tuple[dict[str, object], list[object]]:
    from _postgres import start_server

    found, started = {}, []
    for kind in ("plain", "pgvector"):
        server = start_server(kind)
        if isinstance(server, str):
            raise SystemExit(server)
        found[kind] = server
        started.append(server)
    return found, started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--per-speaker", type=int, default=6, help="clips per voice (Ray)")
    parser.add_argument("--seconds", type=float, default=3.0, help="shortest clip (Ray)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--stores",
        default=",".join(STORES),
        help="which stores to search (comma-separated; 10^6 speakers fit HNSW's build poorly)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.skip_search:
        from _postgres import stop_server

        found, started = servers()
        try:
            stores = tuple(args.stores.split(","))
            unknown = sorted(set(stores) - set(STORES))
            if unknown:
                parser.error(f"unknown store(s) {unknown}: choose from {', '.join(STORES)}")
            run_search([int(s) for s in args.sizes.split(",")], args.queries, found, stores)
        finally:
            for server in started:
                stop_server(server)  # type: ignore[arg-type]
    if not args.skip_ray:
        run_ray(args.per_speaker, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
