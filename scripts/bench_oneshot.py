#!/usr/bin/env python3
"""One-shot latency: ``speakerdb verify NAME clip.wav`` as a fresh process, 3 s clip.

    python scripts/bench_oneshot.py               # builds the default architecture, random
    python scripts/bench_oneshot.py --model DIR --runs 9

A door controller starts one process per visitor, so what counts is the wall time
of the whole command. The model is the default model's architecture with random
weights (scripts/bench_encoder.py builds it), enrolled once through the CLI, which
also builds and caches its ONNX export. Then, interleaved, the same command runs
with the default backend (ONNX Runtime, no torch import) and with
``SPEAKERDB_BACKEND=torch`` (the transformers path as before) and with
``SPEAKERDB_BACKEND=openvino-bf16`` (the fast path; its bf16 check falls back
to the default where OpenVINO or bf16 is missing), and floors for
reference: the interpreter alone, and importing the CLI.

The breakdown comes from one run under ``-X importtime`` (what each top-level
package costs to import) and one under cProfile (where the rest goes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encoder import RATE, build_model, corpus_rows, fast_paths

PROFILE_PROBE = """
import cProfile, json, pstats, runpy, sys
wanted = json.loads(sys.argv[2])
sys.argv = ["speakerdb", *json.loads(sys.argv[1])]
profile = cProfile.Profile()
profile.enable()
try:
    runpy.run_module("speakerdb", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
profile.disable()
found = {}
for (path, _, name), row in pstats.Stats(profile).stats.items():
    for label, (suffix, function) in wanted.items():
        if path.endswith(suffix) and name == function:
            found[label] = found.get(label, 0.0) + row[3]
sys.stderr.write("\\nPROFILE " + json.dumps(found) + "\\n")
"""

# What the breakdown shows: label -> (file suffix, function), cumulative time.
STAGES = {
    "open the database (SpeakerDB())": ("speakerdb/service.py", "__init__"),
    "model identity (config, revision)": ("speakerdb/model_files.py", "locate_model"),
    "ONNX Runtime session": ("onnxruntime_inference_collection.py", "_create_inference_session"),
    "decode + resample the clip": ("speakerdb/audio.py", "to_clip"),
    "embed (3 s, ONNX Runtime)": ("speakerdb/onnx_encoder.py", "encode"),
    "audit log write": ("speakerdb/audit.py", "log_verification"),
}
PACKAGES = (
    "numpy",
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "onnxruntime",
    "typer",
    "pydantic",
    "soundfile",
    "soxr",
    "speakerdb._facade",
    "speakerdb.cli._app",
)


def write_clips(folder: Path) -> tuple[list[Path], Path]:
    """Two enrollment clips and a 3.0 s query of one corpus speaker (synthetic without it)."""
    from speakerdb.audio import load_clip

    rows = [r for r in corpus_rows("manifest") if float(r["duration_s"]) >= 3.0]
    speaker = rows[0]["speaker_id"] if rows else None
    mine = [r["path"] for r in rows if r["speaker_id"] == speaker][:3]
    import soundfile as sf

    paths = []
    for i in range(3):
        if len(mine) == 3:
            samples = load_clip(mine[i]).samples
        else:
            t = np.arange(4 * RATE) / RATE
            samples = (0.3 * np.sin(2 * np.pi * (120 + i) * t)).astype(np.float32)
        paths.append(folder / f"clip{i}.wav")
        sf.write(paths[-1], samples[: 3 * RATE] if i == 2 else samples, RATE)
    return paths[:2], paths[2]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return took, cpu


def import_breakdown(command: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command[1:]], env=env, capture_output=True, text=True
    )
    costs: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.strip() in PACKAGES:
            # wherever a package is first imported, that line holds its whole cost
            top = name.strip()
            costs[top] = max(costs.get(top, 0.0), int(cumulative) / 1e6)
    return costs


def profile_breakdown(args: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROFILE_PROBE, json.dumps(args), json.dumps(STAGES)],
        env=env,
        capture_output=True,
        text=True,
    )
    found: dict[str, float] = json.loads(done.stderr.rsplit("PROFILE ", 1)[1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a saved x-vector model folder (default: build one)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "0"}
        env.setdefault("SPEAKERDB_CACHE_DIR", str(folder / "cache"))
        model = args.model or str(build_model(folder / "model"))
        enroll, query = write_clips(folder)
        db = str(folder / "speakers.db")
        cli = [sys.executable, "-m", "speakerdb"]
        start = time.perf_counter()
        subprocess.run(
            [*cli, "enroll", "--db", db, "--model", model, "alice", *map(str, enroll)],
            env=env,
            check=True,
            capture_output=True,
        )
        took = time.perf_counter() - start
        print(f"first enrollment (loads torch, exports to ONNX): {took:.1f} s")
        verify = [*cli, "verify", "--db", db, "alice", str(query)]
        commands = {
            "verify (default: onnx)": (verify, env),
            "verify (SPEAKERDB_BACKEND=torch)": (verify, {**env, "SPEAKERDB_BACKEND": "torch"}),
            "python -c pass": ([sys.executable, "-c", "pass"], env),
            "import speakerdb.cli": ([sys.executable, "-c", "import speakerdb.cli"], env),
        }
        if "openvino-bf16" in fast_paths():  # its compile cache is warmed below
            fast = {**env, "SPEAKERDB_BACKEND": "openvino-bf16"}
            commands["verify (SPEAKERDB_BACKEND=openvino-bf16)"] = (verify, fast)
        for command, how in commands.values():
            timed(command, how)  # warm the page cache
        walls: dict[str, list[float]] = {label: [] for label in commands}
        cpus: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, (command, how) in commands.items():
                wall, cpu = timed(command, how)
                walls[label].append(wall)
                cpus[label].append(cpu)
        print(f"\nwall time of a fresh process, {args.runs} interleaved runs, 3.0 s clip")
        print("(CPU: user + system seconds of all its threads, less sensitive to a busy machine)")
        for label, values in walls.items():
            middle, cpu = statistics.median(values), statistics.median(cpus[label])
            fastest = min(values)
            print(f"  {label:42s} median {middle:6.3f} s  min {fastest:6.3f} s  CPU {cpu:6.3f} s")
        onnx, torch_ = (statistics.median(walls[k]) for k in list(walls)[:2])
        print(f"  speed-up of the whole command: {torch_ / onnx:.1f}x")
        print(f"  load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        print("\nimports (one run, -X importtime, cumulative):")
        for name, cost in sorted(import_breakdown(verify, env).items(), key=lambda kv: -kv[1]):
            print(f"  {name:34s} {cost:6.3f} s")
        print("\nstages (one run under cProfile, which slows Python code a little):")
        for label, cost in profile_breakdown(verify[3:], env).items():
            print(f"  {label:34s} {cost:6.3f} s")


if __name__ == "__main__":
    main()
