# syntax=docker/dockerfile:1
# The API image: FastAPI + onnxruntime + faiss, no torch, no pandas. It serves a bundle from /models.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, read from pyproject.toml without building the package, so a code change does not
# reinstall them. The package is built once, from its real sources, below.
COPY pyproject.toml docker/requirements.py ./
# EXTRAS: extras to install, comma-separated (serve,milvus for galleries in Milvus).
ARG EXTRAS=serve
RUN python requirements.py pyproject.toml "${EXTRAS}" > requirements.txt \
    && pip install -r requirements.txt
COPY README.md ./
COPY latent_bridge ./latent_bridge
COPY service ./service
COPY training ./training
RUN pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LATENT_BRIDGE_BUNDLE=/models/demo \
    LATENT_BRIDGE_HOST=0.0.0.0 \
    LATENT_BRIDGE_PORT=8000
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 bridge
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2); sys.exit(0)"]
CMD ["latent-bridge", "serve"]
