"""The re-fit options are declared once: the HTTP body and ``calibserve refit`` parse into the same model."""

from __future__ import annotations

import argparse

import pytest

from service.errors import InvalidInput
from service.handlers.refit_options import RefitOptions, add_cli_arguments, options_from_cli, parse_options


def _cli(*argv: str) -> RefitOptions:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    return options_from_cli(parser.parse_args(list(argv)))


def test_cli_defaults_equal_the_body_defaults() -> None:
    assert _cli() == parse_options(b"{}") == RefitOptions()


def test_cli_and_body_give_the_same_options() -> None:
    body = parse_options(b'{"method": "auto", "last_n": 500, "dry_run": true, "activate": "always", "seed": 3}')
    assert _cli("--method", "auto", "--last-n", "500", "--dry-run", "--activate", "always", "--seed", "3") == body


@pytest.mark.parametrize(("body", "field"), [
    (b'{"activate": "sometimes"}', "activate"), (b'{"last_n": 0}', "last_n"), (b'{"test_size": 0.99}', "test_size"),
    (b'{"surprise": 1}', "surprise"), (b'{"seed": 100000000000000000000}', "seed"), (b"[1]", "body")])
def test_bad_options_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{field}"):
        parse_options(body)


def test_cli_bad_value_is_the_same_error() -> None:
    with pytest.raises(InvalidInput, match="^last_n"):
        _cli("--last-n", "0")
