"""The fresh-voices evaluation's pure parts, on fake data: which ktuberling clips make a
voice, how a voice's clips are split, which populations a probe faces, and the clear
exit when the voices are not built (scripts/fresh_voices.py,
scripts/eval_open_set_fresh.py; the evaluation itself needs apt and is not run here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import eval_open_set as eos
import eval_open_set_fresh as fresh
import fresh_voices

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def rows(durations: list[float], voice: str = "ktuberling-xx") -> list[dict[str, str]]:
    return [
        {"path": f"/v/{voice}/{k:03d}.wav", "speaker_id": voice, "duration_s": f"{d:.3f}"}
        for k, d in enumerate(durations)
    ]


def test_items_join_consecutive_clips_until_3_s_and_use_every_clip_once() -> None:
    clips = rows([0.8, 0.9, 1.4, 0.7, 2.5, 0.6, 0.9])
    items = fresh.joined(list(reversed(clips)))
    assert [r for item in items for r in item] == clips  # path order, each clip once
    assert all(sum(float(r["duration_s"]) for r in item) >= 3.0 for item in items)
    assert [len(item) for item in items] == [3, 4]  # the 1.5 s remainder joins the last
    assert fresh.joined(rows([0.7, 0.8])) == [rows([0.7, 0.8])]


def test_a_voice_enrolls_3_seeded_clips_of_1_s_and_queries_with_the_rest() -> None:
    clips = rows([0.6 + 0.1 * (k % 9) for k in range(40)])
    split = fresh.split_voice(clips, seed=7)
    assert split == fresh.split_voice(list(reversed(clips)), seed=7)
    assert len(split.enroll) == 3
    assert all(float(r["duration_s"]) >= 1.0 for r in split.enroll)
    assert sorted(r["path"] for r in split.enroll + split.queries) == [r["path"] for r in clips]
    assert [r for item in split.items for r in item] == split.queries
    assert fresh.split_voice(clips, seed=8).enroll != split.enroll
    few = fresh.split_voice(rows([0.6, 0.7, 1.2, 0.8]), seed=7)
    assert len(few.enroll) == 3 and len(few.queries) == 1


def test_a_stranger_never_faces_its_own_voice_and_an_enrolled_probe_always_does() -> None:
    pool = [f"v{k}" for k in range(12)]
    for n in (3, 6, 11):
        strangers = eos.drawn_populations("v0", pool, n, True, 1234, 8)
        enrolled = eos.drawn_populations("v0", pool, n, False, 1234, 8)
        assert strangers and enrolled
        assert all(len(p) == n and "v0" not in p for p in strangers)
        assert all(len(p) == n and "v0" in p for p in enrolled)
        assert len(set(strangers)) == len(strangers)
        assert strangers == eos.drawn_populations("v0", list(reversed(pool)), n, True, 1234, 8)
    assert eos.drawn_populations("v0", pool, 12, True, 1234, 8) is None
    assert eos.drawn_populations("v0", pool, 11, True, 1234, 8) == [tuple(sorted(pool[1:]))]


def write(path: Path, rate: int, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = 0.1 * np.sin(np.arange(rate) * 0.05)
    sf.write(path, np.stack([tone] * channels, axis=1), rate)


def test_a_voice_keeps_the_old_playgrounds_in_its_main_format(tmp_path: Path) -> None:
    """French files are named in French: the theme's sound name says which are new."""
    sounds = tmp_path / "sounds"
    theme = {
        "ball": "fr/patate_ballon.wav",
        "egypt_camel": "fr/egypte_chameau.wav",
        "moon_star": "fr/lune_etoile.wav",
        "pizzeria_olive": "fr/pizzeria_olive.wav",
        "hat": "fr/patate_chapeau.wav",
        "xmas_star": "fr/noel_etoile.wav",
        "butterflies_wing": "fr/papillons_ailes.wav",
        "frier-tux": "fr/robin_Tux-le-frere.wav",
        "tux-vase": "fr/robin_vase.wav",
        "tv_car": "fr/tv_voiture.wav",
        "robot_workshop_eye": "fr/robot_oeil.wav",
    }
    for name, file in theme.items():
        write(sounds / file, 8000 if name == "hat" else 44100, 1)
    write(sounds / "fr" / "chapeau.wav", 44100, 1)  # not in the theme: left out
    body = "".join(f'<sound name="{n}" file="{f}" />' for n, f in theme.items())
    (sounds / "fr.soundtheme").write_text(f'<language code="fr">{body}</language>')
    # The shared builder's KT_NEW_THEMES, copied: a clean clone's CI may have no ../shared.
    pattern = r"^(tv|tux|xmas|robot|butterflies|robin)[_-]|-tux\."
    kept = fresh_voices.kept_sounds(sounds, "fr", pattern)
    assert sorted(s.path.name for s in kept) == [
        "egypte_chameau.wav",
        "lune_etoile.wav",
        "patate_ballon.wav",
        "pizzeria_olive.wav",
    ]


def test_the_evaluation_says_how_to_build_missing_voices(tmp_path: Path) -> None:
    env = dict(os.environ, SPEAKERDB_FRESH=str(tmp_path / "none"))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "eval_open_set_fresh.py"), "--shipped"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "python scripts/fresh_voices.py" in done.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("missing", [True, False])
def test_check_reports_whether_the_voices_are_built(tmp_path: Path, missing: bool) -> None:
    if not missing:
        (tmp_path / "manifest.csv").write_text("path,speaker_id,source,duration_s,lang\n")
    env = dict(os.environ, SPEAKERDB_FRESH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "fresh_voices.py"), "--check"], env=env, timeout=120
    )
    assert done.returncode == (1 if missing else 0)
