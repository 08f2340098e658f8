"""``create_app(settings)``: the lifespan builds engine, registry, writer and metrics, and injects them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from service import __version__
from service.api import admin, dashboard, feedback, monitoring, native, repository, shadow, v2
from service.api.control_proxy import ControlProxy
from service.api.errors import install_error_handlers
from service.api.fast_path import Receive, Scope, Send, match, serve_predict
from service.api.limits import ClientConcurrencyLimit, client_limit
from service.api.openapi import install_openapi
from service.api.predict_docs import openapi_paths
from service.db.engine import make_engine, make_sessionmaker
from service.db.probe import DatabaseProbe
from service.db.writer import PredictionWriter
from service.handlers.feedback_ingest import FeedbackIngest
from service.handlers.gauges import next_gauge_refresh, refresh_gauges
from service.handlers.lifecycle import CalibratorLifecycle
from service.handlers.oip import V2Codec
from service.handlers.predictor import Predictor
from service.handlers.services import Services
from service.handlers.shadow import ShadowCalibrators
from service.handlers.shadow_scoring import ShadowScoring
from service.monitoring.loop_lag import sample_loop_lag
from service.monitoring.metrics import ServiceMetrics
from service.monitoring.slices import SliceRecorder
from service.repository.registry import Registry
from service.run_directory import hold_run_directory
from service.settings import Settings

log = logging.getLogger(__name__)

# The shipper and sync threads share the GIL with the event loop: when the loop releases it (onnxruntime, a
# socket write) a background thread may keep it for a whole switch interval (CPython's default 5 ms) while
# requests wait. 1 ms bounds that stall; a background batch just takes a few more hand-overs.
GIL_SWITCH_SECONDS = 0.001
WORKER_THREADS = 40


def build_services(settings: Settings, metrics: ServiceMetrics | None = None) -> Services:
    metrics = metrics or ServiceMetrics()
    engine = make_engine(settings.database_url, connect_timeout=settings.database_connect_timeout_seconds,
                         on_write_wait=metrics.write_lock_wait.observe)
    sessions = make_sessionmaker(engine)
    writer = PredictionWriter(
        engine, spool_dir=settings.spool_directory(), max_spool_bytes=settings.spool_max_bytes,
        batch_size=settings.log_batch_size, flush_seconds=settings.log_flush_seconds,
        bucket_seconds=settings.bucket_seconds, on_written=metrics.log_written.inc,
        on_refused=metrics.log_refused.inc, on_dropped=metrics.log_dropped.inc,
        ship_process=settings.ship_process, connect_timeout=settings.database_connect_timeout_seconds,
    )
    registry = Registry(settings.model_repository, sessions, intra_op_threads=settings.intra_op_threads,
                        inter_op_threads=settings.inter_op_threads)
    return Services(
        settings, engine, sessions, registry, writer, metrics,
        predictor=Predictor(registry=registry, writer=writer, metrics=metrics, max_batch_rows=settings.max_batch_rows,
                            request_metrics=settings.request_metrics),
        feedback=FeedbackIngest(sessions=sessions, registry=registry, writer=writer, metrics=metrics,
                                max_items=settings.max_feedback_items, bucket_seconds=settings.bucket_seconds,
                                counter_bins=settings.ece_bins,
                                recent_wait_seconds=settings.feedback_recent_wait_seconds,
                                slices=SliceRecorder(keys=settings.slice_keys, max_values=settings.slice_max_values,
                                                     bucket_seconds=settings.bucket_seconds,
                                                     counter_bins=settings.ece_bins, metrics=metrics.slices),
                                shadows=ShadowScoring(
                                    sessions=sessions, registry=registry, bucket_seconds=settings.bucket_seconds,
                                    clip=settings.shadow_clip, alpha=settings.shadow_alpha,
                                    bound=settings.shadow_bound)),
        lifecycle=CalibratorLifecycle(sessions=sessions, registry=registry,
                                      max_shadows=settings.max_shadows_per_version),
        v2_codec=V2Codec(settings.max_body_bytes),
        shadows=ShadowCalibrators(sessions=sessions, registry=registry,
                                  max_per_version=settings.max_shadows_per_version, clip=settings.shadow_clip,
                                  alpha=settings.shadow_alpha, default_window=settings.default_window,
                                  ece_bins=settings.ece_bins, bound=settings.shadow_bound),
    )


def _background(services: Services, stop: threading.Event) -> None:
    """Replica sync (active calibrators, aliases) every poll interval; gauges every monitor interval, or
    less often when a refresh is expensive (``next_gauge_refresh``)."""
    s = services.settings
    due = 0.0
    while not stop.wait(s.calibrator_poll_seconds):
        try:
            services.registry.sync_calibrators()
            if s.control_socket is None and time.monotonic() >= due:  # else the control process refreshes them
                due = time.monotonic() + s.monitor_interval_seconds  # a failed refresh waits its turn too
                started = time.thread_time()
                refresh_gauges(services)
                cpu = time.thread_time() - started
                services.metrics.monitor_refresh_cpu.set(cpu)
                due = next_gauge_refresh(time.monotonic(), s.monitor_interval_seconds, cpu)
        except Exception:  # keep polling: a database blip must not stop propagation for good
            log.exception("background sync failed")


def create_app(settings: Settings | None = None, metrics: ServiceMetrics | None = None) -> FastAPI:
    settings = settings or Settings()
    control = (ControlProxy(settings.control_socket, timeout=settings.control_timeout_seconds,
                            retry_after=settings.database_retry_after_seconds)
               if settings.control_socket is not None else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        run_directory = hold_run_directory()  # under `calibserve serve`: its metrics files, its socket
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
        # blocking work goes through asyncio.to_thread, which queues it at once; starlette's run_in_threadpool
        # first yields to the loop twice (anyio's checkpoint and its limiter's), a whole loop iteration each
        # under predict load (docs/reliability.md, stop 22). As many threads as anyio's limiter allowed.
        executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="calibserve-worker")
        asyncio.get_running_loop().set_default_executor(executor)
        # numpy's BLAS would run the label-shift EM's products on a thread per core, spinning: 2.1-2.6× the CPU
        # of one thread for the same bootstrap (measured), taken from requests. This process's products are small.
        blas = threadpool_limits(limits=1, user_api="blas")
        services = build_services(settings, metrics)
        services.registry.load_all()
        services.writer.start()
        services.feedback.start()
        stop = threading.Event()
        thread = threading.Thread(target=_background, args=(services, stop), name="sync", daemon=True)
        thread.start()
        app.state.services = services
        app.state.database_probe = DatabaseProbe(services.engine, interval=settings.database_probe_seconds)
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's view: a full collection of them took ~75 ms
        lag = (asyncio.get_running_loop().create_task(
            sample_loop_lag(services.metrics.event_loop_lag.observe, settings.loop_lag_interval_seconds))
            if settings.loop_lag_interval_seconds > 0 else None)
        try:
            yield
        finally:
            if lag is not None:
                lag.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag
            stop.set()
            thread.join(timeout=10)
            services.feedback.stop()  # commits queued labels before their callers get a 2xx
            services.writer.stop()  # graceful shutdown: queued prediction rows are written first
            if control is not None:
                await control.close()
            services.engine.dispose()
            executor.shutdown(wait=False, cancel_futures=True)
            blas.restore_original_limits()
            if run_directory is not None:
                os.close(run_directory)

    app = CalibServe(title="calibserve", version=__version__, lifespan=lifespan,
                  description="Calibrated ONNX classifiers with feedback and online calibration monitoring.")
    install_error_handlers(app)
    install_openapi(app)
    for module in (native, feedback, monitoring, admin, v2, repository, dashboard):
        app.include_router(module.router)
    app.include_router(shadow.admin_router)
    app.include_router(shadow.router)
    document_fast_routes(app)
    app.limit = client_limit(app.dispatch, settings)
    app.control = control
    return app


class CalibServe(FastAPI):
    """FastAPI, with the four predict/infer routes answered before any of its layers (routing, request
    objects, dependencies, telemetry, body-limit middleware): see ``api/fast_path.py``. The optional
    per-client cap (``api/limits.py``) wraps both."""

    limit: ClientConcurrencyLimit | None = None
    control: ControlProxy | None = None  # feedback and calibration queries go to the control process

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit is not None:
            await self.limit(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    def direct_path(self) -> bool:
        """Whether ``api/protocol.py`` may answer predict/infer itself: not with a per-client cap, which counts
        ASGI requests."""
        return self.limit is None

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            matched = match(scope["path"])
            if matched is not None:
                await serve_predict(self.state.services, matched, scope, receive, send)
                return
        if self.control is not None and scope["type"] == "http" and self.control.claims(scope["method"],
                                                                                          scope["path"]):
            settings = self.state.services.settings
            await self.control.forward(scope, receive, send, self.state.services.writer,
                                       limit=settings.max_body_bytes, body_timeout=settings.body_timeout_seconds)
            return
        await super().__call__(scope, receive, send)


def document_fast_routes(app: FastAPI) -> None:
    """Add the fast path's operations to the OpenAPI document FastAPI generates for the other routes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"] = {**openapi_paths(), **schema.get("paths", {})}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
