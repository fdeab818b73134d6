"""Settings for test apps: no API key unless given, and every limit small enough for a test to cross."""

from __future__ import annotations

from pathlib import Path

from latent_bridge.service.settings import Settings

API_KEY = "reliability-test-key-0123456789"
ADMIN_KEY = "reliability-admin-key-9876543210"
KEYS = {"api_key": API_KEY, "admin_key": ADMIN_KEY}
MAX_BATCH = 32
MAX_K = 20
LIMITS: dict[str, object] = {
    "max_batch": MAX_BATCH,
    "max_k": MAX_K,
    "max_vector_length": 64,
    "max_body_bytes": 64 * 1024,
    "request_timeout": 5.0,
}


def settings_for(bundle: Path | None, **overrides: object) -> Settings:
    values: dict[str, object] = {"bundle": bundle, "api_key": None, "admin_key": None, **LIMITS}
    return Settings(**(values | overrides))  # type: ignore[arg-type]
