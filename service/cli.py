"""``calibserve`` command line: demo, serve, train, register, refit, db upgrade/downgrade."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from service.run_directory import ENV as RUN_DIRECTORY_ENV
from service.run_directory import SOCKET as RUN_DIRECTORY_SOCKET
from service.run_directory import run_directory
from service.settings import Settings

if TYPE_CHECKING:
    from service.control_process import ControlProcess

DEMO_TOKEN = "demo-admin-token"


def _uvicorn_options(settings: Settings) -> dict[str, object]:
    """Connection bounds (docs/reliability.md): idle keep-alive, request-head deadline, JSON 400s."""
    from service.api.protocol import BoundedHttpToolsProtocol

    return {"http": functools.partial(BoundedHttpToolsProtocol, header_timeout=settings.header_timeout_seconds),
            "timeout_keep_alive": settings.keep_alive_seconds, "log_level": "info",
            "access_log": settings.access_log}


def migrate_in_child(url: str) -> None:
    """``alembic upgrade head`` in a child process: Alembic, Mako and the migration scripts (~35 MiB of RSS)
    are then never mapped in the serving process. The URL goes by environment (it may hold a password)."""
    code = "import os; from service.db.migrate import upgrade; upgrade(os.environ['CALIBSERVE_MIGRATE_URL'])"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "CALIBSERVE_MIGRATE_URL": url}, check=True)


def _serve(settings: Settings, workers: int = 1) -> None:
    import uvicorn

    migrate_in_child(settings.database_url)
    # uvicorn stops gracefully on SIGTERM, then raises it again under the handler found at start: with the
    # default one the process would end right there, before the cleanup below (the control process's graceful
    # stop, the run directory)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with contextlib.ExitStack() as stack:  # LIFO: the control process stops before its directory goes
        if workers > 1 or settings.control_process:
            run_dir = stack.enter_context(run_directory())  # and removes those SIGKILLed servers left
            os.environ[RUN_DIRECTORY_ENV] = str(run_dir)  # workers and the control process hold it too
            # several processes, one /metrics: values in files (prometheus multiprocess mode), set before
            # service.app (and prometheus_client) is imported here or in a child
            if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                (run_dir / "metrics").mkdir()
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir / "metrics")
            if settings.control_process:
                control = _start_control_process(settings, run_dir / RUN_DIRECTORY_SOCKET)
                stack.callback(control.stop)
                settings = settings.model_copy(update={"control_socket": control.socket_path})
        if workers > 1:
            _export_settings(settings)
            uvicorn.run("service.app:create_app", factory=True, host=settings.host, port=settings.port,
                        workers=workers, **_uvicorn_options(settings))  # type: ignore[arg-type]
            return
        from service.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    **_uvicorn_options(settings))  # type: ignore[arg-type]


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _export_settings(settings: Settings) -> None:
    """Settings by environment, for processes that build their own (uvicorn workers, the control process)."""
    for key, value in settings.model_dump(mode="json").items():
        if value is not None and key not in ("admin_tokens", "admin_token"):
            os.environ[f"CALIBSERVE_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    if settings.admin_token is not None:
        os.environ["CALIBSERVE_ADMIN_TOKEN"] = settings.admin_token.get_secret_value()


def _start_control_process(settings: Settings, socket_path: Path) -> ControlProcess:
    from service.control_process import ControlProcess, child_environment

    _export_settings(settings)
    control = ControlProcess(child_environment(dict(os.environ), settings.spool_dir), socket_path)
    control.start()
    return control


# Training and the example row run in child processes: the serving process never maps libtorch or scikit-learn
# (RSS and start-up stay those of the serving image).
DEMO_TRAIN = ["train", "--dataset", "digits", "--loss", "flsd53", "--name", "digits", "--version", "1",
              "--calibrator", "temperature", "--overwrite"]
DEMO_EXAMPLE = ("import json; from sklearn.datasets import load_digits; "
                "print(json.dumps({'instances': [load_digits().data[0].astype(int).tolist()]}))")  # a real "0"


def cmd_demo(args: argparse.Namespace) -> int:
    settings = Settings()
    if not settings.all_admin_tokens():  # the demo needs a token for its refit example; never a default
        settings.admin_token = SecretStr(DEMO_TOKEN)  # for `serve`
    version_dir = settings.model_repository / "digits" / "1"
    if importlib.util.find_spec("sklearn") is None:  # looked up, not imported: the server never maps it
        print("calibserve demo trains a model: pip install 'calibserve[train]' first", file=sys.stderr)
        return 2
    if args.retrain or not (version_dir / "model.onnx").exists():
        print("training digits MLP with FLSD-53 focal loss …", flush=True)
        subprocess.run([sys.executable, "-m", "service", *DEMO_TRAIN, "--repository", str(settings.model_repository)],
                       check=True)
    else:
        print(f"{version_dir} exists: reusing it (pass --retrain to train again)")
    base = f"http://{settings.host}:{settings.port}"
    token = settings.all_admin_tokens()[0]
    example = subprocess.run([sys.executable, "-c", DEMO_EXAMPLE], check=True, capture_output=True,
                             text=True).stdout.strip()
    print(f"""
calibserve demo — serving models/ on {base} (database {settings.database_url})
  curl -s {base}/v1/models/digits/predict -d '{example}'
  curl -s {base}/v1/feedback -d '{{"items": [{{"prediction_id": "<id from predict>", "label": 0}}]}}'
  curl -s '{base}/v1/models/digits/versions/1/calibration?window=1h'
  curl -s {base}/metrics | grep calibserve_calibration
  curl -s -X POST -H 'Authorization: Bearer {token}' {base}/v1/admin/models/digits/versions/1/calibrators \\
       -d '{{"method": "temperature", "activate": "always", "min_labels": 50, "min_per_class": 1}}'
  open {base}/dashboard  ·  {base}/docs
""", flush=True)
    _serve(settings)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.control_process is not None:
        overrides["control_process"] = args.control_process
    _serve(Settings(**overrides), workers=args.workers)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from service.db.migrate import downgrade, upgrade

    url = Settings().database_url
    (upgrade if args.action == "upgrade" else downgrade)(url, args.revision or ("head" if args.action == "upgrade"
                                                                                 else "base"))
    print(f"database {args.action}d: {url}")
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    from service.app import build_services
    from service.handlers.refit_options import options_from_cli

    options = options_from_cli(args)
    services = build_services(Settings())
    services.registry.load_model(args.model)
    result = services.lifecycle.refit(model=args.model, version=args.version, options=options,
                                      actor=f"cli:{os.getenv('USER', '?')}")
    print(json.dumps(result, indent=2, default=str))
    return 0


def build_parser(lazy_command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calibserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train the digits demo model if needed, migrate SQLite, serve")
    demo.add_argument("--retrain", action="store_true")
    demo.set_defaults(func=cmd_demo)
    serve = sub.add_parser("serve", help="migrate the database and serve the model repository")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--control-process", action=argparse.BooleanOptionalAction,
                       help="answer feedback and calibration queries from a child process, off the predict loop "
                            "(default: on, or CALIBSERVE_CONTROL_PROCESS)")
    serve.set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="run Alembic migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=cmd_db)
    refit = sub.add_parser("refit", help="re-fit a calibrator from stored feedback (same handler as the API)")
    refit.add_argument("model")
    refit.add_argument("version")
    from service.handlers.refit_options import add_cli_arguments  # the options the HTTP body takes

    add_cli_arguments(refit)
    refit.set_defaults(func=cmd_refit)
    for name, (module, add, run, text) in LAZY.items():
        lazy = sub.add_parser(name, help=text)
        if name == lazy_command:  # import only what this command line needs (torch only for `train`)
            mod = importlib.import_module(module)
            getattr(mod, add)(lazy)
            lazy.set_defaults(func=getattr(mod, run))
    return parser


# subcommands whose arguments live in their own module
LAZY = {
    "train": ("service.training.cli", "add_train_arguments", "run_train",
              "train a classifier (torch) and export it to the repository"),
    "register": ("service.repository.register", "add_register_arguments", "run_register",
                 "validate an ONNX classifier made elsewhere and write its card"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
