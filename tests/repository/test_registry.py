"""The registry: several models and versions at once, version policies, aliases from the database,
broken versions that never take the others down, reloads that keep what did not change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.aliases import set_alias
from service.db.engine import make_engine, make_sessionmaker
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.repository.policy import PolicyError, VersionPolicy, parse_policy
from service.repository.registry import Registry
from service.repository.runtime import Batched
from tests.testdata.tiny_models import write_linear, write_sklearn


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for v in (1, 2, 3):
        write_linear(root, "tiny", v, temperature=float(v))
    write_sklearn(root, "iris", 1)
    return root


def _write_config(root: Path, model: str, policy: object) -> None:
    (root / model / "config.json").write_text(json.dumps({"version_policy": policy}))


# ---- version policy (pure) ------------------------------------------------------------------------
@pytest.mark.parametrize("config, expected", [
    ({}, [1, 2, 3, 5]),
    ({"version_policy": {"all": {}}}, [1, 2, 3, 5]),
    ({"version_policy": {"latest": 2}}, [3, 5]),
    ({"version_policy": {"latest": {"num_versions": 1}}}, [5]),  # Triton's protobuf-JSON spelling
    ({"version_policy": {"specific": [1, 3, 4]}}, [1, 3]),
    ({"version_policy": {"specific": {"versions": [2]}}}, [2]),
])
def test_version_policy_selects(config: dict[str, object], expected: list[int]) -> None:
    assert parse_policy(config).select([5, 1, 3, 2]) == expected


@pytest.mark.parametrize("config", [[], {"version_policy": {"latest": 0}}, {"version_policy": {"newest": 1}},
                                    {"version_policy": {"specific": []}}, {"version_policy": {"all": {},
                                                                                              "latest": 1}}])
def test_invalid_version_policy(config: object) -> None:
    with pytest.raises(PolicyError):
        parse_policy(config)


# ---- registry against a real database -------------------------------------------------------------
def test_several_models_and_versions_are_served(repo: Path, sessions: sessionmaker[Session]) -> None:
    registry = Registry(repo, sessions)
    registry.load_all()
    assert sorted(registry.models) == ["iris", "tiny"]
    assert sorted(registry.models["tiny"].versions) == [1, 2, 3]
    assert registry.resolve("tiny").version == 3  # no production alias: the newest
    assert registry.resolve("tiny", "2").version == 2
    assert registry.resolve("iris").classifier.output_kind == "probabilities"
    temperatures = {v: registry.resolve("tiny", v).serving.calibrator.temperature_ for v in (1, 2, 3)}  # type: ignore[union-attr, attr-defined]
    assert temperatures == {1: 1.0, 2: 2.0, 3: 3.0}


def test_aliases_come_from_the_database(repo: Path, sessions: sessionmaker[Session]) -> None:
    registry = Registry(repo, sessions)
    registry.load_all()
    with sessions() as session:
        set_alias(session=session, model="tiny", alias="production", version=1)
        set_alias(session=session, model="tiny", alias="staging", version=2)
        session.commit()
    registry.sync_calibrators()
    assert registry.resolve("tiny").version == 1
    assert registry.resolve("tiny", "staging").version == 2
    with pytest.raises(ModelNotFound, match="no version or alias 'canary'"):
        registry.resolve("tiny", "canary")


def test_version_policy_from_config_json(repo: Path, sessions: sessionmaker[Session]) -> None:
    _write_config(repo, "tiny", {"latest": 2})
    registry = Registry(repo, sessions)
    registry.load_all()
    assert sorted(registry.models["tiny"].versions) == [2, 3]
    with pytest.raises(ModelNotFound, match="version 1 is not loaded"):
        registry.resolve("tiny", 1)
    index = {(r.name, r.version): r for r in registry.index()}
    assert index[("tiny", "1")].state == "UNAVAILABLE" and "version policy" in index[("tiny", "1")].reason
    assert index[("tiny", "3")].state == "READY"


def test_invalid_config_json_is_reported_and_other_models_serve(repo: Path,
                                                                sessions: sessionmaker[Session]) -> None:
    (repo / "tiny" / "config.json").write_text("{not json")
    registry = Registry(repo, sessions)
    registry.load_all()
    assert "not valid JSON" in (registry.models["tiny"].error or "")
    with pytest.raises(ModelNotReady, match="not valid JSON"):
        registry.resolve("tiny")
    assert registry.resolve("iris").version == 1


def test_broken_versions_are_reported_and_never_take_the_others_down(
        repo: Path, sessions: sessionmaker[Session]) -> None:
    (repo / "tiny" / "2" / "model.onnx").write_bytes(b"garbage")
    (repo / "tiny" / "3" / "card.json").write_text('{"name": "tiny", "version": 3}')
    registry = Registry(repo, sessions)
    registry.load_all()
    entry = registry.models["tiny"]
    assert sorted(entry.versions) == [1] and sorted(entry.errors) == [2, 3]
    assert "ValidationError" in entry.errors[3]
    assert registry.resolve("tiny").version == 1
    with pytest.raises(ModelNotReady, match="version 2 failed to load"):
        registry.resolve("tiny", 2)
    states = {(r.name, r.version): r.state for r in registry.index()}
    assert states == {("iris", "1"): "READY", ("tiny", "1"): "READY", ("tiny", "2"): "UNAVAILABLE",
                      ("tiny", "3"): "UNAVAILABLE"}


def test_reload_adds_new_versions_and_keeps_unchanged_sessions(repo: Path,
                                                               sessions: sessionmaker[Session]) -> None:
    _write_config(repo, "tiny", {"specific": [1]})
    registry = Registry(repo, sessions)
    registry.load_all()
    first = registry.resolve("tiny", 1)
    registry.load_model("tiny", config='{"version_policy": {"all": {}}}')  # a Triton load config override
    assert sorted(registry.models["tiny"].versions) == [1, 2, 3]
    assert registry.resolve("tiny", 1) is first  # same session object: nothing rebuilt
    registry.load_model("tiny")  # back to config.json
    assert sorted(registry.models["tiny"].versions) == [1]
    with pytest.raises(InvalidInput, match="version_policy"):
        registry.load_model("tiny", config='{"version_policy": {"latest": 0}}')
    assert sorted(registry.models["tiny"].versions) == [1]  # a bad override changes nothing


def test_failed_reload_keeps_the_previous_load(repo: Path, sessions: sessionmaker[Session]) -> None:
    registry = Registry(repo, sessions)
    registry.load_all()
    before = registry.resolve("tiny", 2)
    (repo / "tiny" / "2" / "model.onnx").write_bytes(b"overwritten with garbage")
    registry.load_model("tiny")
    assert registry.resolve("tiny", 2) is before
    assert "still serving the previous load" in registry.models["tiny"].errors[2]


def test_unload_and_index(repo: Path, sessions: sessionmaker[Session]) -> None:
    registry = Registry(repo, sessions)
    registry.load_all()
    registry.unload_model("iris")
    with pytest.raises(ModelNotFound, match="not loaded"):
        registry.resolve("iris")
    assert [(r.name, r.state, r.reason) for r in registry.index() if r.name == "iris"] == [
        ("iris", "UNAVAILABLE", "unloaded")]
    with pytest.raises(ModelNotFound):
        registry.unload_model("iris")
    with pytest.raises(ModelNotFound, match="not in the repository"):
        registry.load_model("nope")
    assert registry.load_model("iris").versions[1].version == 1


def test_default_policy_is_all() -> None:
    assert VersionPolicy().describe() == {"all": {}}


def test_dynamic_batching_from_config_wraps_the_same_session(repo: Path, sessions: sessionmaker[Session]) -> None:
    (repo / "tiny" / "config.json").write_text(json.dumps({"dynamic_batching": {"max_batch_size": 8}}))
    registry = Registry(repo, sessions)
    registry.load_all()
    classifier = registry.resolve("tiny", 1).classifier
    assert isinstance(classifier, Batched) and classifier.config.max_batch_size == 8
    (repo / "tiny" / "config.json").unlink()
    registry.load_model("tiny")
    assert registry.resolve("tiny", 1).classifier is classifier.inner  # unwrapped, nothing reloaded


def test_two_processes_starting_together_register_one_first_calibrator(database_url: str,
                                                                      model_repository: Path) -> None:
    """Workers and replicas start at once on a fresh database: exactly one inserts calibrator 1, and the
    other adopts it instead of dying on the unique constraint."""
    import threading

    from service.db.engine import make_engine, make_sessionmaker
    from service.repository.registry import Registry

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    registries: list[Registry] = []

    def start() -> None:
        engine = make_engine(database_url)
        registry = Registry(model_repository, make_sessionmaker(engine))
        registries.append(registry)
        barrier.wait()
        try:
            registry.load_all()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert {r.resolve("digits").serving.calibrator_version for r in registries} == {1}  # type: ignore[union-attr]
    with registries[0].sessions() as session:
        from service.db import calibrators as rows

        assert [c.calibrator_version for c in rows.list_calibrators(session=session, model="digits", version=1)] == [1]
