# The ai-quality-monitor daemon: `aiqm serve` on 0.0.0.0:8000 (HTTP API, review page, /metrics).
# Configure it with a mounted YAML file (AIQM_CONFIG) and AIQM_ environment variables, e.g.
# AIQM_DATABASE_URL=postgresql://aiqm:...@postgres:5432/aiqm (docker-compose.yml does).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install . \
    && useradd --system --home-dir /var/lib/aiqm --create-home aiqm

USER aiqm
WORKDIR /var/lib/aiqm
ENV AIQM_DATA_DIR=/var/lib/aiqm
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
ENTRYPOINT ["aiqm"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
