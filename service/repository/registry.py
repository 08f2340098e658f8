"""The model registry: which model versions are loaded, their active calibrator, and name resolution.

Swaps are atomic by construction: a request reads ``version.serving`` once (an immutable
``ActiveCalibration``) and uses it to the end, so an activation never mixes two calibrators in one
response, and in-flight requests finish on the calibrator they started with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.db.aliases import all_aliases
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.repository import policy as model_config
from service.repository.calibrator_sync import serve_active_calibrators
from service.repository.card import CARD_FILE, MODEL_FILE, read_card
from service.repository.loaded import LoadedVersion
from service.repository.runtime import Batched, OnnxClassifier

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    """One model's loaded versions and per-version load errors; replaced whole, never mutated in place."""

    name: str
    versions: dict[int, LoadedVersion] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    policy: model_config.VersionPolicy = field(default_factory=model_config.VersionPolicy)
    error: str | None = None  # the model as a whole could not be loaded (e.g. an invalid config.json)


@dataclass(frozen=True)
class IndexEntry:
    """A row of the repository index (Triton's ``RepositoryIndexResponse.ModelIndex``)."""

    name: str
    version: str
    state: str  # READY | UNAVAILABLE
    reason: str


def fingerprint(directory: Path) -> tuple[int, ...]:
    """Size and mtime of the files a loaded version depends on: unchanged ⇒ the session is reused."""
    out: list[int] = []
    for name in (MODEL_FILE, CARD_FILE):
        st = (directory / name).stat()
        out += [st.st_size, st.st_mtime_ns]
    return tuple(out)


def load_version(directory: Path, *, intra_op_threads: int = 1, inter_op_threads: int = 1) -> LoadedVersion:
    stamp = fingerprint(directory)
    card = read_card(directory)
    classifier = OnnxClassifier(
        directory / MODEL_FILE, card, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads
    )
    return LoadedVersion(card.name, card.version, directory, card, classifier, fingerprint=stamp)


def version_numbers(model_dir: Path) -> list[int]:
    """Numeric subdirectories (staging directories of a version being published start with a dot)."""
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


class Registry:
    def __init__(self, root: Path, sessions: sessionmaker[Session], *, intra_op_threads: int = 1,
                 inter_op_threads: int = 1) -> None:
        self.root = root
        self.sessions = sessions
        self.threads = (intra_op_threads, inter_op_threads)
        # Readers (every request) see whole dicts that are replaced, never mutated: no lock on the hot path.
        self.models: dict[str, ModelEntry] = {}
        self.aliases: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # serialises loads/unloads; reads never take it

    # ---- loading ---------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Model directories in the repository (loaded or not)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def load_all(self) -> None:
        if not self.root.is_dir():
            log.warning("model repository %s does not exist", self.root)
        for name in self.model_names():
            self.load_model(name)

    def load_model(self, name: str, config: str | dict[str, Any] | None = None) -> ModelEntry:
        """(Re)load a model under its version policy; unchanged versions keep their session.

        The new entry is complete (sessions built, calibrators synced) before it replaces the old one, so
        requests in flight and arriving during the load are served by one or the other, never neither.
        A broken version is recorded in ``errors`` and never takes the others down."""
        model_dir = self.root / name
        if name.startswith(".") or not model_dir.is_dir():
            raise ModelNotFound(f"model '{name}' is not in the repository {self.root}")
        with self._lock:
            old = self.models.get(name)
            entry = ModelEntry(name)
            batching = None
            try:
                settings = model_config.read_config(model_dir, config)
                entry.policy, batching = model_config.parse_policy(settings), model_config.parse_batching(settings)
            except model_config.PolicyError as exc:
                if config is not None:  # a bad override is the caller's error; the served model stays
                    raise InvalidInput(str(exc)) from None
                entry.error = str(exc)
                log.error("model %s: %s", name, exc)
            wanted = entry.policy.select(version_numbers(model_dir)) if entry.error is None else []
            for v in wanted:
                try:
                    entry.versions[v] = self._load_version(name, v, old, batching)
                except Exception as exc:  # reported in readiness and metadata, never fatal
                    log.exception("could not load %s/%s", name, v)
                    entry.errors[v] = f"{type(exc).__name__}: {exc}"
                    previous = old.versions.get(v) if old is not None else None
                    if previous is not None:  # as Triton: a failed reload keeps the version it replaces
                        entry.versions[v] = previous
                        entry.errors[v] = f"reload failed, still serving the previous load: {entry.errors[v]}"
            self.sync_calibrators(entries=[entry])
            if entry.versions or old is None or not old.versions:  # a reload leaving nothing to serve
                self.models = {**self.models, name: entry}  # keeps what served (the caller reports it)
            return entry

    def _load_version(self, name: str, v: int, old: ModelEntry | None,
                      batching: model_config.BatchingConfig | None) -> LoadedVersion:
        directory = self.root / name / str(v)
        previous = old.versions.get(v) if old is not None else None
        if previous is not None and previous.fingerprint == fingerprint(directory):
            loaded = previous
        else:
            loaded = load_version(directory, intra_op_threads=self.threads[0], inter_op_threads=self.threads[1])
            if loaded.card.name != name or loaded.card.version != v:
                raise ValueError(f"card.json says {loaded.card.name}/{loaded.card.version}, "
                                 f"the directory is {name}/{v}")
        session = getattr(loaded.classifier, "inner", loaded.classifier)
        loaded.classifier = Batched(session, batching) if batching else session  # type: ignore[assignment]
        return loaded

    def unload_model(self, name: str) -> None:
        with self._lock:
            if name not in self.models:
                raise ModelNotFound(f"model '{name}' is not loaded")
            self.models = {k: v for k, v in self.models.items() if k != name}

    def index(self) -> list[IndexEntry]:
        """Every version on disk or loaded, with its state (Triton's repository index)."""
        rows: list[IndexEntry] = []
        models = self.models
        for name in sorted(set(self.model_names()) | set(models)):
            entry = models.get(name)
            model_dir = self.root / name
            on_disk = version_numbers(model_dir) if model_dir.is_dir() else []
            if entry is None:
                rows += [IndexEntry(name, str(v), "UNAVAILABLE", "unloaded") for v in on_disk] or [
                    IndexEntry(name, "", "UNAVAILABLE", "unloaded")]
                continue
            if entry.error is not None:
                rows.append(IndexEntry(name, "", "UNAVAILABLE", entry.error))
            for v in sorted(set(on_disk) | set(entry.versions) | set(entry.errors)):
                loaded = entry.versions.get(v)
                if loaded is not None and loaded.serving is not None:
                    rows.append(IndexEntry(name, str(v), "READY", ""))
                elif loaded is not None:
                    rows.append(IndexEntry(name, str(v), "UNAVAILABLE", "no active calibrator"))
                elif v in entry.errors:
                    rows.append(IndexEntry(name, str(v), "UNAVAILABLE", entry.errors[v]))
                elif v in entry.policy.select(on_disk):
                    rows.append(IndexEntry(name, str(v), "UNAVAILABLE", "new on disk: not loaded yet"))
                else:
                    rows.append(IndexEntry(name, str(v), "UNAVAILABLE",
                                           f"not selected by version policy {entry.policy.describe()}"))
        return rows

    # ---- calibrators -----------------------------------------------------------------------------
    def sync_calibrators(self, entries: list[ModelEntry] | None = None) -> int:
        """Serve every loaded version's active calibrator (and refresh aliases) from the database."""
        targets = entries if entries is not None else list(self.models.values())
        with self.sessions() as session:
            swaps = serve_active_calibrators(session, [v for e in targets for v in e.versions.values()])
            self.aliases = all_aliases(session=session)
            session.commit()
        return swaps

    # ---- resolution ------------------------------------------------------------------------------
    def resolve(self, name: str, ref: str | int | None = None) -> LoadedVersion:
        """A loaded version by number, alias, or (None) the ``production`` alias else the newest.

        On the hot path: two dict lookups, no lock, no I/O."""
        entry = self.models.get(name)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not loaded on this server")
        via = ""
        if ref is None or ref == "":
            version = self.aliases.get((name, "production"))
            if version is None:
                if not entry.versions:
                    raise ModelNotReady(f"model '{name}' has no loadable version{_problems(entry)}")
                version = max(entry.versions)
            else:
                via = " (its 'production' alias)"
        elif isinstance(ref, int) or ref.isdigit():
            version = int(ref)
        else:
            alias_version = self.aliases.get((name, ref))
            if alias_version is None:
                raise ModelNotFound(f"model '{name}' has no version or alias '{ref}'")
            version, via = alias_version, f" (alias '{ref}')"
        loaded = entry.versions.get(version)
        if loaded is None:
            if version in entry.errors:
                raise ModelNotReady(
                    f"model '{name}' version {version}{via} failed to load: {entry.errors[version]}")
            raise ModelNotFound(f"model '{name}' version {version}{via} is not loaded; loaded versions: "
                                f"{sorted(entry.versions)}")
        if loaded.serving is None:
            raise ModelNotReady(f"model '{name}' version {version}{via} has no active calibrator yet")
        return loaded

    def ready(self) -> bool:
        return any(v.serving is not None for e in self.models.values() for v in e.versions.values())


def _problems(entry: ModelEntry) -> str:
    if entry.error is not None:
        return f": {entry.error}"
    if entry.errors:
        return ": " + "; ".join(f"version {v}: {e}" for v, e in sorted(entry.errors.items()))
    return f": no version directory matches its version policy {entry.policy.describe()}"
