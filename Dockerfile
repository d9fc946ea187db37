# syntax=docker/dockerfile:1.7
# linewatch images. One file, four targets (README: Running the programs; docs/deploy.md):
#
#   worker      CUDA runtime base + torch;                   ENTRYPOINT linewatch-worker
#   cpu-worker  BASE_IMAGE (python:3.11-slim) + torch;       ENTRYPOINT linewatch-worker
#   producer    the same image;                              ENTRYPOINT linewatch-producer
#               (also runs linewatch-alerts and linewatch-models: override the entry point)
#   view        the same image;                              ENTRYPOINT linewatch-view
#
#   docker build --target worker   -t linewatch-worker:dev .
#   docker build --target producer -t linewatch-producer:dev .
#
# Build arguments with public defaults: BASE_IMAGE (any Debian-like image with python3 >= 3.11 and
# the venv module; deploy/podman/build.sh passes a Debian bookworm made locally with debootstrap),
# CUDA_IMAGE, TORCH_VERSION and TORCH_INDEX. TORCH_VERSION is the version the tests run
# (deploy/versions.env; tests/deploy/test_versions.py fails when they drift). TORCH_INDEX defaults
# to PyPI, where the tests' torch comes from: its Linux wheel is the CUDA build, which also runs on
# CPU but weighs ~4 GB with its nvidia-* packages. For a small CPU-only image pass
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu (a version the tests did not run).
# Build stages keep pip's cache in /root/.cache/pip: deploy/podman/build.sh mounts a host folder
# there so a rebuild downloads nothing; without the mount it stays in the discarded build stage.
#
# Settings come only from LW_* environment variables: no config file is baked in, and nothing
# here sets an LW_* variable, so the env file / ConfigMap stays the one source of truth.
# Build stages hold pip and the source tree; the final stages copy only the virtual environment.

ARG PYTHON_VERSION=3.11
# The CUDA torch wheels bring their own cuDNN/cuBLAS (pip packages nvidia-*), so the plain
# runtime base is enough; it supplies the NVIDIA container-toolkit wiring and driver compat libs.
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX=https://pypi.org/simple
ARG APP_UID=10001

# ---- CPU: build the virtual environment -------------------------------------------------------
FROM ${BASE_IMAGE} AS cpu-build
ARG TORCH_VERSION
ARG TORCH_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, pinned: the project install below then finds torch>=2.2 satisfied. Its own layer,
# so code edits reuse it.
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
# The other dependencies next (from pyproject.toml alone), so a code or README edit reuses this layer too.
COPY pyproject.toml /src/
RUN python -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; extras = p['optional-dependencies']; print('\\n'.join(p['dependencies'] + extras['rdkafka'] + extras['cameras'] + extras['bridge']))" >/tmp/deps.txt \
 && pip install -r /tmp/deps.txt

# ---- CPU: the application alone (its own stage: a code edit rebuilds this, not the venv) ------
FROM cpu-build AS cpu-app
COPY README.md /src/
COPY linewatch /src/linewatch
COPY worker /src/worker
COPY producer /src/producer
COPY model_store /src/model_store
COPY view /src/view
COPY bridge /src/bridge
COPY programs /src/programs
# A regular (not editable) install under a prefix of its own: its lib/ and bin/ (console scripts
# whose first line is /opt/venv/bin/python) are laid over the venv in the runtime stage.
RUN pip install --no-deps --prefix /app-prefix /src

# ---- CPU: runtime (producer, alert consumer, model CLI, CPU worker) ---------------------------
FROM ${BASE_IMAGE} AS cpu-runtime
ARG APP_UID
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/home/linewatch
RUN useradd --uid "${APP_UID}" --user-group --create-home --home-dir /home/linewatch linewatch \
 && mkdir -p /app /models && chown "${APP_UID}:${APP_UID}" /app /models
# The dependencies' venv (6 GB with torch) is one layer that code edits leave alone; the
# application goes on top, a layer of about a megabyte. The extras came with the dependencies:
# rdkafka (LW_KAFKA_CONSUMER=confluent), cameras (RTSP through PyAV), bridge (OPC UA, MQTT).
COPY --from=cpu-build /opt/venv /opt/venv
COPY --from=cpu-app /app-prefix/ /opt/venv/
RUN python -c "import linewatch, worker.app, worker.kafka_input_rdkafka, producer.app, model_store.cli, view.server, bridge.app, programs.demo" \
 && linewatch-worker --help >/dev/null
WORKDIR /app
USER ${APP_UID}

FROM cpu-runtime AS producer
# /metrics, /healthz (the sender thread is alive) and /readyz on LW_METRICS_PORT (default 9101).
# Healthy means ready (/readyz), so `depends_on: condition: service_healthy` waits for it.
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LW_METRICS_PORT', '9101'), timeout=4)"]
ENTRYPOINT ["linewatch-producer"]

FROM cpu-runtime AS view
# The live view reads Redis only. In a container it must listen beyond loopback: set
# LW_VIEW_HOST=0.0.0.0 and, since it is then reachable, LW_VIEW_TOKEN or basic auth.
EXPOSE 8090
# The view's readiness is /healthz: 200 when Redis answers (it is always open, token or not).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LW_VIEW_PORT', '8090'), timeout=4)"]
ENTRYPOINT ["linewatch-view"]

FROM cpu-runtime AS cpu-worker
EXPOSE 8080
# Readiness of the worker: /readyz on LW_HTTP_PORT (default 8080); not ready while the model loads,
# or when batches or commits stall (LW_STALL_AFTER_S). No curl in the image. The start period covers
# model loading and warm-up, before the endpoint exists.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LW_HTTP_PORT', '8080'), timeout=4)"]
# SIGTERM drains (LW_DRAIN_TIMEOUT_S); give `docker stop` a longer -t than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["linewatch-worker"]

# ---- CUDA: build the virtual environment --------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda-build
ARG TORCH_VERSION
ARG TORCH_INDEX
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Ubuntu 22.04's python3 is 3.10; the project needs >=3.11 (python3.11 is in jammy's universe).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md /src/
COPY linewatch /src/linewatch
COPY worker /src/worker
COPY producer /src/producer
COPY model_store /src/model_store
COPY view /src/view
COPY bridge /src/bridge
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
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LW_HTTP_PORT', '8080'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["linewatch-worker"]
