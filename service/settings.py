"""Service settings: one object read from ``LATENT_BRIDGE_*`` environment variables, failing fast."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FidelityCriterion = Literal["r1", "mrr", "cycle_cosine", "cosine"]
DEFAULT_FIDELITY: FidelityCriterion = "mrr"
MIN_API_KEY_LENGTH = 16
MiB = 1 << 20


class Settings(BaseSettings):
    """Everything the server reads from its environment (``LATENT_BRIDGE_BUNDLE``, ...)."""

    model_config = SettingsConfigDict(env_prefix="LATENT_BRIDGE_", frozen=True, extra="ignore")

    bundle: Path | None = Field(default=None, description="Bundle folder written by `latent-bridge train`.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    max_batch: int = Field(default=1024, ge=1, le=1_000_000, description="Most vectors in one request.")
    max_k: int = Field(default=100, ge=1, le=10_000, description="Most retrieval results per query.")
    max_vector_length: int = Field(
        default=8192, ge=1, le=1_000_000, description="Most numbers in one input vector (any modality)."
    )
    max_body_bytes: int = Field(
        default=16 * MiB,
        ge=1024,
        le=1 << 30,
        description="Largest request body; larger ones get 413 before they are read, streamed or not. "
        "A full batch of long float vectors can exceed it: send those as base64 (a third of the size).",
    )
    request_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request may take, body upload included, before it is answered 504 "
        "(admin routes excepted).",
    )
    drain_seconds: int = Field(
        default=30, ge=0, le=3600, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    max_alternatives: int = Field(default=10, ge=0, le=100, description="Most alternative routes listed.")
    ort_threads: int = Field(
        default=1, ge=0, le=256, description="onnxruntime intra-op threads; 0 = its default."
    )
    faiss_threads: int = Field(default=1, ge=0, le=256, description="FAISS OpenMP threads; 0 = its default.")
    inline_max_values: int = Field(
        default=4096,
        ge=0,
        description="Requests with at most this many input numbers run on the event loop (cheaper than a "
        "thread hop); larger ones run in the thread pool so they never block other requests.",
    )
    fidelity: FidelityCriterion = Field(
        default=DEFAULT_FIDELITY,
        description="Edge metric used as routing fidelity: held-out MRR (default, tracks retrieval), R@1, "
        "the seeds' reconstruction cosine (blind to an invertible map's error), or direct cosine.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every route but /healthz and /readyz needs `X-API-Key: <key>` or "
        "`Authorization: Bearer <key>` (401 without, 403 wrong), and the admin routes exist.",
    )
    access_log: bool = Field(default=True, description="One JSON line per request on stdout, with its id.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters")
        return value
