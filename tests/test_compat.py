"""The facade's shape: a small public surface, and old member names that keep working."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, voice

from speakerdb import AuditSettings, DecisionPolicy, SpeakerDB
from speakerdb._compat import OLD_MEMBERS


@pytest.fixture
def db(tmp_path: Path):
    with SpeakerDB(tmp_path / "s.db", encoder=FakeEncoder()) as database:
        database.enroll("alice", [(voice(150, seed=1), 16000), (voice(150, seed=2), 16000)])
        database.enroll("bob", [(voice(230, seed=3), 16000), (voice(230, seed=4), 16000)])
        yield database


def public_members() -> list[str]:
    return [name for name, _ in inspect.getmembers(SpeakerDB) if not name.startswith("_")]


def test_speakerdb_has_at_most_25_public_members_and_no_base_classes() -> None:
    # 23 after the redesign; then segments, segments_stream and segments_live (the push
    # form the service's stream needs); remove_utterance moved to db.lifecycle.
    # Administration goes in sub-objects (db.index, db.audit, db.cohort, db.lifecycle,
    # db.keys, db.guards), not here.
    assert len(public_members()) <= 25, public_members()
    assert SpeakerDB.__mro__ == (SpeakerDB, object)
    assert not set(OLD_MEMBERS) & set(public_members())


@pytest.mark.parametrize("name", sorted(OLD_MEMBERS))
def test_every_old_name_still_works_with_a_warning_naming_the_new_one(
    db: SpeakerDB, name: str
) -> None:
    instead = OLD_MEMBERS[name][0]
    with pytest.warns(DeprecationWarning, match=f"SpeakerDB.{name} is deprecated; use"):
        member = getattr(db, name)
    assert member is not None
    assert instead


def test_old_names_give_what_they_gave(db: SpeakerDB) -> None:
    with pytest.warns(DeprecationWarning):
        cosine = db.policy(score_norm="none")
        assert db.threshold() == (cosine.threshold, cosine.source)
        assert db.decision(0.5) == ("none", db.policy().top_n, 0.5)
        assert db.score_norm() == (db.policy().score_norm, db.policy().top_n)
        assert db.decision_threshold() == db.policy().threshold
        assert db.population().names == ("alice", "bob")
        assert db.set_audit(True) == AuditSettings(True, 30, 100_000)
        assert db.audit_settings() == db.audit.settings()
        db.verify("alice", (voice(150, seed=5), 16000))
        assert [e.claimed for e in db.audit_log(limit=5)] == ["alice"]
        assert db.clear_audit() == 1
        assert db.rebuild_index() == 2
        assert db.index_path == db.index.path
        assert db.index_choice() == db.index.choice()
        assert db.set_index_kind("flat").kind == "flat"
        assert len(db.current_index()) == 2
        assert db.discard_if_unused() is False
        assert db.remove_utterance(db.utterances("bob")[0].id).n_utterances == 1


def test_an_unknown_name_is_an_attribute_error(db: SpeakerDB) -> None:
    with pytest.raises(AttributeError, match="identfy"):
        db.identfy  # noqa: B018
    assert not hasattr(db, "_storage_of_another_kind")


def test_results_carry_the_policy_that_decided_them(db: SpeakerDB) -> None:
    policy = db.policy(threshold=0.5)
    assert isinstance(policy, DecisionPolicy)
    result = db.identify((voice(150, seed=9), 16000), threshold=0.5)
    assert result.policy == policy
    assert result.accepted == policy.accepts(result.best.score)
    assert np.isclose(result.threshold, 0.5)


def test_close_can_discard_a_database_it_created_and_never_used(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SpeakerDB(path, encoder=FakeEncoder()).close(discard_if_empty=True)
    assert not path.exists()
