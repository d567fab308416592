"""Groups (issue 15) through the library and the CLI: membership, queries confined to a
group (identify, verify, segments), what stays the whole database's (the margin's best
other), removal, export and import. The storage's side is in test_storage_contract.py,
the service's (``group=``, keys bound to a group) in test_server_groups.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder
from test_lifecycle import cli, clip, write_clip
from typer.testing import Result

from speakerdb import GroupNotFound, InvalidName, Outcome, SpeakerDB, SpeakerNotFound

__all__ = ["cli"]  # the CLI fixture, on this module's database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SpeakerDB]:
    database = SpeakerDB(tmp_path / "speakers.db", encoder=FakeEncoder())
    database.enroll("alice", [clip("alice", 1), clip("alice", 2)], groups=["door-a"])
    database.enroll("bob", [clip("bob", 3)], groups=["door-a", "lab"])
    database.enroll("carol", [clip("carol", 4)])
    yield database
    database.close()


# -- membership ------------------------------------------------------------------------


def test_enroll_puts_speakers_in_groups_and_show_lists_them(db: SpeakerDB) -> None:
    assert db.speaker("bob").groups == ("door-a", "lab")
    assert db.speaker("carol").groups == ()
    made = db.enroll("dave", [clip("dave", 5)], groups=["lab"])
    assert made.speaker.groups == ("lab",)
    groups = {g.name: g.members for g in db.lifecycle.groups.list()}
    assert groups == {"door-a": ("alice", "bob"), "lab": ("bob", "dave")}


def test_add_and_remove_members_all_or_none(db: SpeakerDB) -> None:
    assert db.lifecycle.groups.add("door-a", ["carol", "alice"]) == 1
    with pytest.raises(SpeakerNotFound):
        db.lifecycle.groups.add("door-b", ["carol", "nobody"])
    assert [g.name for g in db.lifecycle.groups.list()] == ["door-a", "lab"]
    assert db.lifecycle.groups.remove("door-a", ["carol", "bob"]) == 2
    assert db.lifecycle.groups.get("door-a").members == ("alice",)
    with pytest.raises(InvalidName, match="a group name"):
        db.lifecycle.groups.add("door a", ["alice"])


def test_remove_opt_out_and_expiry_drop_memberships(db: SpeakerDB) -> None:
    db.remove("alice")
    db.lifecycle.opt_out("bob")
    assert {g.name: g.members for g in db.lifecycle.groups.list()} == {"door-a": (), "lab": ()}
    db.enroll("dave", [clip("dave", 5)], groups=["lab"], expires_at="2099-01-01")
    with db._storage.change() as change:  # the expiry passes
        change.set_metadata("dave", None, {}, db.speaker("carol").created_at)
    assert db.identify(clip("dave", 6), group="lab").matches == ()  # expired: deleted first
    assert db.lifecycle.groups.get("lab").members == ()


# -- queries confined to a group --------------------------------------------------------


def test_identify_in_a_group_names_only_its_members(db: SpeakerDB) -> None:
    everyone = db.identify(clip("carol", 9))
    assert everyone.speaker == "carol"
    door = db.identify(clip("carol", 9), group="door-a")
    assert {m.speaker for m in door.matches} <= {"alice", "bob"}
    assert door.speaker is None and door.group == "door-a"
    assert db.identify(clip("alice", 9), group="door-a").speaker == "alice"
    with pytest.raises(GroupNotFound, match=r"db\.lifecycle\.groups\.list\(\)"):
        db.identify(clip("alice", 9), group="door-b")


def test_the_margin_in_a_group_is_taken_over_the_whole_database(db: SpeakerDB) -> None:
    query = clip("bob", 9)
    everyone = db.identify(query, score_norm="margin", top_k=3)
    scores = {m.speaker: m.score for m in everyone.matches}
    lab = db.identify(query, score_norm="margin", group="lab")
    (bob,) = lab.matches
    best_other = max(s for name, s in scores.items() if name != "bob")
    # Not bob's lead over nobody (the group's only member): over everyone else.
    assert bob.normalized == pytest.approx(bob.score + (bob.score - best_other), abs=1e-6)
    assert bob.normalized == pytest.approx(
        next(m for m in everyone.matches if m.speaker == "bob").normalized
    )
    asnorm = db.identify(query, score_norm="asnorm", group="lab")
    assert [m.speaker for m in asnorm.matches] == ["bob"]


def test_verify_outside_the_group_is_rejected_with_the_reason(db: SpeakerDB) -> None:
    inside = db.verify("alice", clip("alice", 9), group="door-a")
    assert inside.accepted and inside.group == "door-a"
    outside = db.verify("carol", clip("carol", 9), group="door-a")
    assert outside.outcome is Outcome.REJECTED and not outside.accepted
    assert "not a member of group 'door-a'" in (outside.reason or "")
    assert outside.score >= outside.threshold  # the score would accept: the group rejects
    with pytest.raises(GroupNotFound):
        db.verify("alice", clip("alice", 9), group="door-b")


def test_segments_in_a_group_name_only_its_members(tmp_path: Path) -> None:
    from test_segments import OPTIONS, RATE, THRESHOLD, conversation, speech

    with SpeakerDB(tmp_path / "talk.db", encoder=FakeEncoder()) as db:
        db.enroll("alice", [(speech("alice", 3.0, seed=s), RATE) for s in (1, 2)], groups=["a"])
        db.enroll("bob", [(speech("bob", 3.0, seed=s), RATE) for s in (1, 2)])
        samples, _ = conversation([("alice", 4), ("bob", 4)])
        everyone = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD)
        assert [s.label for s in everyone] == ["alice", "bob"]
        door = db.segments((samples, RATE), options=OPTIONS, threshold=THRESHOLD, group="a")
        assert [s.label for s in door] == ["alice", "unknown-1"]


def test_export_and_import_carry_the_groups(db: SpeakerDB, tmp_path: Path) -> None:
    db.lifecycle.groups.add("empty", ["carol"])
    db.lifecycle.groups.remove("empty", ["carol"])
    db.lifecycle.export(tmp_path / "people.sdb")
    with SpeakerDB(tmp_path / "copy.db", encoder=FakeEncoder()) as copy:
        copy.lifecycle.import_archive(tmp_path / "people.sdb")
        assert copy.lifecycle.groups.list() != []
        assert [(g.name, g.members) for g in copy.lifecycle.groups.list()] == [
            (g.name, g.members) for g in db.lifecycle.groups.list()
        ]
        for who in ("alice", "carol"):
            for group in ("door-a", "lab"):
                a = db.identify(clip(who, 9), group=group, score_norm="margin")
                b = copy.identify(clip(who, 9), group=group, score_norm="margin")
                assert a.to_dict() == b.to_dict()


# -- the CLI ---------------------------------------------------------------------------


def test_the_group_commands(cli: Callable[..., Result], tmp_path: Path) -> None:
    done = cli("group", "add", "door-b", "carol", "alice", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["members"] == ["alice", "carol"]
    listed = cli("group", "list")
    assert listed.exit_code == 0 and "door-b\t2\talice, carol" in listed.stdout
    taken = cli("group", "remove", "door-b", "carol", "--json")
    assert taken.exit_code == 0 and json.loads(taken.stdout)["members"] == ["alice"]
    shown = cli("show", "alice")
    assert "groups: door-a, door-b" in shown.stdout
    missing = cli("group", "remove", "door-z", "carol")
    assert missing.exit_code == 2 and "speakerdb group list" in missing.stderr
    deleted = cli("group", "delete", "door-b", "--json")
    assert deleted.exit_code == 0 and json.loads(deleted.stdout)["name"] == "door-b"
    new = cli("enroll", "dave", write_clip(tmp_path, "dave", 5), "--group", "lab", "--group", "x")
    assert new.exit_code == 0, new.output
    assert "groups: lab, x" in cli("show", "dave").stdout


def test_queries_take_a_group_on_the_command_line(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    carol = write_clip(tmp_path, "carol", 9)
    found = cli("identify", carol, "--group", "door-a", "--json")
    assert found.exit_code == 0, found.output
    (answer,) = json.loads(found.stdout)
    assert answer["speaker"] is None and answer["group"] == "door-a"
    rejected = cli("verify", "carol", carol, "--group", "door-a")
    assert rejected.exit_code == 1 and "not a member of group 'door-a'" in rejected.stdout
    assert cli("verify", "carol", carol).exit_code == 0
    unknown = cli("identify", carol, "--group", "door-z")
    assert unknown.exit_code == 2 and "speakerdb group add door-z" in unknown.stderr


def test_a_group_search_on_ivf_finds_what_a_full_ranking_finds() -> None:
    """recall@10 within a group on the approximate index: small groups (whose members are
    mostly far from the query) and large ones, against a brute-force ranking."""
    from speakerdb.storage import SpeakerIndex
    from speakerdb.storage._indexkind import plan_for
    from speakerdb.storage._marks import Members

    rng = np.random.default_rng(5)
    n, dim = 3000, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = SpeakerIndex(dim, np.arange(n) + 1, vectors, plan_for("ivf", n))
    assert index.plan.kind == "ivf" and index.nprobe < index.plan.nlist
    queries = vectors[rng.integers(0, n, 40)] + 0.5 * rng.standard_normal((40, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    groups = {
        "one": [7],
        "few": [3, 90, 301, 2555],
        "half": list(range(0, n, 2)),
        "most": [i for i in range(n) if i % 10],
    }
    for group, rows in groups.items():
        exact = np.asarray(rows)[np.argsort(-(queries @ vectors[rows].T), axis=1)[:, :10]] + 1
        for batch in (queries, queries[:3]):  # FAISS's batch, and a few queries
            (_, found), _ = index.search_within(batch, 10, Members(np.asarray(rows) + 1))
            hits = sum(len(set(a) & set(b)) for a, b in zip(exact, found, strict=False))
            assert hits / exact[: len(batch)].size >= 0.99, group


def test_a_key_is_bound_to_an_existing_group(db: SpeakerDB, cli: Callable[..., Result]) -> None:
    key, secret = db.keys.create("door", "query", group="door-a")
    assert key.group == "door-a" and db.keys.check(secret) == key
    with pytest.raises(GroupNotFound):
        db.keys.create("door-z", "query", group="door-z")
    made = cli("key", "create", "ops", "--scope", "admin", "--group", "door-a")
    assert made.exit_code == 2 and "only a query key" in made.stderr
    listed = cli("key", "list")
    assert "door\tquery" in listed.stdout and "group door-a" in listed.stdout
