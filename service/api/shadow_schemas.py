"""Response schemas of the shadow-calibrator routes (the OpenAPI contract)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.api.window_schemas import ReliabilityBin


class ShadowEvidence(BaseModel):
    n: float
    mean_nll_improvement: float | None
    lower_bound: float | None
    bound: Literal["bernstein", "hoeffding"]
    alpha: float
    clip: float
    margin: float
    promotable: bool


class ShadowPublic(BaseModel):
    calibrator_version: int
    policy: Literal["never", "if_better_in_shadow"]
    margin: float
    started_at: str
    started_by: str


class ShadowResult(ShadowPublic):
    model: str
    version: int


class ShadowRemoved(BaseModel):
    model: str
    version: int
    calibrator_version: int
    in_shadow: Literal[False]


class ShadowListed(ShadowPublic):
    evidence: ShadowEvidence


class ShadowList(BaseModel):
    model: str
    version: int
    active_calibrator_version: int | None
    max_shadows: int
    shadows: list[ShadowListed]


class PairedLoss(BaseModel):
    active: float | None
    shadow: float | None
    difference: float | None
    ci: list[float | None]


class PairedECE(PairedLoss):
    n_bins: int
    buckets: int
    ci_method: str


class SideBySide(BaseModel):
    active: list[ReliabilityBin]
    shadow: list[ReliabilityBin]


class ComparisonWindow(BaseModel):
    start: str
    end: str


class ShadowComparison(BaseModel):
    model: str
    version: int
    calibrator_version: int
    active_calibrator_version: int
    in_shadow: bool
    policy: Literal["never", "if_better_in_shadow"] | None
    window: ComparisonWindow
    n: float
    sign: str
    nll: PairedLoss
    brier: PairedLoss
    ece: PairedECE
    reliability: SideBySide
    evidence: ShadowEvidence | None
