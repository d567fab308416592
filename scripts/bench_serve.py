#!/usr/bin/env python3
"""The HTTP service under load, against in-process ``SpeakerDB.verify`` in the same run.

Real 3 s clips of the corpus (``~/.cache/speakerdb-corpus/concat3s``) are verified by 1,
4 and 16 concurrent clients, each level for ``--seconds``: first by threads calling
``db.verify`` in this process, then by as many loopback HTTP clients (keep-alive
connections) against a ``speakerdb serve`` process on the same database and model,
interleaved level by level so that the machine's load drifts over both alike. For each
level it prints throughput, p50 and p99 latency and errors, and the ratios the issue
asks for: server throughput at least 90% of in-process at the same concurrency, and at 1
client a p50 at most 1.2x in-process. Then 4 clients run again beside a slow client that
trickles each of its bodies over ``--slow-seconds``: the others' p50 and throughput with
and without it show whether it holds them up. Every phase is bounded in time.

The default model is the default architecture, microsoft/unispeech-sat-base-plus-sv's
(UniSpeechSat base, 94 M parameters), randomly initialised and saved to a temporary
folder since the Hub cannot be reached here: its cost is the real model's (the accuracy
is not measured here). ``--model resemblyzer`` runs GE2E instead.

    python scripts/bench_serve.py [--seconds 10] [--model default|resemblyzer|DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _serving import Server

from speakerdb import SpeakerDB

CORPUS = Path(os.environ.get("SPEAKERDB_CORPUS", Path.home() / ".cache" / "speakerdb-corpus"))
SPEAKERS = ("asterisk-allison", "asterisk-carlo-it", "fillets-nl-big", "asterisk-june-frca")
LEVELS = (1, 4, 16)


@dataclass
class Phase:
    """The answers of one phase: latencies of successes, the failures, and how long it took."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency: float, error: str | None) -> None:
        with self.lock:
            (self.errors.append(error) if error else self.latencies.append(latency))

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self, label: str) -> str:
        return (
            f"{label:<28} {self.throughput:7.2f}/s  p50 {1000 * self.quantile(0.5):7.1f} ms  "
            f"p99 {1000 * self.quantile(0.99):7.1f} ms  {len(self.latencies):5d} ok  "
            f"{len(self.errors)} errors"
        )


def default_architecture(folder: Path) -> Path:
    """microsoft/unispeech-sat-base-plus-sv's architecture, random weights, saved as users
    save theirs (the Hub cannot be reached: its weights cannot be fetched)."""
    import torch
    from transformers import UniSpeechSatConfig, UniSpeechSatForXVector, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    # The defaults of UniSpeechSatConfig are the base model's: 12 layers of 768.
    config = UniSpeechSatConfig(num_labels=10, xvector_output_dim=512)
    UniSpeechSatForXVector(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(folder)
    return folder


def corpus_clips() -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    """One enrollment clip per speaker, and the other clips as (claimed speaker, bytes)."""
    enroll, queries = {}, []
    for speaker in SPEAKERS:
        files = sorted((CORPUS / "concat3s" / speaker).glob("*.wav"))
        if len(files) < 2:
            sys.exit(f"bench_serve: no corpus clips of {speaker}; run python scripts/corpus.py")
        enroll[speaker] = files[0].read_bytes()
        queries += [(speaker, f.read_bytes()) for f in files[1:8]]
    return enroll, queries


def run_clients(count: int, seconds: float, call: Callable[[int, int], str | None]) -> Phase:
    """``count`` threads each calling ``call(thread, i)`` until ``seconds`` have passed."""
    phase = Phase(seconds)
    deadline = time.monotonic() + seconds

    def client(thread: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                error = call(thread, i)
            except Exception as exc:  # counted, not raised: the bench reports errors
                error = f"{type(exc).__name__}: {exc}"
            phase.add(time.perf_counter() - started, error)
            i += 1

    threads = [threading.Thread(target=client, args=(t,)) for t in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 300)
    # The calls under way at the deadline are waited for and counted: the rate is over
    # the whole time the phase took.
    phase.seconds = time.monotonic() - started
    return phase


class HttpClients:
    """One keep-alive connection per client thread to the server."""

    def __init__(self, server: Server, key: str, queries: list[tuple[str, bytes]]) -> None:
        self.server, self.key, self.queries = server, key, queries
        self.local = threading.local()

    def verify(self, thread: int, i: int) -> str | None:
        speaker, body = self.queries[(thread * 7 + i) % len(self.queries)]
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = self.server.connection(timeout=300)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "audio/wav"}
        connection.request("POST", f"/v1/speakers/{speaker}/verify", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        return None if response.status == 200 else f"{response.status} {text[:200]!r}"

    def slow(self, stop: threading.Event, trickle_s: float) -> int:
        """Verify again and again, each body sent in 20 pieces over ``trickle_s``."""
        done = 0
        speaker, body = self.queries[0]
        while not stop.is_set():
            connection = self.server.connection(timeout=300)
            connection.putrequest("POST", f"/v1/speakers/{speaker}/verify")
            connection.putheader("Authorization", f"Bearer {self.key}")
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders()
            step = len(body) // 20 + 1
            for start in range(0, len(body), step):
                connection.send(body[start : start + step])
                time.sleep(trickle_s / 20)
            response = connection.getresponse()
            response.read()
            done += response.status == 200
            connection.close()
        return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--model", default="default", help="default, resemblyzer or a folder")
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="a slow body's time")
    args = parser.parse_args()
    enroll, queries = corpus_clips()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        model = (
            str(default_architecture(folder / "model")) if args.model == "default" else args.model
        )
        db_path = folder / "bench.db"
        print(f"model {args.model}; {len(SPEAKERS)} speakers; {len(queries)} distinct 3 s clips")
        with SpeakerDB(db_path, model=model) as db:
            for speaker, clip in enroll.items():
                db.enroll(speaker, [clip], force=True)
            _, key = db.keys.create("bench", "query")
            server = Server(
                db_path, "--workers", str(max(LEVELS)), log=folder / "server.log", model=model
            )
            server.start(timeout=600)
            try:
                report(db, server, key, queries, args)
            finally:
                server.stop()


def report(
    db: SpeakerDB,
    server: Server,
    key: str,
    queries: list[tuple[str, bytes]],
    args: argparse.Namespace,
) -> None:
    clients = HttpClients(server, key, queries)

    def in_process(thread: int, i: int) -> str | None:
        speaker, body = queries[(thread * 7 + i) % len(queries)]
        db.verify(speaker, body)
        return None

    run_clients(2, 3.0, in_process)  # warm-up of both: caches, threads, connections
    run_clients(2, 3.0, clients.verify)
    failed: list[str] = []
    errors = 0
    results = {}
    for level in LEVELS:
        local = run_clients(level, args.seconds, in_process)
        served = run_clients(level, args.seconds, clients.verify)
        results[level] = (local, served)
        print(local.line(f"in-process, {level:2d} thread(s)"))
        print(served.line(f"HTTP,       {level:2d} client(s)"))
        ratio = served.throughput / local.throughput
        print(f"  throughput HTTP / in-process: {ratio:.2f} (at least 0.90)")
        failed += [f"throughput at {level}: {ratio:.2f}"] if ratio < 0.9 else []
        errors += len(served.errors) + len(local.errors)
        for error in served.errors[:3]:
            print(f"  error: {error}")
    local, served = results[1]
    p50 = served.quantile(0.5) / local.quantile(0.5)
    print(f"p50 at 1 client, HTTP / in-process: {p50:.2f} (at most 1.20)")
    failed += [f"p50 at 1: {p50:.2f}"] if p50 > 1.2 else []

    stop = threading.Event()
    slow_done: list[int] = []
    slow = threading.Thread(target=lambda: slow_done.append(clients.slow(stop, args.slow_seconds)))
    slow.start()
    time.sleep(1.0)  # the slow client's first body is under way
    beside = run_clients(4, args.seconds, clients.verify)
    stop.set()
    slow.join(args.slow_seconds + 120)
    alone = results[4][1]
    print(beside.line(" 4 clients beside a slow one"))
    print(
        f"  the slow client finished {slow_done[0] if slow_done else 0} verify(s), each body "
        f"over {args.slow_seconds:.0f} s"
    )
    held = beside.quantile(0.5) / alone.quantile(0.5)
    print(
        f"  p50 beside the slow client / without it: {held:.2f}; throughput "
        f"{beside.throughput / alone.throughput:.2f}"
    )
    failed += [f"slow client: p50 x{held:.2f}"] if held > 1.5 else []
    errors += len(beside.errors)
    print(f"errors: {errors} (must be 0)")
    failed += [f"{errors} errors"] if errors else []
    print("PASS" if not failed else "FAIL: " + "; ".join(failed))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
