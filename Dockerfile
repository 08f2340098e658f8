# syntax=docker/dockerfile:1
# Multi-stage build (no image is built on the development machines; CI lints this file with hadolint):
#   docker build -t calibserve .                      serving image: no torch, non-root, health check
#   docker build --target train -t calibserve:train .  adds torch (CPU build), scikit-learn, tqdm

# --- build: one wheel of the package (migrations and dashboard assets inside it as package data) ------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: the serving image ------------------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CALIBSERVE_HOST=0.0.0.0 CALIBSERVE_PORT=8000 CALIBSERVE_MODEL_REPOSITORY=/app/models \
    CALIBSERVE_DATABASE_URL=sqlite:////app/var/calibserve.db CALIBSERVE_SPOOL_DIR=/app/var/spool
WORKDIR /app
COPY --from=build /wheels /wheels
# a regular (non-editable) install of the wheel: nothing is read from a source tree at run time
RUN pip install --no-cache-dir /wheels/calibserve-*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /app calibserve \
    && mkdir -p /app/models /app/var/spool && chown -R calibserve /app/var
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u, sys; sys.exit(u.urlopen('http://127.0.0.1:8000/v2/health/live', timeout=2).status != 200)"]
CMD ["calibserve", "serve", "--workers", "2"]

# --- train: torch for `calibserve train` / `calibserve demo` (never the serving image) ----------------
FROM runtime AS train
USER 0
COPY --from=build /wheels /wheels
# the CPU build of torch from PyTorch's own index: a bare `torch` requirement pulls a multi-GB CUDA build.
# DL3013: the second install is this build's own wheel (its version is the wheel's), with the train extra.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && whl="$(ls /wheels/calibserve-*.whl)" && pip install --no-cache-dir "${whl}[train]" && rm -rf /wheels
USER 10001
CMD ["calibserve", "demo"]
