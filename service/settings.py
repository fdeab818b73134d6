"""Service settings: one object read from ``LATENT_BRIDGE_*`` environment variables, failing fast."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GalleryBackendName = Literal["faiss", "milvus"]
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
    max_json_values: int = Field(
        default=1 << 19,
        ge=1024,
        le=1 << 30,
        description="Most values (numbers, strings, items) in one JSON body, counted before it is parsed; "
        "more get 413. Parsing holds the event loop, about 0.1 µs per value: the default keeps it under 60 ms. "
        "1,024 vectors of 384 floats fit; send longer batches as base64.",
    )
    request_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request may take, body upload included, before it is answered 504 "
        "(admin routes excepted).",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds a connection may take to send a request's headers (from connecting, or from "
        "the first byte of a kept-alive request) before it gets 408 and is closed.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024, ge=4096, le=16 * MiB, description="Largest request line + headers (431 above)."
    )
    max_connections: int = Field(
        default=1000, ge=1, le=1_000_000, description="Open connections per worker; more get 503 and are closed."
    )
    keep_alive_timeout: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="Seconds an idle kept-alive connection stays open; keep a client's or proxy's idle "
        "timeout below it, or a reused connection may be closed under the request.",
    )
    drain_seconds: int = Field(
        default=30, ge=0, le=3600, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    max_alternatives: int = Field(default=10, ge=0, le=100, description="Most alternative routes listed.")
    max_id_bytes: int = Field(
        default=1024,
        ge=16,
        le=65536,
        description="Longest item id a request may name (retrieve by id, gallery items, writes), in UTF-8 "
        "bytes; longer ones get 422 before any lookup (an id is hashed byte by byte to be found).",
    )
    max_request_id_bytes: int = Field(
        default=65536,
        ge=1024,
        le=16 * MiB,
        description="Most bytes (UTF-8) of item ids in one request, all ids together; more get 422.",
    )
    max_where_values: int = Field(
        default=1024, ge=1, le=1_000_000, description="Most values in one `where` filter, all columns together."
    )
    max_where_value_bytes: int = Field(
        default=4096, ge=16, le=MiB, description="Longest string value of a `where` filter, in UTF-8 bytes."
    )
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
    max_raw_batch: int = Field(
        default=32, ge=1, le=10_000, description="Most raw texts, images or sounds in one request."
    )
    max_media_bytes: int = Field(
        default=8 * MiB, ge=1024, le=1 << 30, description="Largest image or audio file (decoded from base64)."
    )
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Largest image, in pixels (width × height), before it is decoded."
    )
    max_audio_seconds: float = Field(default=60.0, gt=0, le=3600, description="Longest audio file accepted.")
    max_text_chars: int = Field(default=10_000, ge=1, description="Longest raw text accepted, in characters.")
    encoder_threads: int = Field(
        default=1, ge=0, le=256, description="Threads per encoder (onnxruntime, CTranslate2); 0 = their default."
    )
    max_concurrent_encodes: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        le=1024,
        description="Most requests embedding raw input at once (per worker process; default twice the cores); "
        "more get 503 with Retry-After at once instead of queueing behind them.",
    )
    encode_batch: int = Field(
        default=4,
        ge=1,
        le=10_000,
        description="Raw items an encoder runs through its model at once; a larger request is run in batches "
        "of this many, which bounds the memory one request takes (and keeps)."
    )
    encode_batch_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Dynamic batching: concurrent raw queries of one modality run as one encoder call of at most "
        "this many items (1 = off, each request runs its own). Image and sound batches are held to "
        "`encode_batch` too: their memory grows with each item and their models gain nothing per item from "
        "larger batches on CPU (measured: text 8.3 ms alone, 2.4 ms per item in 16).",
    )
    encode_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest a batch waits for more raw queries before it runs, and only once they come "
        "concurrently (the last batch held several, or others are being decoded): a lone query never waits.",
    )
    encode_queue: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Most raw items waiting for a batch, per encoder; one more is answered 503 with Retry-After "
        "at once. `max_concurrent_encodes` still bounds requests decoding or tokenizing at once.",
    )
    max_manifest_bytes: int = Field(
        default=4 * MiB, ge=1024, le=1 << 30, description="Largest manifest.json a bundle may have."
    )
    max_translator_bytes: int = Field(
        default=256 * MiB,
        ge=1024,
        le=1 << 34,
        description="Largest translator (.onnx) file; each is read into memory to be hashed and loaded.",
    )
    load_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds one warm-up run of a translator may take when a bundle loads; a slower one is "
        "stopped and the bundle refused.",
    )
    inline_max_seconds: float = Field(
        default=0.001,
        ge=0,
        le=1,
        description="Requests whose route costs at most this (measured per translator at warm-up) may run on "
        "the event loop; costlier ones run in the thread pool.",
    )
    fidelity: FidelityCriterion = Field(
        default=DEFAULT_FIDELITY,
        description="Edge metric used as routing fidelity: held-out MRR (default, tracks retrieval), R@1, "
        "the seeds' reconstruction cosine (blind to an invertible map's error), or direct cosine.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every route but /healthz, /readyz and the admin scope needs `X-API-Key: <key>` "
        "or `Authorization: Bearer <key>` (401 without, 403 wrong).",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="The key of the admin scope (/admin/*, gallery writes), sent like the API key; it opens "
        "the read routes too. Unset: the admin routes do not exist and the admin scope answers 403.",
    )
    models_dir: Path | None = Field(
        default=None,
        description="The folder POST /admin/reload may name bundles in (default: the folder holding "
        "LATENT_BRIDGE_BUNDLE); a bundle outside it is refused.",
    )
    readyz_details: bool = Field(
        default=True,
        description="Whether /readyz, open without a key, names the bundle, its fingerprint and counts.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API (CORS), as a JSON list, e.g. '
        '["https://app.example.com"]; empty (the default) sends no CORS headers at all.',
    )
    gallery_backend: GalleryBackendName = Field(
        default="faiss",
        description="Where galleries are searched: FAISS in the process (the bundle's files), or the Milvus "
        "collections the manifest names (`latent-bridge index --backend milvus`).",
    )
    milvus_uri: str | None = Field(
        default=None,
        description="Milvus to use: a milvus-lite file path (embedded, for tests and laptops) or "
        "`http://host:19530` for a standalone or cluster deployment.",
    )
    milvus_token: SecretStr | None = Field(default=None, description="Milvus credentials (`user:password` or a key).")
    milvus_collection_prefix: str = Field(
        default="latent_bridge_",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,64}$",
        description="Start of the collection names `latent-bridge index --backend milvus` creates "
        "(`<prefix><bundle>_<modality>`); the manifest records the full name.",
    )
    milvus_timeout: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="Seconds one Milvus call may take, retries included; a slower one is answered 503.",
    )
    access_log: bool = Field(default=True, description="One JSON line per request on stdout, with its id.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("api_key", "admin_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_key", "admin_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _separate_keys(self) -> Settings:
        if (
            self.admin_key is not None
            and self.api_key is not None
            and self.admin_key.get_secret_value() == self.api_key.get_secret_value()
        ):
            raise ValueError("admin_key must differ from api_key: a reader must not hold admin rights")
        return self

    @field_validator("milvus_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _milvus_named(self) -> Settings:
        if self.gallery_backend == "milvus" and not self.milvus_uri:
            raise ValueError("gallery_backend 'milvus' needs LATENT_BRIDGE_MILVUS_URI (a file path or http://host:19530)")
        return self

    def reload_root(self) -> Path | None:
        """The folder reload may name bundles in."""
        if self.models_dir is not None:
            return self.models_dir
        return None if self.bundle is None else self.bundle.parent
