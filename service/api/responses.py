"""Response helpers: JSON bytes (orjson, in bounded pieces), and the error responses routes document.

A serialiser call holds the GIL for as long as it runs, in a worker thread too, so one big answer (1,024
vectors of 1,280 floats: 155 ms in pydantic-core) would stall the event loop and ``/healthz`` with it.
Matrices and long lists are therefore written a slice at a time (each call a few milliseconds; the GIL
changes hands between them). orjson writes a float32 as its shortest round-tripping decimal, so a client
reading the answer as float32 gets the server's values exactly, in fewer bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pydantic_core
from latent_bridge.service.api.problems import PROBLEM_MEDIA_TYPE
from latent_bridge.service.api.schemas import Problem

DESCRIPTIONS = {
    401: "No API key sent (the server has one).",
    403: "Wrong API key.",
    404: "Unknown modality (the body lists the known ones), unknown item or no gallery.",
    409: "No route between the modalities (the body lists the components), "
    "or a pinned path uses a missing edge.",
    413: "Too large: the body (over max_body_bytes, or more JSON values than max_json_values), the batch "
    "(over max_batch) or one vector (over max_vector_length); the body gives the limit.",
    415: "The body is not application/json (or multipart/form-data where raw input is taken), or a raw image "
         "or sound is not of an accepted format (`unsupported-format`: the body lists them).",
    422: "Invalid input: wrong dimension (expected vs got), NaN/Inf (or values so large the translation "
    "overflows), empty batch, k out of range, malformed "
    "base64, a pinned path that does not fit, or a schema violation.",
    503: "The bundle is not loaded yet, a gallery's store (Milvus) is unavailable, or every encoder slot is busy "
         "(`encoders-busy`, with Retry-After); the body says which.",
    504: "The request, body upload included, took longer than request_timeout.",
}


CHUNK_VALUES = 32_768  # numbers per serialiser call: about 2.5 ms of held GIL
CHUNK_ITEMS = 256  # list items (e.g. one query's hits) per serialiser call
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _fallback(value: Any) -> Any:
    """What orjson does not know (Decimal, bytes, sets, pydantic models), as pydantic-core would write it."""
    return pydantic_core.to_jsonable_python(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_fallback, option=_OPTIONS)


def _pieces(items: Any, step: int) -> orjson.Fragment:
    """A JSON array written ``step`` items per call (a matrix row by row, a list item by item)."""
    parts = [_dumps(items[i : i + step])[1:-1] for i in range(0, len(items), step)]
    return orjson.Fragment(b"[" + b",".join(p for p in parts if p) + b"]")


def _bounded(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.size > CHUNK_VALUES and value.ndim == 2:
        return _pieces(np.ascontiguousarray(value), max(1, CHUNK_VALUES // max(1, value.shape[1])))
    if isinstance(value, list) and len(value) > CHUNK_ITEMS:
        return _pieces(value, CHUNK_ITEMS)
    return value


def json_bytes(content: Any) -> bytes:
    """Plain data (dicts, lists, dataclasses, float32 matrices) as JSON, skipping re-validation; each
    top-level matrix or long list is written in pieces. Non-finite floats are written as ``null``."""
    if isinstance(content, dict):
        content = {key: _bounded(value) for key, value in content.items()}
    return _dumps(content)


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
