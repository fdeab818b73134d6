# syntax=docker/dockerfile:1
# The one-shot trainer: torch (CPU build) + the training code + the demo's encoders + the committed demo
# dataset. It writes the demo bundle, with its text, image and audio encoders, into /models (a named volume)
# unless one is already there, then exits: the bundle `make demo` builds.
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
# Dependencies first, read from pyproject.toml without building the package (see api.Dockerfile).
COPY pyproject.toml docker/requirements.py ./
# EXTRAS: extras to install, comma-separated (train,encoders,milvus for galleries in Milvus).
ARG EXTRAS=train,encoders
RUN python requirements.py pyproject.toml "${EXTRAS}" > requirements.txt \
    && pip install -r requirements.txt
COPY README.md ./
COPY latent_bridge ./latent_bridge
COPY service ./service
COPY training ./training
COPY data/demo ./data/demo
RUN pip install --no-deps .
RUN useradd --create-home --uid 10001 bridge \
    && mkdir -p /models && chown bridge /models
USER 10001
CMD ["latent-bridge", "demo", "--no-serve", "--models", "/models", "--data", "/app/data/demo"]
