"""Response helpers: JSON bytes made in one pass (pydantic-core), and the error responses routes document."""

from __future__ import annotations

from typing import Any

import pydantic_core
from latent_bridge.service.api.problems import PROBLEM_MEDIA_TYPE
from latent_bridge.service.api.schemas import Problem

DESCRIPTIONS = {
    401: "No API key sent (the server has one).",
    403: "Wrong API key.",
    404: "Unknown modality (the body lists the known ones), unknown item or no gallery.",
    409: "No route between the modalities (the body lists the components), "
    "or a pinned path uses a missing edge.",
    413: "Too large: the body (over max_body_bytes), the batch (over max_batch) or one vector (over "
    "max_vector_length); the body gives the limit.",
    415: "The body is not application/json (or multipart/form-data where raw input is taken), or a raw image "
         "or sound is not of an accepted format (`unsupported-format`: the body lists them).",
    422: "Invalid input: wrong dimension (expected vs got), NaN/Inf (or values so large the translation "
    "overflows), empty batch, k out of range, malformed "
    "base64, a pinned path that does not fit, or a schema violation.",
    503: "The bundle is not loaded yet, a gallery's store (Milvus) is unavailable, or every encoder slot is busy "
         "(`encoders-busy`, with Retry-After); the body says which.",
    504: "The request, body upload included, took longer than request_timeout.",
}


def json_bytes(content: Any) -> bytes:
    """Serialise plain data (dicts, lists, tuples, dataclasses) straight to JSON, skipping re-validation."""
    return pydantic_core.to_json(content)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem+json errors a route can answer."""
    return {
        status: {
            "model": Problem,
            "description": DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
