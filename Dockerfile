# yieldvault: the daemon as a container. Build: docker build -t yieldvault .
# Run:   docker run --init -p 9500:9500 -v yieldvault-data:/data yieldvault
# The listen address (0.0.0.0 inside the container), data dir and config file come from ENV below;
# mount your own config and set YIELDVAULT_CONFIG_FILE to use it.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first (changes rarely), then the code (changes often): better layer caching.
COPY pyproject.toml README.md ./
RUN mkdir -p core && touch core/__init__.py && /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall -y yieldvault
COPY core ./core
COPY protocols ./protocols
COPY mockfeeds ./mockfeeds
COPY adapters ./adapters
COPY guard ./guard
COPY optimizer ./optimizer
COPY vault ./vault
COPY backtest ./backtest
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/python -m compileall -q /opt/venv
# The Numba kernels (the PWL fit's, the Aave income's, the curve hull's) compile here, into the packages'
# __pycache__: the runtime user cannot write there, and would otherwise compile them (10-20 s)
# at every start.
RUN /opt/venv/bin/python -c "import optimizer.pwl_kernel, adapters.aave_income_kernel, adapters.hull_kernel"

FROM python:3.11-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin yieldvault \
    && mkdir -p /data && chown yieldvault /data
COPY --from=build /opt/venv /opt/venv
COPY config /app/config
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    LANG=C.UTF-8 \
    YIELDVAULT_CONFIG_FILE=/app/config/default.yaml \
    YIELDVAULT_LISTEN=0.0.0.0:9500 \
    YIELDVAULT_DATA_DIR=/data
WORKDIR /app
VOLUME ["/data"]
USER yieldvault
EXPOSE 9500
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9500/healthz', timeout=2).status == 200 else 1)"]
# tini is PID 1: it forwards SIGTERM to the daemon (which drains and exits 0) and reaps zombies.
ENTRYPOINT ["tini", "--", "yieldvault"]
CMD ["run"]
