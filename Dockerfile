# Serving image: no torch (the serving process never imports it), models mounted at /app/models.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    CALIBSERVE_HOST=0.0.0.0 CALIBSERVE_PORT=8000 CALIBSERVE_MODEL_REPOSITORY=/app/models
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
# editable: Alembic's migrations/ stays beside the package, where service.db.migrate looks for it
RUN pip install -e . && useradd --system --uid 10001 calibserve && mkdir -p /app/models /app/var \
    && chown -R calibserve /app/var
USER calibserve
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/live').status != 200)"
CMD ["calibserve", "serve", "--workers", "2"]
