"""Shadow promotion simulation: labels until ``if_better_in_shadow`` promotes a truly better shadow, and how
often it promotes a shadow that is not better (target 0).

The world (semi-synthetic, as in bench/drift_simulation.py, so "calibrated" holds by construction): the inputs
are the digits demo model's validation + test rows, their logits come from the real ONNX model, and each label
is drawn from the probabilities of the model's own fitted temperature T0 (the truth). Labels arrive in feedback
batches of B; after each batch the policy is checked, as the service does at every feedback commit.

  wrong_flat     active T = 4·T0 (far too flat), shadow T0 (correct)        → labels until promotion
  wrong_sharp    active T = T0/4 (far too sharp), shadow T0                  → labels until promotion
  mild           active T = 1.5·T0, shadow T0                                 → labels until promotion
  same_params    shadow = the active calibrator's params (every d_i = 0)     → promotions (target 0)
  equal_loss     active T = 0.8·T0, shadow T_b > T0 solved so that the expected NLL under the truth is equal:
                 a true null with non-zero per-row differences               → promotions (target 0)
  worse          active T0 (correct), shadow 1.5·T0                          → promotions (target 0)

Each scenario runs with both confidence sequences the service offers (``CALIBSERVE_SHADOW_BOUND``): the
empirical-Bernstein one (default) and Hoeffding's (``paired.improvement_lower_bound``).

Two drivers: ``pure`` calls the functions the feedback path calls (``shadow_compare.score_pair`` per batch,
summed ``Evidence``, ``should_promote`` with the service's clip 2 and α = 0.05, margin 0); ``real`` drives
the real Predictor + FeedbackIngest + ShadowScoring against SQLite (the shadow's policy activates it in the
database; default bound) on the same label streams, for the first seeds of wrong_flat, to show both give the
same count. Last, the cost of scoring: one 1,000-label feedback commit with 0, 1 and 3 shadows.

    python -m bench shadow_promotion [--runs 20] [--null-runs 50] [--real 3] [--batch 50] [--no-cost]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.drift_simulation import ensure_model
from service.calibration.shadow_compare import BOUNDS, Evidence, score_pair, should_promote
from service.calibration.temperature import TemperatureScaling

CLIP, ALPHA, MARGIN = 2.0, 0.05, 0.0  # the Settings defaults (shadow_clip, shadow_alpha) and the body default


def temperature(t: float) -> TemperatureScaling:
    cal = TemperatureScaling()
    cal.temperature_ = float(t)
    return cal


def load(model_dir: Path | None) -> tuple[Path, np.ndarray, np.ndarray, float]:
    """(model dir, input rows, their logits, the fitted temperature T0) of the digits demo model."""
    import json

    from service.repository.registry import load_version
    from service.training.data import load_bundled, split_dataset

    model_dir = ensure_model(model_dir)
    split = split_dataset(load_bundled("digits"), seed=0)
    rows = np.concatenate([split.X_val, split.X_test]).astype(np.float64)
    logits = load_version(model_dir).classifier.scores(rows).astype(np.float32).astype(np.float64)  # as stored
    spec = json.loads((model_dir / "calibrator.json").read_text())
    assert spec["method"] == "temperature", "the demo model's calibrator is a temperature"
    return model_dir, rows, logits, float(spec["params"]["temperature"])


def expected_nll(logits: np.ndarray, truth: np.ndarray, t: float) -> float:
    q = temperature(t).predict_proba(logits)
    return float(-(truth * np.log(np.maximum(q, 1e-12))).sum(axis=1).mean())


def equal_loss_partner(logits: np.ndarray, truth: np.ndarray, t0: float, t_a: float) -> float:
    """T_b > T0 with the same expected NLL as T_a < T0 (bisection; E NLL is increasing in T above T0)."""
    target, lo, hi = expected_nll(logits, truth, t_a), t0, t0 * 10
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected_nll(logits, truth, mid) < target else (lo, mid)
    return (lo + hi) / 2


def stream(truth: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(truth), n)
    p = truth[idx]
    return idx, np.minimum((p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), p.shape[1] - 1)


def labels_to_promotion(logits: np.ndarray, idx: np.ndarray, y: np.ndarray, t_active: float, t_shadow: float,
                        batch: int, clip: float = CLIP, bound: str = "bernstein") -> float:
    """Labels until the policy promotes (checked after every batch), inf if never within the stream."""
    pa, ps = temperature(t_active).predict_proba(logits[idx]), temperature(t_shadow).predict_proba(logits[idx])
    evidence = Evidence()
    for start in range(0, len(y), batch):
        s = slice(start, start + batch)
        evidence = evidence + score_pair(pa[s], ps[s], y[s], clip=clip).evidence
        if should_promote(evidence, clip=clip, alpha=ALPHA, margin=MARGIN, bound=bound):
            return float(min(start + batch, len(y)))
    return float("inf")


def fresh_services(model_dir: Path) -> Any:
    """The services as the app builds them, on a fresh migrated SQLite database, writer running."""
    from service.app import build_services
    from service.db.migrate import upgrade
    from service.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="calibserve-shadow-"))
    url = f"sqlite:///{work / 'db.sqlite'}"
    upgrade(url)
    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent,
                                       spool_dir=work / "spool", log_flush_seconds=0.01))
    services.registry.load_all()
    services.writer.start()
    return services


def serve(services: Any, instances: np.ndarray) -> list[str]:
    """Prediction ids of one /v1 predict call through the real Predictor (written to the prediction log)."""
    import anyio
    import orjson

    from service.handlers.v1_codec import V1Codec

    async def read() -> bytes:
        return orjson.dumps({"instances": instances.tolist()})

    async def call() -> Any:
        return await services.predictor.predict(V1Codec(), "digits", None, read, {})

    return [p["prediction_id"] for p in orjson.loads(anyio.run(call).body)["predictions"]]


def commit_costs(model_dir: Path, rows: np.ndarray, truth: np.ndarray, shadows: tuple[int, ...] = (0, 1, 3),
                 batch: int = 1000, repeats: int = 15) -> dict[int, float]:
    """Median ms of one ``submit_sync`` of ``batch`` new labels (SQLite), per number of shadows; the
    configurations take turns batch by batch, so a load change on the shared machine hits them alike."""
    import time

    from sqlalchemy import func, select

    from service.db import calibrators as calibrator_rows
    from service.db.tables import ShadowPairStat
    from service.handlers.shadow import ShadowOptions

    built = {k: fresh_services(model_dir) for k in shadows}
    times: dict[int, list[float]] = {k: [] for k in shadows}
    try:
        for k, services in built.items():
            with services.sessions() as session:
                stored = [calibrator_rows.insert_calibrator(
                    session=session, model="digits", version=1, method="temperature",
                    params={"temperature": 1.0 + j}, source="refit", created_by="bench") for j in range(k)]
                session.commit()
                cvs = [r.calibrator_version for r in stored]
            for cv in cvs:
                services.shadows.put(model="digits", version=1, calibrator_version=cv, options=ShadowOptions(),
                                     actor="bench")
        for r in range(repeats + 1):
            idx, y = stream(truth, batch, 1000 + r)
            for k, services in built.items():
                ids = serve(services, rows[idx])
                services.writer.flush()
                t = time.perf_counter()
                services.feedback.submit_sync(list(zip(ids, y.tolist(), strict=True)))
                times[k].append(time.perf_counter() - t)
        for k, services in built.items():
            with services.sessions() as session:
                scored = session.scalar(select(func.coalesce(func.sum(ShadowPairStat.count), 0.0)))
            assert scored == (repeats + 1) * batch * k, (scored, k)  # every label scored for every shadow
        return {k: float(np.median(v[1:]) * 1000) for k, v in times.items()}  # the first batch warms caches
    finally:
        for services in built.values():
            services.writer.stop()
            services.engine.dispose()


def real_labels_to_promotion(model_dir: Path, rows: np.ndarray, idx: np.ndarray, y: np.ndarray, t_active: float,
                             t_shadow: float, batch: int) -> float:
    """The same stream through the real services on a fresh SQLite database."""
    from service.db import calibrators as calibrator_rows
    from service.handlers.shadow import ShadowOptions

    services = fresh_services(model_dir)
    try:
        with services.sessions() as session:
            stored = [calibrator_rows.insert_calibrator(session=session, model="digits", version=1,
                                                        method="temperature", params={"temperature": t},
                                                        source="refit", created_by="bench")
                      for t in (t_active, t_shadow)]
            calibrator_rows.activate_calibrator(session=session, row=stored[0])
            cvs = [r.calibrator_version for r in stored]
            session.commit()
        services.registry.sync_calibrators()
        services.shadows.put(model="digits", version=1, calibrator_version=cvs[1],
                             options=ShadowOptions(policy="if_better_in_shadow"), actor="bench")
        for start in range(0, len(y), batch):
            ids = serve(services, rows[idx[start:start + batch]])
            services.feedback.submit_sync(list(zip(ids, y[start:start + batch].tolist(), strict=True)))
            with services.sessions() as session:
                active = calibrator_rows.get_active(session=session, model="digits", version=1)
            if active is not None and active.calibrator_version == cvs[1]:
                return float(min(start + batch, len(y)))
        return float("inf")
    finally:
        services.writer.stop()
        services.engine.dispose()


def summary(delays: list[float]) -> dict[str, Any]:
    d = np.asarray(delays)
    hit = d[np.isfinite(d)]
    return {"runs": len(d), "promoted": int(hit.size),
            "median": float(np.median(hit)) if hit.size else None,
            "p90": float(np.quantile(hit, 0.9)) if hit.size else None, "max": float(hit.max()) if hit.size else None}


def fmt(x: Any) -> str:
    return "—" if x is None else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="seeds per better-shadow scenario")
    ap.add_argument("--null-runs", type=int, default=50, help="runs per no-change scenario")
    ap.add_argument("--horizon", type=int, default=20_000, help="labels per run")
    ap.add_argument("--batch", type=int, default=50, help="labels per feedback batch (one policy check each)")
    ap.add_argument("--real", type=int, default=3, help="wrong_flat seeds also driven through the real services")
    ap.add_argument("--clip", type=float, default=CLIP, help="clip B of the NLL differences (service: shadow_clip)")
    ap.add_argument("--cost", action=argparse.BooleanOptionalAction, default=True,
                    help="also time a 1,000-label feedback commit with 0, 1 and 3 shadows")
    ap.add_argument("--model-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    model_dir, rows, logits, t0 = load(args.model_dir)
    truth = temperature(t0).predict_proba(logits)
    t_b = equal_loss_partner(logits, truth, t0, 0.8 * t0)
    scenarios = {  # name → (active T, shadow T, a better shadow?)
        "wrong_flat": (4 * t0, t0, True), "wrong_sharp": (t0 / 4, t0, True), "mild": (1.5 * t0, t0, True),
        "same_params": (t0, t0, False), "equal_loss": (0.8 * t0, t_b, False), "worse": (t0, 1.5 * t0, False),
    }
    print(f"pool {len(truth)} inputs, truth T0 = {t0:.4f}; equal_loss pair T_a = {0.8 * t0:.4f}, T_b = {t_b:.4f} "
          f"(E NLL {expected_nll(logits, truth, 0.8 * t0):.4f} vs {expected_nll(logits, truth, t_b):.4f}); "
          f"clip {args.clip}, α {ALPHA}, margin {MARGIN}; a check every {args.batch} labels, "
          f"horizon {args.horizon:,}\n")
    head = (f"{'bound':9s} {'scenario':12s} {'active T':>8s} {'shadow T':>8s} {'E ΔNLL':>8s} {'runs':>5s} "
            f"{'promoted':>8s} {'median labels':>13s} {'p90':>7s} {'max':>7s}")
    print(head)
    print("-" * len(head))
    for bound in BOUNDS:
        for name, (ta, ts, better) in scenarios.items():
            n = args.runs if better else args.null_runs
            delays = [labels_to_promotion(logits, *stream(truth, args.horizon, seed), ta, ts, args.batch, args.clip,
                                          bound) for seed in range(n)]
            s = summary(delays)
            gain = expected_nll(logits, truth, ta) - expected_nll(logits, truth, ts)
            print(f"{bound:9s} {name:12s} {ta:8.4f} {ts:8.4f} {gain:+8.4f} {s['runs']:5d} {s['promoted']:8d} "
                  f"{fmt(s['median']):>13s} {fmt(s['p90']):>7s} {fmt(s['max']):>7s}", flush=True)
    if args.real and args.clip == CLIP:
        print(f"\nwrong_flat through the real Predictor + FeedbackIngest + ShadowScoring on SQLite "
              f"(same label streams), {args.real} seeds:")
        ta, ts, _ = scenarios["wrong_flat"]
        for seed in range(args.real):
            idx, y = stream(truth, args.horizon, seed)
            pure = labels_to_promotion(logits, idx, y, ta, ts, args.batch)
            real = real_labels_to_promotion(model_dir, rows, idx, y, ta, ts, args.batch)
            print(f"  seed {seed}: pure {fmt(pure)} labels, real {fmt(real)} labels "
                  f"({'same' if pure == real else 'DIFFERENT'})", flush=True)


    if args.cost:
        print("\nfeedback commit cost (SQLite, batches of 1,000 new labels, median of 15, configurations "
              "interleaved; the predict path is unchanged):")
        costs = commit_costs(model_dir, rows, truth)
        for k, ms in costs.items():
            print(f"  {k} shadows: {ms:7.1f} ms per batch ({ms / 1000:6.3f} ms per label) "
                  f"= {ms / costs[0]:4.2f}× no shadow", flush=True)


if __name__ == "__main__":
    main()
