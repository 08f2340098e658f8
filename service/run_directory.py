"""A server's run directory (the multiprocess metrics files, the control process's socket), and the removal of
the ones that servers killed with SIGKILL (an OOM kill, a node's hard stop) left behind.

A directory is in use while a process holds a shared ``flock`` on its ``lock`` file: the server, and each
process it starts that uses the directory (``hold_run_directory``: uvicorn workers, which outlive a SIGKILLed
supervisor, and the control process). The kernel releases a process's lock when it dies, whatever the
signal, so an exclusive lock that can be taken means an abandoned directory. A process id would not do: pids
are reused, and servers sharing one ``/tmp`` across pid namespaces (containers with a common volume) cannot
see each other's. A directory without a lock file (made before the lock existed, or by something else) is
left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "calibserve-run-"
LOCK = "lock"
SOCKET = "control.sock"  # the control process's socket (service/control_process.py)
ENV = "CALIBSERVE_RUN_DIRECTORY"  # how the processes a server starts find its run directory
# a Unix socket's path is at most 107 bytes (Linux's sun_path with its NUL); mkdtemp adds 8 characters
UNIX_PATH_MAX = 107


@contextlib.contextmanager
def run_directory(parent: Path | None = None) -> Iterator[Path]:
    """A fresh run directory under ``parent`` (the system's temporary directory by default), locked while the
    block runs and removed after it; abandoned ones are removed first."""
    parent = Path(parent or default_parent())
    remove_abandoned(parent)
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    lock = os.open(path / LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield path
    finally:
        os.close(lock)
        shutil.rmtree(path, ignore_errors=True)


def default_parent() -> Path:
    """The system's temporary directory (``TMPDIR``), or ``/tmp`` when a socket in a run directory there would
    not fit a Unix socket's path: the control process would fail to start."""
    parent = Path(tempfile.gettempdir())
    if fits(parent):
        return parent
    log.warning("TMPDIR %s is too long for a Unix socket path: the run directory goes to /tmp", parent)
    return Path("/tmp")


def fits(parent: Path) -> bool:
    """Whether the control socket of a run directory made under ``parent`` fits a Unix socket's path."""
    return len(os.fsencode(parent / f"{PREFIX}12345678" / SOCKET)) <= UNIX_PATH_MAX


def hold_run_directory() -> int | None:
    """In a process a server started (``ENV`` set): a shared lock on the server's run directory, held until the
    returned descriptor is closed or the process dies. ``None`` when there is none to hold."""
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        fd = os.open(Path(path) / LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        log.warning("run directory %s is gone: it may be removed as abandoned", path)
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove every run directory under ``parent`` whose lock no live process holds; return them."""
    removed = []
    for path in sorted(parent.glob(f"{PREFIX}*")):
        if path.is_dir() and not path.is_symlink() and _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d run directories left by killed servers", len(removed))
    return removed


def _abandoned(path: Path) -> bool:
    try:  # O_NOFOLLOW: another user's symlink must not make us lock (or create) a file elsewhere
        fd = os.open(path / LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # no lock file, or not ours to open
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: a live server (or one of its children) uses it
        return False
    finally:
        os.close(fd)  # the lock, if taken, goes with the descriptor
    return True
