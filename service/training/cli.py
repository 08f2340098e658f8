"""``calibserve train``: argument definitions and the runner (torch is imported only when it runs)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from service.training.options import ARCHITECTURES, BUNDLED_DATASETS, GENERATED_DATASETS, LOSS_NAMES, OPTIMISERS


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden takes comma-separated widths like 64 or 128,64; got {text!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--hidden needs positive widths; got {text!r}")
    return widths


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand's options to ``parser``."""
    parser.add_argument(
        "--dataset",
        default="digits",
        help=f"bundled ({', '.join(BUNDLED_DATASETS)}) or generated ({', '.join(GENERATED_DATASETS)}) dataset, "
        "or the name recorded for --data-file",
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="rows to generate for --dataset mnist1d (default 5000)"
    )
    parser.add_argument("--data-file", type=Path, default=None, help="CSV (with header) or NPZ (arrays X, y)")
    parser.add_argument("--label-column", default=None, help="CSV label column name (default: the last column)")
    parser.add_argument("--loss", default="flsd53", choices=LOSS_NAMES)
    parser.add_argument("--gamma", type=float, default=None, help="focal-loss gamma (required for --loss focal)")
    parser.add_argument("--beta", type=float, default=1.0, help="beta for --loss anyloss_fbeta")
    parser.add_argument("--name", default=None, help="model name in the repository (default: the dataset)")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--repository", type=Path, default=Path("models"), help="model repository root")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--fixed-epochs",
        action="store_true",
        help="train all --epochs without early stopping and keep the last weights (the papers' regime)",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMISERS,
        default="adam",
        help="adam (fixed lr) or sgd (momentum 0.9, lr ×0.1 after 50%% and 75%% of the epochs)",
    )
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: adam 1e-3, sgd 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="mlp")
    parser.add_argument("--hidden", type=_hidden, default=(64,), help="hidden widths, e.g. 64 or 128,64")
    parser.add_argument(
        "--calibrator",
        default="auto",
        help="initial calibrator fitted on the validation split (default: auto)",
    )
    parser.add_argument("--no-curvature", action="store_true", help="skip the Hessian diagnostics")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version directory")


def run_train(args: argparse.Namespace) -> int:
    """Train and publish one model version; prints the version directory. Exit code 2 on bad input."""
    from service.training.data import TrainingDataError
    from service.training.pipeline import train_and_export

    started = time.perf_counter()
    try:
        directory = train_and_export(
            dataset=args.dataset,
            loss=args.loss,
            gamma=args.gamma,
            beta=args.beta,
            name=args.name or args.dataset,
            version=args.version,
            repository=args.repository,
            seed=args.seed,
            epochs=args.epochs,
            hidden=tuple(args.hidden),
            arch=args.arch,
            calibrator=args.calibrator,
            curvature=not args.no_curvature,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            data_file=args.data_file,
            label_column=args.label_column,
            samples=args.samples,
            optimiser=args.optimizer,
            lr=args.lr,
            patience=None if args.fixed_epochs else 10,
        )
    except (TrainingDataError, FileExistsError, ValueError) as exc:
        print(f"calibserve train: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {directory} in {time.perf_counter() - started:.1f}s")
    return 0
