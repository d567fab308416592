#!/usr/bin/env python3
"""Identify latency against 10^4 speakers, and identify throughput from two threads.

The encoder is the default model's architecture (UniSpeechSatForXVector, base
size, 512-d) with random weights, saved with ``save_pretrained`` to a temporary
folder and opened with ``SpeakerDB(model=DIR)``: the Hub is not reachable, and
the cost of a forward pass does not depend on the weights. The database gets
10^4 speakers with clustered templates (``_clustered.py``), written in one
transaction through the library's catalog functions.

It prints, as medians over interleaved repeats:

* ``embed`` (the encoder alone, ``SpeakerDB.embed``) vs ``identify`` for a 3 s
  clip, and the ratio (goal: at most 1.05);
* identify's own work, measured with an encoder that replays the clip's
  embedding at no cost (settings, index snapshot, search, names, audit check),
  and what reading every name per query, as speakerdb did before, would add;
* identifies per second from one thread and from two threads with the model on
  one core each, and from one thread with the model on every core.

    python scripts/bench_identify.py [--speakers 10000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics as stats
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clustered import Population

from speakerdb import SpeakerDB
from speakerdb.audio import Clip, clip_from_array
from speakerdb.storage.sql import _catalog as catalog

SAMPLE_RATE = 16_000


def save_model(folder: Path) -> None:
    import torch
    from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    UniSpeechSatForXVector(UniSpeechSatConfig()).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)


def voice(seconds: float, pitch: float = 140.0, seed: int = 0) -> np.ndarray:
    """A synthetic voiced sound (harmonics with vibrato and a little noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wobble = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
    wave = sum(np.sin(2 * np.pi * pitch * k * t * wobble) / k for k in range(1, 8))
    wave = wave + 0.01 * rng.standard_normal(t.size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def fill(db: SpeakerDB, n: int) -> None:
    """``n`` speakers with one utterance each, written in one transaction."""
    encoder = db.encoder()
    templates = Population(encoder.info.dim).templates(0, n)
    # Straight through the SQLite backend's catalog: enrolling speaker by speaker
    # through the storage protocol would make a large fill take minutes.
    storage = db._storage
    with storage._index.changing(), storage._store.write() as session:
        catalog.write_encoder(session, encoder.info)
        for i, vector in enumerate(templates):
            row, _ = catalog.get_or_create_speaker(session, f"speaker-{i:06d}")
            fake = Clip(np.zeros(1, np.float32), None, f"{i:064x}")
            catalog.add_utterances(session, row, [fake], vector[None, :])
            catalog.refresh_template(session, row)
        catalog.bump_generation(session)
    db.index.rebuild()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: stats.median(values) for name, values in times.items()}


def throughput(db: SpeakerDB, clips: list[Clip], threads: int, per_thread: int) -> tuple:
    """Identifies per second, and the process's CPU time per second of wall time."""

    def work(clip: Clip) -> None:
        for _ in range(per_thread):
            db.identify(clip)

    workers = [threading.Thread(target=work, args=(clips[i],)) for i in range(threads)]
    start, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    return threads * per_thread / wall, (time.process_time() - cpu) / wall


class Replay:
    """An encoder that returns a stored embedding at no cost: identify's overhead alone."""

    def __init__(self, info: object, vector: np.ndarray) -> None:
        self.info, self._vector = info, vector

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.repeat(self._vector[None, :], len(clips), axis=0)


def latency(db: SpeakerDB, clip: Clip, repeats: int) -> None:
    db.identify(clip)  # warm: model loaded, index read
    vector = db.embed([clip])[0]
    with SpeakerDB(db.path, encoder=Replay(db.encoder().info, vector)) as replay:  # type: ignore[arg-type]
        replay.identify(clip)
        medians = interleaved(
            {
                "embed": lambda: db.embed([clip]),
                "identify": lambda: db.identify(clip),
                "overhead": lambda: replay.identify(clip),
                "read all names": lambda: _read_names(db),
            },
            repeats,
        )
    embed, whole, extra = medians["embed"], medians["identify"], medians["overhead"]
    print(
        f"  embed alone {embed * 1e3:.1f} ms, identify {whole * 1e3:.1f} ms: "
        f"ratio {whole / embed:.3f} (medians; each varies by more than the overhead)"
    )
    print(
        f"  identify's own work (the embedding replayed at no cost) {extra * 1e3:.2f} ms: "
        f"(embed + that) / embed = {(embed + extra) / embed:.4f}"
    )
    print(
        "  reading every name per query (as before the cache) would add "
        f"{medians['read all names'] * 1e3:.2f} ms"
    )


def _read_names(db: SpeakerDB) -> None:
    with db._storage._store.read() as session:
        catalog.speaker_names(session)


def threads_report(db: SpeakerDB, model: str, clips: list[Clip], per_thread: int) -> None:
    """Throughput from 1 and 2 Python threads, with the ONNX Runtime session (the default
    backend) on 1 intra-op thread, and from 1 thread with it on every core."""
    from speakerdb.encoders import load_onnx_encoder

    cores = os.cpu_count() or 1
    handles = {
        n: SpeakerDB(db.path, encoder=load_onnx_encoder(model, threads=n)) for n in (1, cores)
    }
    runs: dict[str, list[tuple[float, float]]] = {"1x2": [], "1x1": [], "2x1": []}
    for _ in range(3):  # interleaved rounds, medians
        runs["1x2"].append(throughput(handles[cores], clips, 1, per_thread))
        runs["1x1"].append(throughput(handles[1], clips, 1, per_thread))
        runs["2x1"].append(throughput(handles[1], clips, 2, per_thread))
    for handle in handles.values():
        handle.close()
    rate = {k: stats.median(r for r, _ in v) for k, v in runs.items()}
    busy = {k: stats.median(c for _, c in v) for k, v in runs.items()}
    for key, label in (
        ("1x1", "1 thread, the model on 1 core"),
        ("2x1", "2 threads, the model on 1 core each"),
        ("1x2", f"1 thread, the model on {cores} cores (the default)"),
    ):
        print(f"  {label}: {rate[key]:.2f} identifies/s, {busy[key]:.2f} cores busy")
    print(f"  -> 2 threads give {rate['2x1'] / rate['1x1']:.2f}x the throughput of one")
    print(f"  load average now: {os.getloadavg()[0]:.1f} on {cores} cores (other processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--per-thread", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-identify-") as tmp:
        model = Path(tmp) / "model"
        save_model(model)
        with SpeakerDB(Path(tmp) / "bench.db", model=str(model)) as db:
            fill(db, args.speakers)
            clips = [
                clip_from_array(voice(args.seconds, 120 + 40 * i, i), SAMPLE_RATE) for i in (0, 1)
            ]
            print(
                f"{args.speakers} speakers, {args.seconds:.0f} s clip, "
                "UniSpeechSatForXVector base, random weights:"
            )
            latency(db, clips[0], args.repeats)
            threads_report(db, str(model), clips, args.per_thread)


if __name__ == "__main__":
    main()
