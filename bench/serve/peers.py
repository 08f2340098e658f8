"""MLServer 1.7.1, the peer, in its own virtualenv under ``.bench-peers/`` (git-ignored), never the project's.

``python -m bench serving --setup-peers`` creates ``.bench-peers/mlserver`` with exactly what
``pip install mlserver==1.7.1 mlserver-sklearn==1.7.1`` brings (the *default* install: h11, no httptools),
plus scikit-learn pinned to the project's version so the pickled estimator loads as it was fitted, and
``uvloop<0.22`` (1.7.1's inference-pool worker calls ``asyncio.get_event_loop()`` in a fresh process,
which uvloop ≥ 0.22 makes raise). ``httptools`` goes into ``.bench-peers/httptools`` and only the *tuned*
server gets it on ``PYTHONPATH``, so one venv serves both configurations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.serve.servers import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / ".bench-peers"
VENV = PEERS / "mlserver"
HTTPTOOLS = PEERS / "httptools"
MLSERVER = VENV / "bin" / "mlserver"

# "default" overrides nothing but where it listens; "tuned" is the best we found (beyond.md §6)
CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "tuned": {"parallel_workers": 0, "debug": False},
}


def requirements() -> list[str]:
    import sklearn

    return ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22", f"scikit-learn=={sklearn.__version__}"]


def setup() -> None:
    """Create (or complete) the peers' virtualenv; idempotent."""
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", *requirements()], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", "--target", str(HTTPTOOLS), "httptools"],
                   check=True)


def installed() -> bool:
    return MLSERVER.exists() and HTTPTOOLS.is_dir()


def mlserver_server(config: str, joblib_dir: Path, work: Path) -> Server:
    """A model folder for one MLServer instance: ``settings.json`` + ``model-settings.json`` + the joblib."""
    folder = work / f"mlserver-{config}"
    folder.mkdir()
    (folder / "model.joblib").symlink_to(joblib_dir / "model.joblib")
    http, grpc, metrics = free_port(), free_port(), free_port()
    settings = {"host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
                **CONFIGS[config]}
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "digits", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"}}))
    # our PYTHONPATH (the worktree) must not leak into the peer; only the tuned one gets httptools
    env = {"PYTHONPATH": str(HTTPTOOLS) if config == "tuned" else ""}
    return Server(f"mlserver-{config}", [str(MLSERVER), "start", str(folder)], "/v2/models/digits/ready", http,
                  env=env)
