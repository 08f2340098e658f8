"""The re-fit options, declared once: the admin HTTP body and ``calibserve refit`` both parse into this."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import InvalidInput

Policy = Literal["never", "if_better", "always", "if_better_in_shadow"]
ConformalKind = Literal["lac", "aps", "mondrian_lac", "mondrian_aps", "none"]


class RefitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(default="temperature", max_length=64,
                        description="a calibration method name, or 'auto' (held-out NLL picks one)")
    last_n: int | None = Field(default=10_000, ge=1, le=10_000_000, description="newest labelled predictions")
    start: datetime | None = Field(default=None, description="window start (prediction time, ISO 8601)")
    end: datetime | None = Field(default=None, description="window end (exclusive)")
    dry_run: bool = Field(default=False, description="fit and evaluate, store nothing")
    activate: Policy = Field(default="if_better",
                             description="if_better: only when the paired NLL gain's 95% CI is above 0; "
                                         "if_better_in_shadow: store it in shadow, activated once live labels "
                                         "prove it better (service.handlers.shadow)")
    test_size: float = Field(default=0.3, gt=0.05, lt=0.95, description="held-out share of the labels")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    min_labels: int = Field(default=100, ge=10, le=10_000_000)
    min_per_class: int = Field(default=2, ge=1, le=1_000_000)
    params: dict[str, Any] = Field(default_factory=dict, description="the method's hyperparameters")
    conformal: ConformalKind = Field(default="lac", description="conformal sets fitted on the held-out labels "
                                     "with the calibrator (activated with it); 'none' fits none")


def parse_options(data: bytes | dict[str, Any]) -> RefitOptions:
    """Validated options, or ``InvalidInput`` naming the first bad field."""
    try:
        if isinstance(data, bytes):
            return RefitOptions.model_validate_json(data or b"{}")
        return RefitOptions.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None


CLI_FIELDS = ("method", "last_n", "start", "end", "dry_run", "activate", "test_size", "seed", "min_labels",
              "min_per_class")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """``--method``, ``--last-n``, … from the fields above (defaults and help included)."""
    for name in CLI_FIELDS:
        info = RefitOptions.model_fields[name]
        flag = "--" + name.replace("_", "-")
        if info.annotation is bool:
            parser.add_argument(flag, action="store_true", help=info.description)
        elif name == "activate":
            parser.add_argument(flag, choices=get_args(Policy), default=info.default, help=info.description)
        else:
            parser.add_argument(flag, default=info.default, help=info.description)


def options_from_cli(args: argparse.Namespace) -> RefitOptions:
    return parse_options({name: getattr(args, name) for name in CLI_FIELDS if getattr(args, name) is not None})
