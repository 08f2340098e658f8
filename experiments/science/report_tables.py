"""Markdown helpers: rows → paired arrays → tables and verdicts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from experiments.science.stats import Paired, fmt_ci, mean_ci, paired

Row = dict[str, Any]
ALPHA = 0.05


def select(rows: Iterable[Row], **where: Any) -> list[Row]:
    """Rows matching every ``key=value``, sorted by seed (so two selections pair up seed by seed)."""
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return sorted(chosen, key=lambda r: r["seed"])


def column(rows: Sequence[Row], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows])


def compare(a: Sequence[Row], b: Sequence[Row], key: str, *, lower_is_better: bool, key_b: str | None = None) -> Paired:
    if [r["seed"] for r in a] != [r["seed"] for r in b]:
        raise ValueError("paired comparison over different seeds")
    return paired(column(a, key), column(b, key_b or key), lower_is_better=lower_is_better)


def table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def ci_text(values: np.ndarray, scale: float = 1.0) -> str:
    ci = mean_ci(scale * values)
    return fmt_ci(ci.mean, ci.half_width)


def p_text(p: float) -> str:
    return f"{p:.3g}"


def diff_text(result: Paired, scale: float = 1.0) -> str:
    return fmt_ci(scale * result.diff.mean, scale * result.diff.half_width)


def verdict(result: Paired, *, claim_lower: bool) -> str:
    """supported / contradicted (significant, opposite direction) / not significant, at α = 0.05."""
    lower = result.diff.mean < 0
    if result.p_value < ALPHA:
        return "supported" if lower == claim_lower else "contradicted"
    return "not significant"


def combine(verdicts: Sequence[str]) -> str:
    if all(v == "supported" for v in verdicts):
        return "supported"
    if any(v == "supported" for v in verdicts):
        return "mixed"
    if any(v == "contradicted" for v in verdicts):
        return "not supported (contradicted)"
    return "not supported (no significant difference)"


def paired_rows(pairs: Iterable[tuple[str, Callable[[], Paired]]], scale: float = 1.0) -> list[list[str]]:
    """Table body: label, mean a, mean b, diff ± CI, Wilcoxon p, wins."""
    out = []
    for label, make in pairs:
        r = make()
        out.append(
            [
                label,
                fmt_ci(scale * r.a.mean, scale * r.a.half_width),
                fmt_ci(scale * r.b.mean, scale * r.b.half_width),
                diff_text(r, scale),
                p_text(r.p_value),
                r.win_text,
            ]
        )
    return out


PAIRED_HEADER = ("comparison", "A (mean ± 95% CI)", "B", "A − B", "Wilcoxon p", "A wins")
