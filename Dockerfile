# Hearth scoring worker: `docker build -t hearth .` then see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/hearth --create-home hearth

WORKDIR /opt/hearth
COPY pyproject.toml README.md ./
COPY scoring ./scoring
COPY stream ./stream
COPY agents ./agents
RUN pip install ".[stream]" && rm -rf build ./*.egg-info

USER hearth:hearth
ENV HEARTH_WEB_HOST=0.0.0.0 \
    HEARTH_WEB_PORT=6066 \
    HEARTH_DATA_DIR=/var/lib/hearth/data
EXPOSE 6066

# /healthz answers while the process runs; readiness (/readyz) is for orchestrators.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEARTH_WEB_PORT', '6066'), timeout=4)"]

CMD ["hearth", "worker"]
