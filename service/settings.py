"""Service configuration: one pydantic-settings class, environment prefix ``CALIBSERVE_``.

Never instantiated at import time: ``create_app(Settings())`` and the CLI build it explicitly.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SLICE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)  # a String(64) column and a metric label value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALIBSERVE_", env_file=None, extra="ignore")

    database_url: str = Field(default="sqlite:///calibserve.db", description="SQLAlchemy URL.")
    model_repository: Path = Path("models")
    admin_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer tokens for admin endpoints (JSON list, or one token in CALIBSERVE_ADMIN_TOKEN).",
    )
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    access_log: bool = Field(default=False, description="uvicorn access log (costs ~10% throughput at batch 1).")

    # onnxruntime
    intra_op_threads: int = 1
    inter_op_threads: int = 1

    # request limits (docs/reliability.md lists every bound)
    max_body_bytes: int = 8 * 1024 * 1024
    max_feedback_items: int = 5000
    feedback_recent_wait_seconds: float = Field(
        default=1.0, ge=0, le=10, description="A label for a prediction made less than this long ago and not stored "
        "yet is looked up again every 0.2 s until it is found or the prediction is this old (another worker or "
        "replica ships its log every LOG_FLUSH_SECONDS), not answered `unknown` at once. 0: never wait.")
    body_timeout_seconds: float = Field(default=30.0, gt=0, description="A body must arrive within this (408).")
    header_timeout_seconds: float = Field(default=10.0, gt=0, description="A request head must arrive within this.")
    keep_alive_seconds: float = Field(default=5.0, gt=0, description="uvicorn closes idle keep-alive connections.")
    max_concurrent_per_client: int = Field(
        default=0, ge=0, description="Requests in flight per client address (429 beyond it); 0 = no cap.")

    # database outages: 503 + Retry-After, readiness from a cached probe
    database_retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After on a 503 for the database.")
    database_probe_seconds: float = Field(default=2.0, gt=0, description="Readiness re-probes the database this often.")
    database_connect_timeout_seconds: int = Field(default=5, ge=1, description="PostgreSQL connect timeout.")
    ready_requires_database: bool = Field(
        default=False, description="Readiness also fails while the database is unreachable (off by default: the "
                                   "prediction-log spool keeps predictions through an outage).")

    request_metrics: bool = Field(default=True, description="Per-request Prometheus metrics on predict (off: only "
                                  "to measure their cost).")
    max_batch_rows: int = Field(default=10_000, ge=1, description="Rows in one predict/infer request.")

    # prediction log: a durable local spool (one SQLite file per process under spool_dir/<database>) shipped
    # to the database by a background thread; past spool_max_bytes predict answers 503 + Retry-After
    spool_dir: Path = Field(default=Path("spool"), description="Local directory of the prediction-log spool.")
    spool_max_bytes: int = Field(default=1 << 30, ge=1 << 16, description="Disk bound of the spool.")
    log_batch_size: int = 1000
    log_flush_seconds: float = 0.2
    ship_process: bool = Field(default=True, description="Ship the prediction log from a child process, off the "
                               "serving process's GIL (off: a thread of the serving process does the inserts).")

    # calibration monitoring
    ece_bins: int = 15
    bucket_seconds: int = 60
    drift_min_labels: int = 200
    drift_tolerance: float = 0.0
    # conformal coverage alarm: one-sided binomial test level per check, and the calibration-set δ of the
    # coverage floor it tests against (service.calibration.coverage_bounds); needs drift_min_labels labels
    coverage_alarm_level: float = Field(default=0.01, gt=0.0, lt=0.5)
    coverage_floor_delta: float = Field(default=0.01, gt=0.0, lt=0.5)
    drift_rule: str = Field(default="ci", pattern="^(ci|sigma)$", description="Default drift rule (ci | sigma).")
    drift_reference_windows: int = Field(default=6, ge=1, le=50, description="Reference windows after activation.")
    monitor_interval_seconds: float = 15.0
    loop_lag_interval_seconds: float = Field(
        default=0.1, ge=0.0, description="Sample the event loop's lag this often (calibserve_event_loop_lag_seconds); "
                                         "0 turns the sampler off.")
    default_window: str = "1h"
    # anytime-valid gap alarm (calibration.sequential): false-alarm probability over a calibrator's life
    drift_cs_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    # label shift (monitoring.label_shift): EM prior over this many recent unlabelled predictions
    label_shift_rows: int = Field(default=2000, ge=100, le=20_000)
    label_shift_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)

    # slices (monitoring.slices): calibration per value of these request-tag keys; the first
    # slice_max_values distinct values per (model, key) get their own slice, the rest share "other"
    slice_keys: list[str] = Field(
        default_factory=list, max_length=16,
        description='Tag keys to slice calibration by (JSON list, e.g. ["country", "device"]).')
    slice_max_values: int = Field(default=20, ge=1, le=1000, description="Own slices per (model, key).")

    # shadow calibrators (handlers.shadow): how many per model version, and the promotion bound of
    # ``if_better_in_shadow`` (NLL differences clipped to ±shadow_clip; P(ever promoting a not-better one) ≤ α)
    max_shadows_per_version: int = Field(default=3, ge=0, le=20, description="Shadow calibrators per version.")
    shadow_clip: float = Field(default=2.0, gt=0.0, le=100.0, description="Clip of the NLL differences (nats).")
    shadow_alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Promotion error level over a shadow's life.")
    shadow_bound: str = Field(default="bernstein", pattern="^(bernstein|hoeffding)$",
                              description="Confidence sequence of if_better_in_shadow (bernstein | hoeffding).")

    # every replica re-reads the active calibrators this often (propagation delay bound)
    calibrator_poll_seconds: float = 1.0

    # control process (service/control_process.py): feedback and the calibration queries answered by a second
    # process on a Unix socket, off the serving process's event loop and GIL; `calibserve serve` sets the socket
    control_process: bool = Field(default=True, description="`calibserve serve` answers feedback and calibration "
                                  "queries from a child process (off: `--no-control-process`).")
    control_socket: Path | None = Field(default=None, description="Set by `calibserve serve`: where the serving "
                                        "process forwards those requests.")
    control_timeout_seconds: float = Field(default=60.0, gt=0, description="A forwarded request's answer must "
                                           "arrive within this (503 + Retry-After).")

    @field_validator("slice_keys")
    @classmethod
    def _check_slice_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not SLICE_KEY.fullmatch(key):
                raise ValueError(f"slice key {key!r} must be 1-64 characters of letters, digits, '.', '_' or '-'")
        if len(set(keys)) != len(keys):
            raise ValueError("slice keys must be distinct")
        return keys

    def spool_directory(self) -> Path:
        """``spool_dir`` per database: a spool is only ever shipped to the database it was written for."""
        digest = hashlib.sha256(self.database_url.encode()).hexdigest()[:16]
        return self.spool_dir / digest

    def all_admin_tokens(self) -> list[str]:
        tokens = [t.get_secret_value() for t in self.admin_tokens]
        if self.admin_token is not None:
            tokens.append(self.admin_token.get_secret_value())
        if self.admin_token_file is not None and self.admin_token_file.exists():
            tokens += [line.strip() for line in self.admin_token_file.read_text().splitlines() if line.strip()]
        return [t for t in tokens if t]
