# syntax=docker/dockerfile:1.7
# linewatch images. One file, four targets (README: Running the programs; docs/deploy.md):
#
#   worker      CUDA runtime base + the CUDA build of torch; ENTRYPOINT linewatch-worker
#   cpu-worker  python:3.11-slim + the CPU build of torch;  ENTRYPOINT linewatch-worker
#   producer    the same slim image;                         ENTRYPOINT linewatch-producer
#               (also runs linewatch-alerts and linewatch-models: override the entry point)
#   view        the same slim image;                         ENTRYPOINT linewatch-view
#
#   docker build --target worker   -t linewatch-worker:dev .
#   docker build --target producer -t linewatch-producer:dev .
#
# Settings come only from LW_* environment variables: no config file is baked in, and nothing
# here sets an LW_* variable, so the env file / ConfigMap stays the one source of truth.
# Build stages hold pip and the source tree; the final stages copy only the virtual environment.

ARG PYTHON_VERSION=3.11
# The CUDA torch wheels bring their own cuDNN/cuBLAS (pip packages nvidia-*), so the plain
# runtime base is enough; it supplies the NVIDIA container-toolkit wiring and driver compat libs.
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG TORCH_VERSION=2.5.1
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu124
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG APP_UID=10001

# ---- CPU: build the virtual environment -------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS cpu-build
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU index: the project install below then finds torch>=2.2 satisfied
# and does not pull the (much larger) CUDA build from PyPI. Its own layer, so code edits reuse it.
RUN pip install --index-url "${TORCH_CPU_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md /src/
COPY linewatch /src/linewatch
COPY worker /src/worker
COPY producer /src/producer
COPY model_store /src/model_store
COPY view /src/view
COPY programs /src/programs
# A regular (not editable) install: the final stage needs the venv only, not /src. The rdkafka
# extra lets a worker read frames through librdkafka (LW_KAFKA_CONSUMER=confluent).
RUN pip install "/src[rdkafka]" && python -c "import linewatch, worker.app, worker.kafka_input_rdkafka, producer.app, model_store.cli, view.server, programs.demo"

# ---- CPU: runtime (producer, alert consumer, model CLI, CPU worker) ---------------------------
FROM python:${PYTHON_VERSION}-slim AS cpu-runtime
ARG APP_UID
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/home/linewatch
RUN useradd --uid "${APP_UID}" --user-group --create-home --home-dir /home/linewatch linewatch \
 && mkdir -p /app /models && chown "${APP_UID}:${APP_UID}" /app /models
COPY --from=cpu-build /opt/venv /opt/venv
WORKDIR /app
USER ${APP_UID}

FROM cpu-runtime AS producer
# /metrics, /healthz (the sender thread is alive) and /readyz on LW_METRICS_PORT (default 9101).
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LW_METRICS_PORT', '9101'), timeout=4)"]
ENTRYPOINT ["linewatch-producer"]

FROM cpu-runtime AS view
# The live view reads Redis only. In a container it must listen beyond loopback: set
# LW_VIEW_HOST=0.0.0.0 and, since it is then reachable, LW_VIEW_TOKEN or basic auth.
EXPOSE 8090
ENTRYPOINT ["linewatch-view"]

FROM cpu-runtime AS cpu-worker
EXPOSE 8080
# Liveness of the worker: /healthz on LW_HTTP_PORT (default 8080). No curl in the image.
# The start period covers model loading and warm-up, before the endpoint exists.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LW_HTTP_PORT', '8080'), timeout=4)"]
# SIGTERM drains (LW_DRAIN_TIMEOUT_S); give `docker stop` a longer -t than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["linewatch-worker"]

# ---- CUDA: build the virtual environment --------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda-build
ARG TORCH_VERSION
ARG TORCH_CUDA_INDEX
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Ubuntu 22.04's python3 is 3.10; the project needs >=3.11 (python3.11 is in jammy's universe).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_CUDA_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md /src/
COPY linewatch /src/linewatch
COPY worker /src/worker
COPY producer /src/producer
COPY model_store /src/model_store
COPY view /src/view
COPY programs /src/programs
RUN pip install /src && python -c "import linewatch, worker.app, producer.app, model_store.cli, view.server, programs.demo"

# ---- CUDA: the GPU worker -------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS worker
ARG APP_UID
ENV DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/home/linewatch
# Only the interpreter (same path as in cuda-build, which the venv links to); no pip, no compilers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid "${APP_UID}" --user-group --create-home --home-dir /home/linewatch linewatch \
 && mkdir -p /app /models && chown "${APP_UID}:${APP_UID}" /app /models
COPY --from=cuda-build /opt/venv /opt/venv
WORKDIR /app
USER ${APP_UID}
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LW_HTTP_PORT', '8080'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["linewatch-worker"]
