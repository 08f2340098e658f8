"""Part of ``bench.drift_simulation`` (not a bench of its own): false alarms per DAY of continuous checking,
and labels to detection, for the fixed-window rules and the anytime-valid confidence sequence (issue 16).

Time-based, as the service runs: labels arrive at ``labels_per_day`` (Poisson times), the reference is the
first K = 6 one-hour windows after activation, and from then on the window rules judge the last hour once a
minute (at every bucket boundary; the service re-checks every ``monitor_interval_seconds`` = 15 s, so its
figure is at least this). The confidence sequence covers every label since activation and is checked after
EVERY label. A "false alarm day" is a calm day with at least one alarm; an episode is an ok → drifting flip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.drift_simulation import T_REF, K, World, judge, window_state
from service.calibration.sequential import gap_sequence_path
from service.monitoring.reference import Reference

CS_ALPHA = 0.05  # Settings.drift_cs_alpha
LABEL_SHIFT_TOLERANCE = 0.02  # Settings.label_shift_tolerance
MINUTES = 1440


def cs_alarms(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Alarm after each label of the confidence sequence for accuracy − confidence (null: calibrated)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    return gap_sequence_path(conf, correct, alpha=CS_ALPHA)[2]


def false_alarm_days(world: World, days: int, labels_per_day: int, rng: np.random.Generator) -> dict[str, Any]:
    """Per rule: fraction of calm days with ≥ 1 alarm, and alarm episodes per day (a fresh activation per day)."""
    per_hour = labels_per_day / 24
    any_alarm: dict[str, int] = {}
    episodes: dict[str, int] = {}
    checks = 0
    for _ in range(days):
        ref_sets = [world.sample(int(rng.poisson(per_hour)), "none", rng) for _ in range(K)]
        reference = Reference(windows=[window_state(p, y, T_REF) for p, y in ref_sets])
        n = int(rng.poisson(labels_per_day))
        minute = np.sort(rng.uniform(0, MINUTES, n))
        probs, labels = world.sample(n, "none", rng)
        before: dict[str, bool] = {}
        fired: set[str] = set()
        for m in range(60, MINUTES + 1):
            lo, hi = np.searchsorted(minute, [m - 60, m])
            checks += 1
            for rule, alarm in judge(reference, probs[lo:hi], labels[lo:hi]).items():
                if alarm:
                    fired.add(rule)
                    episodes[rule] = episodes.get(rule, 0) + int(not before.get(rule, False))
                before[rule] = alarm
        cs = cs_alarms(np.concatenate([p for p, _ in ref_sets] + [probs]),
                       np.concatenate([y for _, y in ref_sets] + [labels]))
        if cs.any():
            fired.add("cs (new)")
            episodes["cs (new)"] = episodes.get("cs (new)", 0) + int(np.sum(np.diff(cs.astype(int)) == 1) + cs[0])
        for rule in [*before, "cs (new)"]:
            any_alarm[rule] = any_alarm.get(rule, 0) + int(rule in fired)
            episodes.setdefault(rule, 0)
    return {"days": days, "checks_per_day": checks / days,
            "rules": {r: (any_alarm[r] / days, episodes[r] / days) for r in any_alarm}}


def cs_lifetime(world: World, runs: int, days: int, labels_per_day: int, rng: np.random.Generator) -> float:
    """Fraction of calm runs whose confidence sequence EVER alarms within ``days`` days of labels."""
    ever = 0
    for _ in range(runs):
        probs, labels = world.sample(int(rng.poisson(labels_per_day * days)), "none", rng)
        ever += int(cs_alarms(probs, labels).any())
    return ever / runs


def cs_delays(world: World, regime: str, runs: int, calm: int, horizon: int, rng: np.random.Generator
              ) -> list[float]:
    """Labels after the change until the confidence sequence alarms, with ``calm`` labels since activation
    before the change (the sequence covers them all: the longer the calm history, the later it fires)."""
    out = []
    for _ in range(runs):
        before, after = world.sample(calm, "none", rng), world.sample(horizon, regime, rng)
        alarms = cs_alarms(np.concatenate([before[0], after[0]]), np.concatenate([before[1], after[1]]))[calm:]
        out.append(float(np.argmax(alarms) + 1) if alarms.any() else float("inf"))
    return out


def em_delays(world: World, regime: str, runs: int, window: int, step: int, horizon: int,
              rng: np.random.Generator) -> list[float]:
    """Predictions after the change until the label-shift check (EM prior of the last ``window`` unlabelled
    predictions vs the reference prior) alarms; no labels are used."""
    from service.monitoring.label_shift import label_shift_report, reference_prior

    out = []
    for _ in range(runs):
        prior = reference_prior(world.sample(K * window, "none", rng)[0])
        probs = np.concatenate([world.sample(window, "none", rng)[0], world.sample(horizon, regime, rng)[0]])
        first = float("inf")
        for k in range(step, horizon + 1, step):
            if label_shift_report(probs[k:k + window], prior, tolerance=LABEL_SHIFT_TOLERANCE,
                                  n_boot=100)["state"] == "shifted":
                first = float(k)
                break
        out.append(first)
    return out


def em_false_alarms(world: World, runs: int, window: int, rng: np.random.Generator) -> float:
    """Fraction of calm windows of ``window`` predictions on which the label-shift check alarms."""
    from service.monitoring.label_shift import label_shift_report, reference_prior

    hits = 0
    for _ in range(runs):
        prior = reference_prior(world.sample(K * window, "none", rng)[0])
        hits += label_shift_report(world.sample(window, "none", rng)[0], prior, tolerance=LABEL_SHIFT_TOLERANCE,
                                   n_boot=100)["state"] == "shifted"
    return hits / runs
