"""Report sections for the MNIST-1D studies: Mukhoti et al. 2020, Komisarenko & Kull 2024, Kimura &
Naganuma 2024.  Each function returns (markdown, verdict lines)."""

from __future__ import annotations

import numpy as np

from experiments.science.report_tables import (
    PAIRED_HEADER,
    Row,
    ci_text,
    column,
    combine,
    compare,
    p_text,
    paired_rows,
    select,
    table,
    verdict,
)
from experiments.science.stats import spearman, wilcoxon_p

FOCAL_ARMS = ("FL-1", "FL-3", "FLSD-53")


def _arms(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r["arm"] for r in rows))


def mukhoti(rows: list[Row]) -> tuple[str, list[str]]:
    arms = _arms(rows)
    ce = select(rows, arm="CE")
    summary = table(
        ("arm", "accuracy %", "raw ECE %", "raw NLL", "TS ECE %", "TS NLL", "TS fitted T", "train loss"),
        [
            [
                arm,
                ci_text(column(select(rows, arm=arm), "raw.accuracy"), 100),
                ci_text(column(select(rows, arm=arm), "raw.ece"), 100),
                ci_text(column(select(rows, arm=arm), "raw.nll")),
                ci_text(column(select(rows, arm=arm), "TS.ece"), 100),
                ci_text(column(select(rows, arm=arm), "TS.nll")),
                ci_text(column(select(rows, arm=arm), "TS.T")),
                ci_text(column(select(rows, arm=arm), "train_loss")),
            ]
            for arm in arms
        ],
    )
    focal = [a for a in FOCAL_ARMS if a in arms]
    body, raw_ece, ts_ece, raw_nll, acc = [], [], [], [], []
    for arm in focal:
        a = select(rows, arm=arm)
        for key, scale, lower, bucket in (
            ("raw.ece", 100, True, raw_ece),
            ("raw.nll", 1, True, raw_nll),
            ("TS.ece", 100, True, ts_ece),
            ("TS.nll", 1, True, None),
            ("raw.accuracy", 100, False, acc),
        ):
            result = compare(a, ce, key, lower_is_better=lower)
            if bucket is not None:
                bucket.append((arm, result))
            body += paired_rows([(f"{arm} vs CE: {key}", lambda r=result: r)], scale)
    paired_table = table(PAIRED_HEADER, body)
    log_t = {arm: np.log(column(select(rows, arm=arm), "TS.T")) for arm in arms}
    t_rows = []
    for arm in arms:
        t_rows.append(
            [
                arm,
                ci_text(np.exp(log_t[arm])),
                p_text(wilcoxon_p(log_t[arm])),
                f"{int(np.sum(log_t[arm] > 0))}/{log_t[arm].size}",
            ]
        )
    t_table = table(("arm", "TS T (mean ± CI)", "Wilcoxon p (log T = 0)", "seeds with T > 1"), t_rows)
    closer = [(arm, compare_abs_log_t(log_t[arm], log_t["CE"])) for arm in focal]
    verdicts = [
        _line("Mukhoti: focal losses lower raw ECE than CE", raw_ece, True, 100, "pp ECE"),
        _line("Mukhoti: focal losses lower raw NLL than CE", raw_nll, True, 1, "nats"),
        _line("Mukhoti: after TS focal models still have lower ECE than CE", ts_ece, True, 100, "pp ECE"),
        _accuracy_line(acc),
        _t_line(log_t["CE"], closer),
    ]
    text = "\n\n".join(
        [
            "Test metrics per training loss (mean ± 95% CI over seeds):",
            summary,
            "Paired differences against CE (A = the focal arm, B = CE; ECE in %):",
            paired_table,
            "Fitted temperature of TS on the validation split (the paper: CE T > 1, focal T ≈ 1):",
            t_table,
            "|log T| of each focal arm against CE's (closer to 1 = smaller |log T|): "
            + "; ".join(
                f"{arm}: diff {r.diff.mean:+.3f}, p {p_text(r.p_value)}, wins {r.win_text}" for arm, r in closer
            ),
        ]
    )
    return text, verdicts


def compare_abs_log_t(a: np.ndarray, b: np.ndarray):  # type: ignore[no-untyped-def]
    from experiments.science.stats import paired

    return paired(np.abs(a), np.abs(b), lower_is_better=True)


def _effects(results, scale: float, unit: str) -> str:  # type: ignore[no-untyped-def]
    return "; ".join(
        f"{arm} {scale * r.diff.mean:+.3g} {unit} (p {p_text(r.p_value)}, {r.win_text} wins)" for arm, r in results
    )


def _line(claim: str, results, claim_lower: bool, scale: float, unit: str) -> str:  # type: ignore[no-untyped-def]
    overall = combine([verdict(r, claim_lower=claim_lower) for _, r in results])
    return f"**{claim}** — {overall}: {_effects(results, scale, unit)}"


def _accuracy_line(results) -> str:  # type: ignore[no-untyped-def]
    hurt = [arm for arm, r in results if r.p_value < 0.05 and r.diff.mean < 0]
    overall = "supported" if not hurt else ("not supported" if len(hurt) == len(results) else "mixed")
    return (
        f"**Mukhoti: focal losses do not hurt accuracy** — {overall}"
        f"{' (significant loss for ' + ', '.join(hurt) + ')' if hurt else ''}: {_effects(results, 100, 'pp')}"
    )


def _t_line(log_t_ce: np.ndarray, closer) -> str:  # type: ignore[no-untyped-def]
    p_ce = wilcoxon_p(log_t_ce)
    ce_ok = p_ce < 0.05 and float(np.mean(log_t_ce)) > 0
    near = [verdict(r, claim_lower=True) for _, r in closer]
    overall = combine([("supported" if ce_ok else "not significant"), *near])
    return (
        f"**Mukhoti: fitted T pattern (CE T > 1, focal T closer to 1)** — {overall}: CE mean T "
        f"{float(np.exp(log_t_ce).mean()):.3g} (p {p_text(p_ce)} for log T = 0); |log T| vs CE: "
        + "; ".join(f"{arm} {r.diff.mean:+.3g} (p {p_text(r.p_value)})" for arm, r in closer)
    )


def komisarenko(rows: list[Row]) -> tuple[str, list[str]]:
    arms = _arms(rows)
    body, worse, nll_results, grid_results = [], [], [], []
    for arm in arms:
        r = select(rows, arm=arm)
        for key, scale in (("nll", 1), ("ece", 100), ("adaece", 100)):
            result = compare(r, r, f"FTS.{key}", lower_is_better=True, key_b=f"TS.{key}")
            body += paired_rows([(f"{arm}: FTS vs TS, {key}", lambda x=result: x)], scale)
            if key == "nll":
                nll_results.append((arm, result))
                if result.diff.mean > 0:
                    worse.append(arm)
        grid = compare(r, r, "FTS-grid.nll", lower_is_better=True, key_b="FTS.nll")
        grid_results.append((arm, grid))
    fts_table = table(PAIRED_HEADER, body)
    grid_table = table(
        ("arm", "FTS γ (optimiser)", "FTS T", "FTS-grid γ", "grid NLL − optimiser NLL", "Wilcoxon p", "grid wins"),
        [
            [
                arm,
                ci_text(column(select(rows, arm=arm), "FTS.gamma")),
                ci_text(column(select(rows, arm=arm), "FTS.T")),
                ci_text(column(select(rows, arm=arm), "FTS-grid.gamma")),
                f"{g.diff.mean:+.2e} ± {g.diff.half_width:.1e}",
                p_text(g.p_value),
                g.win_text,
            ]
            for arm, g in grid_results
        ],
    )
    runs = [(r["arm"], r["seed"]) for r in rows if r["FTS.nll"] > r["TS.nll"]]
    verdicts = [
        _line("Komisarenko & Kull: FTS has lower held-out NLL than TS", nll_results, True, 1, "nats"),
        _grid_line(grid_results),
        f"**When FTS is worse than TS (test NLL)** — on average for: {', '.join(worse) or 'no arm'}; "
        f"in {len(runs)}/{len(rows)} runs.",
    ]
    text = "\n\n".join(
        [
            "FTS (our optimiser: paper grid then joint refinement) against TS, both fitted on the validation "
            "split, on the test split (A = FTS, B = TS):",
            fts_table,
            "Fitted γ and the paper's grid-only procedure (γ ∈ the grid, T fitted per γ, best validation NLL) "
            "against our optimiser, test NLL:",
            grid_table,
        ]
    )
    return text, verdicts


def _grid_line(results) -> str:  # type: ignore[no-untyped-def]
    better = [arm for arm, r in results if r.p_value < 0.05 and r.diff.mean > 0]
    worse = [arm for arm, r in results if r.p_value < 0.05 and r.diff.mean < 0]
    overall = (
        "no significant difference"
        if not better and not worse
        else f"optimiser better for {', '.join(better) or 'none'}, grid better for {', '.join(worse) or 'none'}"
    )
    return (
        f"**Komisarenko & Kull: does fitting γ by the paper's grid or by our optimiser matter** — {overall}: "
        + _effects(results, 1, "nats (grid − optimiser)")
    )


def _pos(rho: float, p: float) -> str:
    return "supported" if (p < 0.05 and rho > 0) else ("contradicted" if p < 0.05 else "not significant")


CURVATURE = ("hessian_top_eig_train_loss", "hessian_top_eig_ce", "hessian_trace_train_loss", "hessian_trace_ce")


def kimura(rows: list[Row]) -> tuple[str, list[str]]:
    arms = _arms(rows)
    per_arm = table(
        ("arm", "λ_max train loss", "λ_max CE", "trace train loss", "trace CE", "raw ECE %"),
        [
            [
                arm,
                *(ci_text(column(select(rows, arm=arm), k)) for k in CURVATURE),
                ci_text(column(select(rows, arm=arm), "raw.ece"), 100),
            ]
            for arm in arms
        ],
    )
    ece = column(rows, "raw.ece")
    corr = [(k, *spearman(column(rows, k), ece)) for k in CURVATURE]
    gamma_rows = [r for r in rows if r["gamma"] is not None]
    gammas = column(gamma_rows, "gamma")
    by_gamma = [(k, *spearman(gammas, column(gamma_rows, k))) for k in CURVATURE]
    corr_table = table(
        ("quantity", "Spearman ρ with raw ECE (all runs)", "p", "Spearman ρ with γ (fixed-γ runs)", "p"),
        [
            [k, f"{rho:+.3f}", p_text(p), f"{rg:+.3f}", p_text(pg)]
            for (k, rho, p), (_, rg, pg) in zip(corr, by_gamma, strict=True)
        ],
    )

    def _lv(name: str, rho: float, p: float) -> str:
        return "supported" if (p < 0.05 and rho < 0) else ("contradicted" if p < 0.05 else "not significant")

    verdicts = [
        f"**Kimura & Naganuma: λ_max falls as γ grows** — training-loss Hessian: "
        f"{_lv('', by_gamma[0][1], by_gamma[0][2])} (ρ {by_gamma[0][1]:+.3f}, p {p_text(by_gamma[0][2])}); "
        f"CE Hessian: {_lv('', by_gamma[1][1], by_gamma[1][2])} (ρ {by_gamma[1][1]:+.3f}, p {p_text(by_gamma[1][2])})",
        f"**Kimura & Naganuma: flatter (smaller λ_max) ↔ better calibrated (positive ρ with raw ECE)** — "
        f"training-loss Hessian: {_pos(corr[0][1], corr[0][2])} (ρ {corr[0][1]:+.3f}, p {p_text(corr[0][2])}); "
        f"CE Hessian: {_pos(corr[1][1], corr[1][2])} (ρ {corr[1][1]:+.3f}, p {p_text(corr[1][2])})",
    ]
    text = "\n\n".join(
        [
            "Curvature at the trained weights on a seeded probe subset of the training rows (power iteration and "
            "Hutchinson, service/training/curvature.py). Caveat (docs/training_report.md, papers.md §4.2): the "
            "Hessian of a focal loss is scaled down by the (1 − p)^γ factor, so λ_max of the *training loss* falls "
            "with γ by construction; the CE Hessian at the same weights measures geometry on a common scale.",
            per_arm,
            corr_table,
        ]
    )
    return text, verdicts
