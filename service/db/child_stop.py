"""Stopping a child process that exits when its stdin closes (the ship process, the control process)."""

from __future__ import annotations

import subprocess


def close_and_wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Close the child's stdin, its signal to finish what is in flight and exit; kill it if it does not."""
    assert proc.stdin is not None
    try:
        proc.stdin.close()
        proc.wait(timeout)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
