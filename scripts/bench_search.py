#!/usr/bin/env python3
"""Search at scale: flat vs IVF on clustered synthetic templates, 10^4 to 10^6 speakers.

For each size it builds speakerdb's flat index (exact, the baseline) and its
IVF index (the plan ``speakerdb.storage._indexkind`` picks for that size), then
measures, interleaved and as medians:

* recall@10 of IVF against exact flat, over half genuine queries (noisy
  templates of enrolled speakers) and half strangers, for several ``nprobe``;
* single-query latency, flat vs IVF;
* a batch of 100 queries: FAISS's default path (one query at a time) vs the
  matrix-product path speakerdb sets up, and IVF;
* build time, file size (memory), save and load time;
* the write path of one enrollment (copy-on-write of the index, upsert, save).

The data are described in ``_clustered.py``; ``--real-stats`` measures the
real statistics they are fitted to again (GE2E on the shared corpus, slow).
Memory: about 4x the index (2 GB at 10^6 x 512), never more.

    python scripts/bench_search.py                  # 10^4, 10^5, 10^6 at 512-d
    python scripts/bench_search.py --sizes 10000,100000 --dim 256
"""

from __future__ import annotations

import argparse
import statistics as stats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clustered import REAL, Population, statistics

from speakerdb.storage import AUTO_IVF_FROM, SpeakerIndex, nprobe_for, plan_for
from speakerdb.storage import _index as index_module

K = 10
T = TypeVar("T")
FAISS_DEFAULTS = {"threshold": 128_000, "query_bs": 4096, "database_bs": 1024}


def timed(fn: Callable[[], object]) -> float:
    return timed_value(fn)[1]


def timed_value(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def generate(pop: Population, n: int) -> np.ndarray:
    out = np.empty((n, pop.dim), np.float32)
    step = 100_000
    for start in range(0, n, step):
        out[start : min(n, start + step)] = pop.templates(start, min(n, start + step))
    return out


def make_queries(pop: Population, data: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Half genuine queries (owners in ``data``), half strangers (owner -1)."""
    rng = np.random.default_rng(1)
    owners = rng.choice(len(data), count // 2, replace=False)
    strangers = pop.templates(10**9, 10**9 + count - len(owners))
    queries = np.concatenate([pop.queries(data[owners], 2), pop.queries(strangers, 3)]).astype(
        np.float32
    )
    return queries, np.concatenate([owners, np.full(len(strangers), -1)])


def recall(truth: np.ndarray, found: np.ndarray) -> float:
    hits = [len(set(t) & set(f)) for t, f in zip(truth, found, strict=True)]
    return float(np.sum(hits) / truth.size)


def set_batch_path(default: bool) -> None:
    """FAISS's own batch settings (default) or the ones speakerdb sets (index._faiss)."""
    import faiss

    index_module._faiss()
    values = (
        FAISS_DEFAULTS
        if default
        else {
            "threshold": index_module._BATCH_FROM,
            "query_bs": index_module._QUERY_CHUNK,
            "database_bs": index_module._DATABASE_BLOCK,
        }
    )
    faiss.cvar.distance_compute_blas_threshold = values["threshold"]
    faiss.cvar.distance_compute_blas_query_bs = values["query_bs"]
    faiss.cvar.distance_compute_blas_database_bs = values["database_bs"]


def flat_view(index: SpeakerIndex, n: int, dim: int) -> np.ndarray:
    """The flat index's own vectors, without a copy (so 10^6 x 512 fits twice, not thrice)."""
    import faiss

    inner = faiss.downcast_index(index._index.index)
    return faiss.rev_swig_ptr(inner.get_xb(), n * dim).reshape(n, dim)


def single_latency(flat: SpeakerIndex, ivf: SpeakerIndex, queries: np.ndarray) -> tuple:
    f, v = [], []
    for q in queries:  # interleaved, one query each
        f.append(timed(lambda q=q: flat.search(q[None], K)))
        v.append(timed(lambda q=q: ivf.search(q[None], K)))
    return stats.median(f), stats.median(v)


def batch_latency(flat: SpeakerIndex, ivf: SpeakerIndex, batch: np.ndarray, repeats: int) -> tuple:
    default, ours, approx = [], [], []
    for _ in range(repeats):
        set_batch_path(default=True)
        default.append(timed(lambda: flat.search(batch, K)))
        set_batch_path(default=False)
        ours.append(timed(lambda: flat.search(batch, K)))
        approx.append(timed(lambda: ivf.search(batch, K)))
    return stats.median(default), stats.median(ours), stats.median(approx)


def write_path(index: SpeakerIndex, vector: np.ndarray, folder: Path) -> tuple[float, float]:
    """One enrollment's work on the index in IndexSync.apply: copy and upsert, then save."""
    start = time.perf_counter()
    changed = index.copy()
    changed.upsert(1, vector)
    copied = time.perf_counter() - start
    start = time.perf_counter()
    changed.save(folder / "w.faiss", "bench", 2)
    saved = time.perf_counter() - start
    del changed
    (folder / "w.faiss").unlink()
    return copied, saved


def run_size(n: int, dim: int, args: argparse.Namespace, folder: Path) -> None:
    pop = Population(dim)
    data = generate(pop, n)
    queries, owners = make_queries(pop, data, args.queries)
    if n <= 20_000:
        genuine = owners >= 0
        measured = statistics(data, queries[genuine], owners[genuine])
        line = ", ".join(f"{k} {v:.3f} (real {REAL[k]:.3f})" for k, v in measured.items())
        print(f"  data: {line}")
    ids = np.arange(1, n + 1, dtype=np.int64)
    start = time.perf_counter()
    flat = SpeakerIndex(dim, ids, data)
    flat_build = time.perf_counter() - start
    del data
    flat_copy, flat_save = write_path(flat, queries[0], folder)
    plan = plan_for("ivf", n)
    vectors = flat_view(flat, n, dim)
    start = time.perf_counter()
    ivf = SpeakerIndex(dim, ids, vectors, plan)
    ivf_build = time.perf_counter() - start
    del vectors
    set_batch_path(default=False)
    truth = flat.search(queries, K)[1]
    print(f"  IVF: {plan.nlist} lists; build {ivf_build:.1f} s (flat {flat_build:.2f} s)")
    default = nprobe_for(plan.nlist)
    for factor in (0.5, 0.75, 1, 1.5):
        nprobe = min(plan.nlist, round(factor * default))
        ivf._index.nprobe = nprobe
        r = recall(truth, ivf.search(queries, K)[1])
        mark = "  <- default" if nprobe == default else ""
        print(f"    nprobe {nprobe:3d}: recall@10 {r:.4f}{mark}")
    ivf._index.nprobe = default
    f1, v1 = single_latency(flat, ivf, queries[: args.singles])
    print(f"  one query: flat {f1 * 1e3:.2f} ms, IVF {v1 * 1e3:.2f} ms, ratio {f1 / v1:.1f}x")
    repeats = 1 if n >= 10**6 else args.repeats
    d100, o100, i100 = batch_latency(flat, ivf, queries[:100], repeats)
    print(
        f"  100 queries: flat FAISS default {d100 * 1e3:.0f} ms, flat speakerdb "
        f"{o100 * 1e3:.0f} ms ({d100 / o100:.1f}x), IVF {i100 * 1e3:.0f} ms "
        f"({d100 / i100:.1f}x vs default, {o100 / i100:.1f}x vs flat speakerdb)"
    )
    report_files(flat, ivf, folder)
    print(f"  enrollment write path, flat: copy+upsert {flat_copy:.2f} s, save {flat_save:.2f} s")
    del flat
    ivf_copy, ivf_save = write_path(ivf, queries[0], folder)
    print(f"  enrollment write path, IVF: copy+upsert {ivf_copy:.2f} s, save {ivf_save:.2f} s")


def report_files(flat: SpeakerIndex, ivf: SpeakerIndex, folder: Path) -> None:
    for name, index in (("flat", flat), ("IVF", ivf)):
        path = folder / f"{name}.faiss"
        save = timed(lambda index=index, path=path: index.save(path, "bench", 1))
        size = path.stat().st_size / 2**20
        load = timed(lambda path=path: SpeakerIndex.load(path))
        path.unlink()
        print(f"  {name}: file and memory {size:.0f} MiB, save {save:.2f} s, load {load:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=400, help="for recall")
    parser.add_argument("--singles", type=int, default=40, help="single-query latencies")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real-stats", action="store_true", help="measure the corpus again")
    args = parser.parse_args()
    if args.real_stats:
        from _clustered import measure_real

        print("real (GE2E, shared corpus):", measure_real())
    print(f"dim {args.dim}, k={K}; auto uses IVF from {AUTO_IVF_FROM} speakers")
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"{n} speakers:")
            run_size(n, args.dim, args, Path(tmp))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
