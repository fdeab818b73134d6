# syntax=docker/dockerfile:1
# The API image: FastAPI + onnxruntime + faiss, no torch. It serves a bundle from /models.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p service latent_bridge \
    && touch service/__init__.py latent_bridge/__init__.py \
    && pip install ".[serve]"
COPY service ./service
COPY latent_bridge ./latent_bridge
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
