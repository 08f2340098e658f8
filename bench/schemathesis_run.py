"""Contract run: schemathesis against a live ``calibserve serve``, with and without the admin token.

``python -m bench schemathesis_run [--examples 200] [--exclude-fast-path]``: every operation of the OpenAPI
document (the predict/infer fast path included) gets
``--examples`` generated requests per token, checked with not_a_server_error, status_code_conformance,
response_schema_conformance and content_type_conformance. Prints one row per operation and token: requests
sent, statuses seen, failures (first failure's message). ``tests/api/test_openapi.py`` runs the same
function with a dozen examples per operation.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FAST_PATH = r"/(predict|infer)$"
TOKEN = "bench-admin-token"


@dataclass
class OperationResult:
    operation: str
    auth: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failure: str | None = None


PIN = {"model": "digits", "version": "1", "ref": "1"}  # the served model: past the 404 into each handler


def run_contract(base_url: str, *, headers: dict[str, str], examples: int, auth: str = "",
                 include_fast_path: bool = True) -> list[OperationResult]:
    """Generate ``examples`` cases per operation and check each response; never raises on a failure.

    Operations with a ``model`` path parameter run twice: with generated names (mostly 404s) and with the
    served model and version pinned, so generated query strings and bodies reach the handlers."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
    loaded = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = loaded if include_fast_path else loaded.exclude(path_regex=FAST_PATH)
    results = []
    for item in schema.get_all_operations():
        if isinstance(item, Err):  # an operation the schema cannot describe: the contract itself is broken
            raise item.err()
        operation = item.ok()
        pins: list[dict[str, str]] = [{}] + ([PIN] if "{model}" in operation.path else [])
        for pin in pins:
            label = f"{operation.method.upper()} {operation.path}" + (" [digits/1]" if pin else "")
            result = OperationResult(label, auth)
            try:
                _property(operation, result, base_url, headers, checks, examples, pin)()
            except (Exception, BaseExceptionGroup) as exc:  # the shrunk failure (a group): record it, go on
                result.failure = " ".join(str(exc).split())[:300]
            results.append(result)
    return results


def _property(operation: Any, result: OperationResult, base_url: str, headers: dict[str, str],
              checks: list[Any], examples: int, pin: dict[str, str]) -> Any:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None, print_blob=False)
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        for name, value in pin.items():
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks)
        result.requests += 1
        result.statuses[response.status_code] += 1

    return check


def seed_traffic(base_url: str) -> None:
    """A few predictions with labels, so the data-dependent routes have something to answer with."""
    body = httpx.post(f"{base_url}/v1/models/digits/predict", json={"instances": [[0.0] * 64] * 20}).json()
    ids = [p["prediction_id"] for p in body["predictions"]]
    httpx.post(f"{base_url}/v1/feedback", json={"items": [{"prediction_id": i, "label": 1} for i in ids]})


def print_table(results: list[OperationResult]) -> None:
    print(f"| {'operation':90s} | auth      | requests | statuses                        | result |")
    print(f"|{'-' * 92}|-----------|----------|---------------------------------|--------|")
    for r in results:
        statuses = " ".join(f"{s}×{n}" for s, n in sorted(r.statuses.items()))
        print(f"| {r.operation:90s} | {r.auth:9s} | {r.requests:8d} | {statuses:31s} | "
              f"{'FAIL' if r.failure else 'ok':6s} |")
    for r in results:
        if r.failure:
            print(f"\nFAIL {r.operation} ({r.auth}): {r.failure}")
    total = sum(r.requests for r in results)
    server_errors = sum(n for r in results for s, n in r.statuses.items() if s >= 500)
    print(f"\n{len(results)} operation runs, {total} requests, {server_errors} 5xx, "
          f"{sum(1 for r in results if r.failure)} failing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench schemathesis_run", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="generated requests per operation and token")
    parser.add_argument("--exclude-fast-path", action="store_true", help="leave out the predict/infer operations")
    parser.add_argument("--repository", type=Path, help="a model repository with the digits model (else trained)")
    args = parser.parse_args(argv)
    from bench.hostile import serve  # one way to start the real server for every fault program

    work = Path(tempfile.mkdtemp(prefix="calibserve-schemathesis-"))
    try:
        with serve(work, args.repository, ADMIN_TOKEN=TOKEN) as server:
            base_url = server.base_url
            seed_traffic(base_url)
            results = run_contract(base_url, headers={}, examples=args.examples, auth="anonymous",
                                   include_fast_path=not args.exclude_fast_path)
            results += run_contract(base_url, headers={"Authorization": f"Bearer {TOKEN}"}, examples=args.examples,
                                    auth="admin", include_fast_path=not args.exclude_fast_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
