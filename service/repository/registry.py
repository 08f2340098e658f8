"""The model registry: which model versions are loaded, their active calibrator, and name resolution.

Swaps are atomic by construction: a request reads ``version.serving`` once (an immutable
``ActiveCalibration``) and uses it to the end, so an activation never mixes two calibrators in one
response, and in-flight requests finish on the calibrator they started with.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.calibration import Calibrator, calibrator_from_dict
from service.db import calibrators as calibrator_rows
from service.db.aliases import all_aliases
from service.errors import ModelNotFound, ModelNotReady
from service.repository.card import CALIBRATOR_FILE, MODEL_FILE, ModelCard, read_card
from service.repository.runtime import OnnxClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveCalibration:
    calibrator_version: int
    method: str
    calibrator: Calibrator


@dataclass
class LoadedVersion:
    name: str
    version: int
    directory: Path
    card: ModelCard
    classifier: OnnxClassifier
    serving: ActiveCalibration | None = None


@dataclass
class ModelEntry:
    name: str
    versions: dict[int, LoadedVersion] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


def load_version(directory: Path, *, intra_op_threads: int = 1, inter_op_threads: int = 1) -> LoadedVersion:
    card = read_card(directory)
    classifier = OnnxClassifier(
        directory / MODEL_FILE, card, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads
    )
    return LoadedVersion(card.name, card.version, directory, card, classifier)


class Registry:
    def __init__(self, root: Path, sessions: sessionmaker[Session], *, intra_op_threads: int = 1,
                 inter_op_threads: int = 1) -> None:
        self.root = root
        self.sessions = sessions
        self.threads = (intra_op_threads, inter_op_threads)
        self.models: dict[str, ModelEntry] = {}
        self.aliases: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # serialises loads/unloads; reads never take it

    # ---- loading ---------------------------------------------------------------------------------
    def load_all(self) -> None:
        if not self.root.is_dir():
            log.warning("model repository %s does not exist", self.root)
            return
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            self.load_model(model_dir.name)

    def load_model(self, name: str, versions: list[int] | None = None) -> ModelEntry:
        model_dir = self.root / name
        if not model_dir.is_dir():
            raise ModelNotFound(f"model '{name}' is not in the repository")
        wanted = sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if versions is not None:
            wanted = [v for v in wanted if v in versions]
        entry = ModelEntry(name)
        for v in wanted:
            try:
                loaded = load_version(model_dir / str(v), intra_op_threads=self.threads[0],
                                      inter_op_threads=self.threads[1])
                if loaded.card.name != name or loaded.card.version != v:
                    raise ValueError(f"card says {loaded.card.name}/{loaded.card.version}, directory {name}/{v}")
                entry.versions[v] = loaded
            except Exception as exc:  # a broken version is reported, never takes the others down
                log.exception("could not load %s/%s", name, v)
                entry.errors[v] = f"{type(exc).__name__}: {exc}"
        self.sync_calibrators(entries=[entry])
        with self._lock:
            self.models = {**self.models, name: entry}
        return entry

    def unload_model(self, name: str) -> None:
        with self._lock:
            if name not in self.models:
                raise ModelNotFound(f"model '{name}' is not loaded")
            self.models = {k: v for k, v in self.models.items() if k != name}

    # ---- calibrators -----------------------------------------------------------------------------
    def sync_calibrators(self, entries: list[ModelEntry] | None = None) -> int:
        """Make every loaded version serve its active calibrator from the database; returns swaps made.

        A version with no calibrator row yet gets its ``calibrator.json`` (or identity) inserted as
        calibrator version 1, active — the version's first calibrator."""
        targets = entries if entries is not None else list(self.models.values())
        swaps = 0
        with self.sessions() as session:
            active = calibrator_rows.active_versions(session=session)
            for entry in targets:
                for loaded in entry.versions.values():
                    cv = active.get((loaded.name, loaded.version))
                    if cv is None:
                        cv = self._insert_initial(session, loaded)
                    if loaded.serving is None or loaded.serving.calibrator_version != cv:
                        row = calibrator_rows.get_calibrator(
                            session=session, model=loaded.name, version=loaded.version, calibrator_version=cv
                        )
                        if row is None:
                            continue
                        loaded.serving = ActiveCalibration(
                            cv, row.method, calibrator_from_dict({"method": row.method, "params": row.params})
                        )
                        swaps += 1
            self.aliases = all_aliases(session=session)
            session.commit()
        return swaps

    def _insert_initial(self, session: Session, loaded: LoadedVersion) -> int:
        path = loaded.directory / CALIBRATOR_FILE
        spec: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"method": "identity",
                                                                                    "params": {}}
        existing = calibrator_rows.list_calibrators(session=session, model=loaded.name, version=loaded.version)
        if existing:  # rows exist but none active (all retired by hand): re-activate the newest
            row = existing[-1]
        else:
            row = calibrator_rows.insert_calibrator(
                session=session, model=loaded.name, version=loaded.version, method=spec["method"],
                params=spec.get("params", {}), source="card", created_by="repository",
                evaluation=spec.get("evaluation"),
            )
        calibrator_rows.activate_calibrator(session=session, row=row)
        session.flush()
        return row.calibrator_version

    # ---- resolution ------------------------------------------------------------------------------
    def resolve(self, name: str, ref: str | int | None = None) -> LoadedVersion:
        """A loaded version by number, alias, or (None) the ``production`` alias else the newest."""
        entry = self.models.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not served here")
        if ref is None or ref == "":
            version = self.aliases.get((name, "production"))
            if version is None:
                if not entry.versions:
                    raise ModelNotReady(f"model '{name}' has no loadable version: {entry.errors}")
                version = max(entry.versions)
        elif isinstance(ref, int) or ref.isdigit():
            version = int(ref)
        else:
            alias_version = self.aliases.get((name, ref))
            if alias_version is None:
                raise ModelNotFound(f"model '{name}' has no version or alias '{ref}'")
            version = alias_version
        loaded = entry.versions.get(version)
        if loaded is None:
            if version in entry.errors:
                raise ModelNotReady(f"model '{name}' version {version} failed to load: {entry.errors[version]}")
            raise ModelNotFound(f"model '{name}' has no version {version}")
        if loaded.serving is None:
            raise ModelNotReady(f"model '{name}' version {version} has no calibrator yet")
        return loaded

    def ready(self) -> bool:
        return any(v.serving is not None for e in self.models.values() for v in e.versions.values())
