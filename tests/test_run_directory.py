"""Run directories: removed at exit, and those a SIGKILLed server left are removed by the next start, never one
that a live process (in any pid namespace) still locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from service.run_directory import (
    ENV,
    LOCK,
    PREFIX,
    SOCKET,
    UNIX_PATH_MAX,
    default_parent,
    fits,
    hold_run_directory,
    remove_abandoned,
    run_directory,
)

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def made(parent: Path, name: str, *, lock: bool = True) -> Path:
    path = parent / f"{PREFIX}{name}"
    (path / "metrics").mkdir(parents=True)
    (path / "metrics" / "counter_1.db").write_bytes(b"x" * 100)
    if lock:
        (path / LOCK).touch()
    return path


def holder(lock: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_the_directory_is_locked_while_in_use_and_removed_after(tmp_path: Path) -> None:
    with run_directory(tmp_path) as path:
        assert path.parent == tmp_path and path.name.startswith(PREFIX)
        assert remove_abandoned(tmp_path) == []  # ours, held
        assert path.is_dir()
    assert not path.exists()


def test_a_directory_whose_holder_was_sigkilled_is_removed(tmp_path: Path) -> None:
    killed = made(tmp_path, "killed")
    process = holder(killed / LOCK)
    assert remove_abandoned(tmp_path) == []
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert remove_abandoned(tmp_path) == [killed]
    assert not killed.exists()


def test_starting_a_server_removes_abandoned_directories_and_keeps_live_and_foreign_ones(tmp_path: Path) -> None:
    abandoned = made(tmp_path, "abandoned")
    live = made(tmp_path, "live")
    foreign = made(tmp_path, "foreign", lock=False)  # no lock file: not ours to judge
    other = tmp_path / "other-dir"
    other.mkdir()
    process = holder(live / LOCK)
    try:
        with run_directory(tmp_path) as path:
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [path.name, live.name, foreign.name, other.name])
        assert not abandoned.exists() and live.is_dir() and foreign.is_dir() and other.is_dir()
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_symlinked_lock_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    path = made(tmp_path, "link", lock=False)
    (path / LOCK).symlink_to(elsewhere)
    assert remove_abandoned(tmp_path) == []
    assert path.is_dir()


def test_a_process_the_server_started_keeps_the_directory_after_the_server_is_gone(tmp_path: Path) -> None:
    """A uvicorn worker outlives its SIGKILLed supervisor: its shared lock keeps the directory in use."""
    path = made(tmp_path, "worker")
    code = ("import sys, time; from service.run_directory import hold_run_directory; "
            "print('held' if hold_run_directory() is not None else 'none', flush=True); time.sleep(600)")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, ENV: str(path)})
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "held"
        assert remove_abandoned(tmp_path) == []
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert remove_abandoned(tmp_path) == [path]


def test_nothing_to_hold_outside_a_server_or_once_the_directory_is_gone(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert hold_run_directory() is None
    monkeypatch.setenv(ENV, str(tmp_path / f"{PREFIX}gone"))
    assert hold_run_directory() is None


def test_a_tmpdir_too_long_for_the_control_socket_falls_back_to_tmp(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A Unix socket path holds 107 bytes: a deep TMPDIR once made the control process abort at start."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert not fits(deep) and fits(Path("/tmp"))
    assert default_parent() == Path("/tmp")
    short = Path("/tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    assert default_parent() == short
    longest = Path("/" + "x" * (UNIX_PATH_MAX - 1 - len(f"/{PREFIX}12345678/{SOCKET}")))
    assert fits(longest) and not fits(Path(f"{longest}y"))
