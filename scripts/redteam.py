#!/usr/bin/env python3
"""Red-team pass of issue 16: attacks on what speakerdb keeps on disk, one line each.

Each attack runs against a temporary database (and a temporary model cache) and
prints what it did and whether the defence held:

* forged index: alice's and bob's vectors swapped in the index file, its checksum
  recomputed; a size field set to 8 GiB, checksum recomputed;
* poisoned model cache: the cached ONNX export swapped for a graph that ignores
  its input (``--model resemblyzer``), or a sealed artefact changed (synthetic);
* confusable names: Cyrillic, invisible and full-width look-alikes of ``alice``;
* hostile database: a foreign trigger copying voiceprints on delete, stored
  settings out of range, a NaN clip;
* symlinks: a planted lock-file link and an index-file link;
* remove while the index file cannot be rewritten.

With ``--model resemblyzer`` (and the corpus in ~/.cache/speakerdb-corpus) real
voices and the GE2E encoder are used; otherwise, or when those are missing, a
synthetic spectral encoder and synthetic voices. Exit code 0 when every defence
held, 1 otherwise. It runs in well under two minutes.

    python scripts/redteam.py [--model resemblyzer]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speakerdb import DatabaseError, InvalidName, SchemaError, SpeakerDB
from speakerdb.storage._index import SpeakerIndex
from speakerdb.storage._indexfile import HEADER_SIZE, header_line, read_header
from speakerdb.types import EncoderInfo

CORPUS = Path.home() / ".cache" / "speakerdb-corpus"
Audio = tuple[np.ndarray, int]
RESULTS: list[bool] = []


class SpectralEncoder:
    """The synthetic fallback: normalised log energy in 32 bands (as the tests' fake)."""

    info = EncoderInfo(model="redteam-spectral", revision="1", dim=32, sample_rate=16000)

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        rows = []
        for clip in clips:
            spectrum = np.abs(np.fft.rfft(clip[: 16000 * 4], n=4096)) ** 2
            vector = np.log1p([b.sum() for b in np.array_split(spectrum[:2048], 32)])
            vector = vector - vector.mean()
            rows.append(vector / (np.linalg.norm(vector) + 1e-12))
        return np.asarray(rows, np.float32)


def synthetic(pitch: float, seed: int) -> Audio:
    t = np.arange(32000) / 16000
    wobble = 1 + 0.01 * np.sin(2 * np.pi * 5 * t + seed)
    wave = sum(np.sin(2 * np.pi * pitch * k * t * wobble) / k for k in range(1, 8))
    wave = wave + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32), 16000


class Voices:
    """Enrollment clips and a held-out query for alice and bob, and how to open a db."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.clips: dict[str, list[object]] = {}
        if model == "resemblyzer" and (CORPUS / "manifest.csv").is_file():
            self._real()
        else:
            self.model = None
            self.clips = {
                "alice": [synthetic(180.0, k) for k in range(4)],
                "bob": [synthetic(110.0, k) for k in range(4)],
            }
        self.kind = "GE2E, real voices" if self.model else "synthetic encoder and voices"

    def _real(self) -> None:
        with open(CORPUS / "manifest.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if float(r["duration_s"]) >= 2.0]
        speakers = sorted({r["speaker_id"] for r in rows})[:2]
        for name, speaker in zip(("alice", "bob"), speakers):
            self.clips[name] = [r["path"] for r in rows if r["speaker_id"] == speaker][:4]

    def open(self, path: Path) -> SpeakerDB:
        if self.model:
            return SpeakerDB(path, model=self.model)
        return SpeakerDB(path, encoder=SpectralEncoder())

    def enroll(self, db: SpeakerDB) -> None:
        for name, clips in self.clips.items():
            db.enroll(name, clips[:3], force=True)

    def query(self, name: str) -> object:
        return self.clips[name][3]


def report(attack: str, did: str, held: bool, outcome: str) -> None:
    RESULTS.append(held)
    print(f"[{'HELD' if held else 'BROKEN'}] {attack}: {did} -> {outcome}", flush=True)


def attempt(attack: str, did: str, run: Callable[[], tuple[bool, str]]) -> None:
    try:
        held, outcome = run()
    except Exception as exc:  # an attack that crashes the tool is a broken defence too
        held, outcome = False, f"unexpected {type(exc).__name__}: {exc}"
    report(attack, did, held, outcome)


def fresh(voices: Voices, folder: Path, name: str) -> Path:
    path = folder / f"{name}.db"
    with voices.open(path) as db:
        voices.enroll(db)
    return path


def reseal(file: Path, payload: bytes) -> None:
    meta = json.loads(file.read_bytes()[len(b"SPEAKERDB-INDEX 1\n") : HEADER_SIZE])
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    file.write_bytes(header_line(meta) + payload)


def swapped_index(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "swap")
    file = path.with_name(path.name + ".faiss")
    con = sqlite3.connect(path)
    rows = dict(con.execute("SELECT id, template FROM speakers").fetchall())
    con.close()
    header = read_header(file)
    ids = np.asarray(sorted(rows), np.int64)
    forged = np.stack([np.frombuffer(rows[int(i)], "<f4") for i in ids[::-1]])
    SpeakerIndex(header.dim, ids, forged).save(file, header.db_uuid, header.generation)
    with voices.open(path) as db:
        state = db.info().index_state
        answer = db.identify(voices.query("bob")).speaker
    return answer == "bob", f"info said {state!r}; bob's voice identified as {answer!r}"


def oversized_index(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "size")
    file = path.with_name(path.name + ".faiss")
    payload = bytearray(file.read_bytes()[HEADER_SIZE:])
    payload[74:82] = (1 << 31).to_bytes(8, "little")  # the flat vectors' size: 8 GiB
    reseal(file, bytes(payload))
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, hard))  # an 8 GiB allocation fails
    try:
        with voices.open(path) as db:
            answer = db.identify(voices.query("bob")).speaker
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return answer == "bob", f"rebuilt under a 4 GiB limit, bob identified as {answer!r}"


def poisoned_cache(voices: Voices, folder: Path) -> tuple[bool, str]:
    if not voices.model:
        from speakerdb.encoders._sealed import problem, seal

        artefact = folder / "model.onnx"
        artefact.write_bytes(b"honest graph")
        seal(artefact)
        artefact.write_bytes(b"forged graph")
        found = problem(artefact)
        return found is not None, f"sealed artefact changed; load check says {found!r}"
    honest = _embed(voices, folder / "c1.db")
    exports = [p for p in (Path(os.environ["SPEAKERDB_CACHE_DIR"]) / "onnx").glob("*.onnx")]
    for export in exports:
        export.write_bytes(_constant_graph(honest.shape[1]))
    seen = _Warnings()
    logging.getLogger("speakerdb").addHandler(seen)
    try:
        again = _embed(voices, folder / "c2.db")
    finally:
        logging.getLogger("speakerdb").removeHandler(seen)
    same = bool(np.allclose(again, honest, atol=1e-4))
    caught = "caught (SHA-256 mismatch), rebuilt" if seen.said("SHA-256") else "not reported"
    return same, f"{len(exports)} cached export(s) swapped for a constant graph: {caught}; " + (
        "embeddings unchanged" if same else "embeddings now come from the forged graph"
    )


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def said(self, text: str) -> bool:
        return any(text in m for m in self.messages)


def _embed(voices: Voices, path: Path) -> np.ndarray:
    with voices.open(path) as db:
        return db.embed([voices.query("alice"), voices.query("bob")])


def _constant_graph(dim: int) -> bytes:
    from onnx import TensorProto, helper

    value = helper.make_tensor("v", TensorProto.FLOAT, [1, dim], [1.0] * dim)
    node = helper.make_node("Constant", [], ["output"], value=value)
    graph = helper.make_graph(
        [node],
        "forged",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "n", 40])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, dim])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def confusable(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "names")
    refused = []
    for name in ("\u0430lice", "alice\u3164", "\uff41\uff4c\uff49\uff43\uff45", "alice\u00a0"):
        with voices.open(path) as db:
            try:
                db.enroll(name, [voices.query("bob")], force=True)
            except InvalidName:
                refused.append(ascii(name))
    with voices.open(path) as db:
        alice_clips = db.speaker("alice").n_utterances
    held = len(refused) == 4 and alice_clips == 3
    return held, f"refused {len(refused)} of 4 look-alikes; alice still has {alice_clips} clips"


def foreign_trigger(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "trigger")
    _sql(
        path,
        "CREATE TABLE shadow (name TEXT, template BLOB)",
        "CREATE TRIGGER keep AFTER DELETE ON speakers "
        "BEGIN INSERT INTO shadow VALUES (old.name, old.template); END",
    )
    try:
        with voices.open(path) as db:
            db.remove("bob")
    except SchemaError as exc:
        copied = _sql(path, "SELECT count(*) FROM shadow")[0][0]
        return copied == 0, f"refused on open ({str(exc)[len(str(path)) + 2 :][:70]}...)"
    return False, "opened; remove ran with the trigger in place"


def bad_settings(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "settings")
    refused = []
    for key, value in [("threshold", "-inf"), ("threshold", "nan"), ("threshold", "-1e308"),
                       ("threshold", "5"), ("margin_threshold", "-inf")]:  # fmt: skip
        _sql(path, f"INSERT OR REPLACE INTO settings VALUES ('{key}', '{value}')")
        try:
            with voices.open(path) as db:
                db.identify(voices.query("bob"))
        except DatabaseError:
            refused.append(f"{key}={value}")
        _sql(path, f"DELETE FROM settings WHERE key = '{key}'")
    return len(refused) == 5, f"stored {', '.join(refused) or 'nothing'} refused (of 5)"


def nan_clip(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "nan")
    con = sqlite3.connect(path)
    dim = len(con.execute("SELECT embedding FROM utterances LIMIT 1").fetchone()[0]) // 4
    con.close()
    nan = np.full(dim, np.nan, "<f4").tobytes().hex()
    _sql(path, f"UPDATE utterances SET embedding = x'{nan}' WHERE id = 1")
    try:
        with voices.open(path) as db:
            db.identify(voices.query("bob"), score_norm="asnorm")
    except DatabaseError as exc:
        return "clip 1" in str(exc), f"refused: {str(exc)[:80]}..."
    return False, "a NaN clip was scored"


def symlinks(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "links")
    index = path.with_name(path.name + ".faiss")
    lock = index.with_name(index.name + ".lock")
    target = folder / "victim"
    lock.unlink(missing_ok=True)
    lock.symlink_to(target)
    refused = 0
    for _ in range(2):
        try:
            with voices.open(path) as db:
                db.identify(voices.query("bob"))
        except DatabaseError:
            refused += 1
        lock.unlink()
        index.rename(folder / "elsewhere.faiss")
        index.symlink_to(folder / "elsewhere.faiss")
    held = refused == 2 and not target.exists()
    return held, f"{refused} of 2 planted links refused; link target created: {target.exists()}"


def remove_unwritable(voices: Voices, folder: Path) -> tuple[bool, str]:
    path = fresh(voices, folder, "remove")
    index = path.with_name(path.name + ".faiss")
    bob = _sql(path, "SELECT template FROM speakers WHERE name = 'bob'")[0][0]
    save = SpeakerIndex.save

    def refuse(*args: object) -> None:
        raise OSError(30, "Read-only file system")

    SpeakerIndex.save = refuse  # type: ignore[method-assign]
    try:
        with voices.open(path) as db:
            db.remove("bob")
    except DatabaseError as exc:
        return "rm " in str(exc), f"remove failed naming the fix: {str(exc)[:60]}..."
    finally:
        SpeakerIndex.save = save  # type: ignore[method-assign]
    kept = index.exists() and bob in index.read_bytes()
    return not kept, "remove with an unwritable index file; voiceprint left in it: " + str(kept)


def _sql(path: Path, *statements: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            rows = con.execute(statement).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


ATTACKS = [
    ("forged index", "alice's and bob's vectors swapped, checksum recomputed", swapped_index),
    ("forged index", "a payload size set to 8 GiB, checksum recomputed", oversized_index),
    ("poisoned model cache", "cached model artefact replaced", poisoned_cache),
    ("confusable name", "enroll look-alikes of 'alice' with bob's voice", confusable),
    ("hostile database", "AFTER DELETE trigger copying voiceprints, then remove", foreign_trigger),
    ("hostile database", "stored thresholds -inf, nan, -1e308, 5", bad_settings),
    ("hostile database", "a NaN clip embedding", nan_clip),
    ("symlink", "planted lock-file and index-file links", symlinks),
    ("remove", "index file cannot be rewritten", remove_unwritable),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["resemblyzer"], help="the real GE2E encoder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the warnings are expected; lines say what held
    with tempfile.TemporaryDirectory(prefix="redteam-") as tmp:
        folder = Path(tmp)
        os.environ["SPEAKERDB_CACHE_DIR"] = str(folder / "cache")
        voices = Voices(args.model)
        print(f"speakerdb red team ({voices.kind}) in {folder}")
        for attack, did, run in ATTACKS:
            attempt(attack, did, lambda run=run: run(voices, folder))
    print(f"{sum(RESULTS)} of {len(RESULTS)} defences held")
    sys.exit(0 if all(RESULTS) else 1)


if __name__ == "__main__":
    main()
