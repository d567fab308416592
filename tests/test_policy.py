"""The decision policy: one resolver, its precedence table, the score and encoder
registries, and results that carry the policy that decided them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import InputError, SpeakerDB
from speakerdb._stored import StoredSettings
from speakerdb.decision import PolicySources, _scores, resolve_policy
from speakerdb.decision._policy import for_duration, sized
from speakerdb.encoders import _registry, encode_windowed
from speakerdb.encoders._registry import family_of
from speakerdb.errors import DatabaseError
from speakerdb.types import DecisionPolicy, Identification, Match, Verification

GE2E = "resemblyzer"
XVEC = "microsoft/unispeech-sat-base-plus-sv"
OTHER = "some/model"


def clip(pitch: float, seed: int) -> tuple[np.ndarray, int]:
    return voice(pitch, seed=seed), 16000


def sources(
    model: str = OTHER,
    stored: dict[str, str] | None = None,
    arg: float | None = None,
    env: str | None = None,
) -> PolicySources:
    environ = {} if env is None else {"SPEAKERDB_THRESHOLD": env}
    return PolicySources(model, StoredSettings.parse(stored or {}), arg, environ)


# -- the precedence table -----------------------------------------------------

# (model, stored settings, constructor threshold, environment, query threshold,
#  query score) -> (score, threshold, source)
BY_OTHER, BY_GE2E, BY_XVEC = (f"default for {m}" for m in (OTHER, GE2E, XVEC))
PRECEDENCE = [
    # defaults of the model's family
    (OTHER, {}, None, None, None, None, ("none", 0.7, BY_OTHER)),
    (XVEC, {}, None, None, None, None, ("none", 0.89, BY_XVEC)),
    # identify's margin-duration default follows N; with N not known, its strictest
    (GE2E, {}, None, None, None, None, ("margin-duration", 0.9048, BY_GE2E)),
    # a cosine threshold from any source makes a database that never chose decide by cosine
    (GE2E, {"threshold": "0.6"}, None, None, None, None, ("none", 0.6, "database")),
    (GE2E, {}, None, "0.65", None, None, ("none", 0.65, "environment")),
    (GE2E, {}, 0.8, None, None, None, ("none", 0.8, "argument")),
    (GE2E, {}, None, None, 0.5, None, ("none", 0.5, "argument")),
    # argument over environment over database
    (OTHER, {"threshold": "0.6"}, 0.8, "0.65", None, None, ("none", 0.8, "argument")),
    (OTHER, {"threshold": "0.6"}, None, "0.65", None, None, ("none", 0.65, "environment")),
    (OTHER, {"threshold": "0.6"}, 0.8, "0.65", 0.3, None, ("none", 0.3, "argument")),
    # a threshold from 2 or 3 is the chosen score's threshold: the precedence holds for it
    (GE2E, {"score_norm": "margin"}, 0.8, "0.65", None, None, ("margin", 0.8, "argument")),
    (GE2E, {"score_norm": "margin", "margin_threshold": "0.9"}, None, "0.65", None, None,
     ("margin", 0.65, "environment")),
    (GE2E, {"score_norm": "asnorm", "asnorm_threshold": "2"}, None, "2.5", None, None,
     ("asnorm", 2.5, "environment")),
    (GE2E, {"score_norm": "margin"}, None, None, None, None, ("margin", 0.998, BY_GE2E)),
    # each operation reads its own stored threshold, else the one stored for both
    (OTHER, {"score_norm": "margin", "margin_threshold": "0.8", "threshold:identify:margin":
     "0.9"}, None, None, None, None, ("margin", 0.9, "database")),
    (OTHER, {"threshold": "0.6", "threshold:verify:none": "0.5"}, None, None, None, None,
     ("none", 0.6, "database")),
    (OTHER, {"score_norm": "margin"}, None, None, None, None, ("margin", 0.7, BY_OTHER)),
    (OTHER, {"score_norm": "asnorm"}, None, None, None, None, ("asnorm", 1.35, BY_OTHER)),
    (OTHER, {"score_norm": "asnorm", "asnorm_threshold": "2.5"}, None, None, None, None,
     ("asnorm", 2.5, "database")),
    (OTHER, {"score_norm": "asnorm"}, None, None, 3.0, None, ("asnorm", 3.0, "argument")),
    # a query's score beats the database's; its threshold with it
    (OTHER, {"score_norm": "asnorm"}, None, None, None, "none", ("none", 0.7, BY_OTHER)),
    (OTHER, {"threshold": "0.6"}, None, None, None, "margin", ("margin", 0.7, BY_OTHER)),
    (OTHER, {"margin_threshold": "0.9"}, None, None, 0.4, "margin", ("margin", 0.4, "argument")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "stored", "arg", "env", "threshold", "score_norm", "expected"), PRECEDENCE
)
def test_precedence_table(
    model: str,
    stored: dict[str, str],
    arg: float | None,
    env: str | None,
    threshold: float | None,
    score_norm: str | None,
    expected: tuple[str, float, str],
) -> None:
    policy = resolve_policy(sources(model, stored, arg, env), threshold, score_norm)
    assert (policy.score_norm, policy.threshold, policy.source) == expected
    # The flag is set where the defaults are resolved, and only there.
    assert policy.builtin_default == (expected[2] == f"default for {model}")


def test_only_the_builtin_default_is_sized_whatever_a_source_says() -> None:
    curve = family_of(GE2E).identify_curves["margin-duration"]
    default = resolve_policy(sources(GE2E))
    assert default.builtin_default and default.threshold == curve.at(None)
    assert sized(default, GE2E, 500).threshold == curve.at(500) != curve.at(None)
    # A stored threshold whose source text happens to read like the default's is kept.
    stored = {"score_norm": "margin-duration", "threshold:identify:margin-duration": "0.95"}
    kept = resolve_policy(sources(GE2E, stored))
    assert (kept.threshold, kept.source, kept.builtin_default) == (0.95, "database", False)
    lookalike = replace(kept, source=f"default for {GE2E}")
    assert sized(lookalike, GE2E, 500) == lookalike
    # So is a policy rebuilt from a result's JSON document, which leaves the flag out:
    # the document is what it was before the flag.
    document = default.to_dict()
    assert list(document) == [
        "score_norm",
        "threshold",
        "source",
        "top_n",
        "notice",
        "duration_fall",
        "duration_s",
    ]
    rebuilt = DecisionPolicy(**document)
    assert sized(rebuilt, GE2E, 500) == rebuilt


def test_the_environment_sets_the_threshold_of_the_score_that_decides() -> None:
    chosen = sources(GE2E, {"score_norm": "margin-duration", "threshold": "0.5"}, env="0.66")
    assert chosen.cosine_threshold() == (0.66, "environment")
    policy = resolve_policy(chosen)
    assert (policy.score_norm, policy.threshold, policy.source) == (
        "margin-duration",
        0.66,
        "environment",
    )
    for operation in ("identify", "verify"):
        assert resolve_policy(chosen, operation=operation).threshold == 0.66


def test_per_operation_thresholds() -> None:
    stored = {"score_norm": "margin", "threshold:verify:margin": "0.95"}
    assert resolve_policy(sources(stored=stored), operation="verify").threshold == 0.95
    assert resolve_policy(sources(stored=stored), operation="identify").source == BY_OTHER
    with pytest.raises(InputError, match="identify or verify"):
        resolve_policy(sources(), operation="enroll")


@pytest.mark.parametrize(
    ("stored", "env", "fragment"),
    [
        ({}, "1.7", "a cosine in [-1, 1], got '1.7'; set SPEAKERDB_THRESHOLD"),
        ({}, "abc", "not a number: 'abc'; set SPEAKERDB_THRESHOLD"),
        ({}, "nan", "SPEAKERDB_THRESHOLD"),
        ({}, "-inf", "SPEAKERDB_THRESHOLD"),
        ({"score_norm": "margin"}, "5", "a margin threshold in [-3, 3], got '5'"),
        ({"score_norm": "asnorm"}, "inf", "SPEAKERDB_THRESHOLD"),
        ({"score_norm": "asnorm"}, "abc", "not a number"),
        ({"score_norm": "margin-duration"}, "nan", "SPEAKERDB_THRESHOLD"),
    ],
)
def test_a_bad_environment_threshold_is_refused_whatever_decides(
    stored: dict[str, str], env: str, fragment: str
) -> None:
    with pytest.raises(InputError) as caught:
        resolve_policy(sources(GE2E, stored, env=env))
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("score", "bad"), [("none", 1.5), ("margin", -3.5), ("asnorm", 81.4), ("margin", "x")]
)
def test_a_bad_query_threshold_is_refused_for_its_score(score: str, bad: object) -> None:
    with pytest.raises(InputError, match=r"threshold given .*; give threshold= a number within"):
        resolve_policy(sources(), bad, score)  # type: ignore[arg-type]


def test_a_stored_threshold_out_of_its_scores_bounds_is_a_damaged_database() -> None:
    stored = sources(stored={"score_norm": "margin", "threshold:verify:margin": "7"})
    with pytest.raises(DatabaseError, match=r"--score-norm margin --for verify"):
        resolve_policy(stored, operation="verify")
    with pytest.raises(DatabaseError, match=r"'threshold:verify:none'"):
        StoredSettings.parse({"threshold:verify:none": "1.5"})
    with pytest.raises(DatabaseError, match=r"'threshold:enroll:none'"):
        StoredSettings.parse({"threshold:enroll:none": "0.5"})


def test_a_bare_cosine_threshold_says_so_in_the_policy() -> None:
    for given in (sources(GE2E, env="0.8"), sources(GE2E, arg=0.8)):
        policy = resolve_policy(given)
        assert policy.score_norm == "none"
        assert policy.notice is not None and "not margin-duration" in policy.notice
    assert resolve_policy(sources(GE2E, {"score_norm": "none"}, env="0.8")).notice is None
    assert resolve_policy(sources(OTHER, env="0.8")).notice is None  # its default anyway


def test_cohort_size_and_unknown_scores() -> None:
    assert sources(stored={"asnorm_top_n": "7"}).score("asnorm") == ("asnorm", 7)
    with pytest.raises(InputError, match="must be one of none, asnorm, margin"):
        resolve_policy(sources(), score_norm="bogus")


def test_stored_settings_parse_once_and_name_a_bad_value() -> None:
    stored = StoredSettings.parse(
        {"threshold": "0.5", "margin-duration_threshold": "0.7", "generation": "4", "x": "y"}
    )
    assert stored.threshold == 0.5 and stored.generation == 4
    assert stored.norm_threshold("margin-duration") == 0.7
    assert stored.norm_threshold("asnorm") is None and stored.score_norm is None
    with pytest.raises(DatabaseError, match=r"'threshold' holds 'high'.*set-threshold"):
        StoredSettings.parse({"threshold": "high"})


def test_the_policy_holds_the_decision_rule() -> None:
    policy = DecisionPolicy("none", 0.5, "argument")
    assert policy.accepts(0.5) and not policy.accepts(0.4999)
    # A result built without a policy (as before) decides by its own fields.
    assert Identification(None, (Match("a", 0.5),), 0.5).accepted
    assert not Verification("a", None, 0.9, 0.5, normalized=0.4, score_norm="margin").accepted


# -- results carry their policy -------------------------------------------------


def test_results_carry_the_policy_that_decided(tmp_path: Path) -> None:
    with SpeakerDB(tmp_path / "p.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip(120, 1), clip(120, 2)])
        found = db.identify(clip(120, 3), threshold=0.4)
        assert found.policy == DecisionPolicy("none", 0.4, "argument", 50)
        assert found.decided_by is found.policy
        checked = db.verify("alice", clip(120, 3), score_norm="margin")
        assert checked.policy is not None and checked.policy.score_norm == "margin"
        assert checked.policy.source == "default for fake-encoder"
        assert checked.threshold == checked.policy.threshold


# -- a new score normalisation is one class and one registry entry --------------


class Shifted(_scores.ScoreNorm):
    """A made-up score: the cosine plus 1, so a 0.4 cosine reaches a 1.3 threshold."""

    name = "shifted"
    meaning = "cosine plus one"

    def default_threshold(self, family: _registry.EncoderFamily, model: str) -> float:
        return 1.3

    def rescore(self, matches: tuple[Match, ...], duration_s: float | None) -> tuple[Match, ...]:
        return tuple(Match(m.speaker, m.score, m.score + 1.0) for m in matches)

    def claim(
        self, name: str, score: float, nearest: tuple[Match, ...], duration_s: float | None
    ) -> float | None:
        return score + 1.0

    def matrix(self, cosines: _scores.Cosines) -> np.ndarray:
        return np.asarray(cosines.raw, dtype=np.float64) + 1.0


@pytest.fixture
def shifted(monkeypatch: pytest.MonkeyPatch) -> _scores.ScoreNorm:
    monkeypatch.setattr(_scores, "_REGISTRY", dict(_scores._REGISTRY))  # undone after the test
    return _scores.register(Shifted())


def test_a_registered_normalisation_works_end_to_end(
    tmp_path: Path, shifted: _scores.ScoreNorm
) -> None:
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip(120, 1), clip(120, 2)])
        db.enroll("bob", [clip(220, 1)])
        found = db.identify(clip(120, 3), score_norm="shifted")
        assert found.score_norm == "shifted" and found.threshold == 1.3
        assert found.best is not None and found.best.speaker == "alice"
        assert found.best.normalized == pytest.approx(found.best.score + 1.0)
        assert found.accepted == (found.best.score + 1.0 >= 1.3)
        # Chosen for good, with a threshold of its own, it decides every query.
        db.set_score_norm("shifted")
        assert db.set_threshold(1.05, score_norm="shifted") == 1.05
        assert db.decision() == ("shifted", 50, 1.05)
        checked = db.verify("alice", clip(120, 3))
        assert checked.normalized == pytest.approx(checked.score + 1.0)
        assert checked.policy == DecisionPolicy("shifted", 1.05, "database", 50)
        assert db.info().score_norm == "shifted" and db.info().score_norm_threshold == 1.05


# -- encoder families -------------------------------------------------------------


def test_encoder_family_defaults() -> None:
    ge2e, xvec = _registry.family_of(GE2E), _registry.family_of(XVEC)
    assert isinstance(ge2e, _registry.GE2EFamily) and isinstance(xvec, _registry.XVectorFamily)
    assert _registry.family_of(OTHER) is xvec  # the x-vector family takes the rest
    assert (ge2e.threshold(GE2E), ge2e.default_score, ge2e.window_s) == (
        0.75,
        "margin-duration",
        None,
    )
    # Measured on fold A of scripts/eval_open_set.py (the decision defaults, cosine's too).
    assert dict(ge2e.score_thresholds) == {
        "none": 0.813,
        "margin": 0.998,
        "margin-duration": 0.896,  # scripts/eval_speech_span.py
        "asnorm": 3.35,  # scripts/eval_asnorm_cohort.py, cohorts of 3 voices or more
    }
    assert (xvec.threshold(XVEC), xvec.default_score, xvec.window_s) == (0.89, "none", 30.0)
    assert xvec.threshold(OTHER) == 0.7 and xvec.measured_threshold(OTHER) is None
    assert ge2e.normalize(GE2E) == GE2E and xvec.normalize(XVEC) == XVEC


def test_a_local_model_folder_is_recorded_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _registry.family_of("model").normalize("model") == str((tmp_path / "model").resolve())


def test_a_new_family_brings_its_own_defaults_and_windowing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Whole(_registry.EncoderFamily):
        name = "whole"
        measured_thresholds = MappingProxyType({"fake-encoder": 0.42})
        default_score = "margin"
        score_thresholds = MappingProxyType({"margin": 0.5})
        window_s = None

        def claims(self, model: str) -> bool:
            return model == "fake-encoder"

    monkeypatch.setattr(_registry, "FAMILIES", (Whole(), *_registry.FAMILIES))
    assert resolve_policy(sources("fake-encoder")).score_norm == "margin"
    assert resolve_policy(sources("fake-encoder")).threshold == 0.5
    assert sources("fake-encoder").cosine_threshold() == (0.42, "default for fake-encoder")

    class Counting(FakeEncoder):
        def encode(self, clips):  # type: ignore[no-untyped-def]
            assert len(clips) == 1 and len(clips[0]) == 16000 * 40  # never cut into windows
            return super().encode(clips)

    encode_windowed(Counting(), [np.zeros(16000 * 40, dtype=np.float32) + 0.1])
    with SpeakerDB(tmp_path / "w.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [clip(120, 1)])
        assert db.identify(clip(120, 2)).score_norm == "margin"


def test_only_the_builtin_identify_default_falls_with_duration() -> None:
    """for_duration takes a falling default at one query's duration (N first, then the
    duration); a stored, given or verify threshold, or an unknown duration, is kept."""
    curve = family_of(GE2E).identify_curves["margin-duration"]
    default = sized(resolve_policy(sources(GE2E)), GE2E, 6)
    assert default.duration_fall == curve.fall > 0
    at_4 = for_duration(default, 4.0)
    assert (at_4.threshold, at_4.duration_s) == (curve.at(6, 4.0), 4.0) and at_4.threshold < 0.9
    assert for_duration(default, 0.2).threshold == curve.at(6)  # clamped to 0.5 s
    assert for_duration(default, 60.0).threshold == curve.at(6, 30.0)  # and to 30 s
    assert for_duration(default, None) == default
    stored = {"score_norm": "margin-duration", "threshold:identify:margin-duration": "0.95"}
    for policy in (
        resolve_policy(sources(GE2E, stored)),
        resolve_policy(sources(GE2E), 0.8, "margin-duration"),
        resolve_policy(sources(GE2E, env="0.8"), score_norm="margin-duration"),
        resolve_policy(sources(GE2E), operation="verify"),
    ):
        assert policy.duration_fall == 0.0
        assert for_duration(policy, 10.0) == policy
