# syntax=docker/dockerfile:1
# fraudstream's images, one Dockerfile, two targets (docker-compose.yml builds both):
#   streamer  the worker and the operational commands (topics, status, alerts, label, publish): `pip install .`
#             without extras, so no TensorFlow, no bench/, deploy/ or tests/ inside
#   training  the same plus the [train] extra (TensorFlow, imbalanced-learn, matplotlib): train, bootstrap, backtest
# Dependencies come from the lock files (scripts/lock.sh) and are installed before any of our code is copied, so a
# code change rebuilds only the last layers. Everything runs as uid 10001, never root.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/fraudstream \
    PATH=/opt/fraudstream/bin:$PATH \
    NUMBA_CACHE_DIR=/opt/fraudstream/numba-cache
# /registry and /reports exist owned by the service user, so a named volume mounted there starts out writable by it
# (docker-compose.yml's volume-init also sets the ownership of volumes made before this image).
RUN groupadd --system --gid 10001 fraud \
    && useradd --system --uid 10001 --gid fraud --home-dir /app --no-create-home --shell /usr/sbin/nologin fraud \
    && python -m venv "$VIRTUAL_ENV" \
    && install -d -o fraud -g fraud -m 0750 /app /registry /reports
WORKDIR /app

# ---- dependencies only (cached until a lock file changes)
FROM base AS streamer-deps
COPY requirements/runtime.txt /tmp/requirements.txt
RUN pip install --no-deps -r /tmp/requirements.txt && rm /tmp/requirements.txt

FROM base AS training-deps
COPY requirements/train.txt /tmp/requirements.txt
RUN pip install --no-deps -r /tmp/requirements.txt && rm /tmp/requirements.txt

# ---- our code, built into a wheel once for both images (bench/ is left out: it is a development tool)
FROM base AS wheel
COPY pyproject.toml README.md /src/
COPY fraudstream /src/fraudstream
COPY features /src/features
COPY state /src/state
COPY models /src/models
COPY training /src/training
COPY streamer /src/streamer
COPY bankbus /src/bankbus
COPY backtest /src/backtest
COPY console /src/console
RUN pip wheel --no-deps --wheel-dir /wheels /src

FROM streamer-deps AS streamer
COPY --from=wheel /wheels /wheels
# the feature kernels are compiled once here (numba's on-disk cache), so no worker waits for the compiler
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels \
    && python -m features.jit && python -m models.tree_kernels && chmod -R a+rX "$NUMBA_CACHE_DIR"
USER 10001:10001
EXPOSE 9108
# live: the process answers on its metrics port (GET /health); /ready is for a load balancer or an orchestrator
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "streamer.probe", "live"]
CMD ["fraudstream", "stream"]

FROM training-deps AS training
COPY --from=wheel /wheels /wheels
COPY deploy/demo/train.yaml /app/first-model.yaml
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels \
    && python -m features.jit && python -m models.tree_kernels && chmod -R a+rX "$NUMBA_CACHE_DIR"
USER 10001:10001
# one-shot jobs (bootstrap, train, backtest): compose waits for them with service_completed_successfully
HEALTHCHECK NONE
CMD ["fraudstream", "train", "--help"]
