"""The service's domain errors and their one rendering: RFC 9457 ``application/problem+json``.

Every bad input raises a ``ServiceError`` subclass that knows its HTTP status and carries the facts a
client needs to fix the request (the known modalities, the expected dimension, the limit, ...); one
handler turns them, FastAPI's validation errors and Starlette's HTTP errors into the same body shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:latent-bridge:problem:"

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of the domain errors; ``extra`` becomes problem members beside type/title/status/detail."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


MAX_ECHO = 80  # characters of a caller's value quoted back in an error


def echo(value: str) -> str:
    """A caller's value as an error quotes it: repr'd, and cut short when long (never echo megabytes)."""
    if len(value) <= MAX_ECHO:
        return repr(value)
    return f"{value[:MAX_ECHO]!r}… ({len(value)} characters)"


class UnknownModality(ServiceError):
    status, slug, title = 404, "unknown-modality", "Unknown modality"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown modality {echo(name)}; known modalities: {', '.join(known)}", known=known)


class UnknownItem(ServiceError):
    status, slug, title = 404, "unknown-item", "Unknown item"


class NoGallery(ServiceError):
    status, slug, title = 404, "no-gallery", "No gallery for this modality"


class DimensionMismatch(ServiceError):
    status, slug, title = 422, "dimension-mismatch", "Wrong vector dimension"

    def __init__(
        self, modality: str, expected: int, got: int, detail: str | None = None, **extra: Any
    ) -> None:
        where = f" (row {extra['row']})" if "row" in extra else ""
        super().__init__(
            detail or f"vectors of modality {modality!r} have {expected} dimensions, got {got}{where}",
            expected=expected,
            got=got,
            **extra,
        )


class NonFiniteInput(ServiceError):
    status, slug, title = 422, "non-finite-input", "Vectors contain NaN or infinity"


class NonFiniteOutput(ServiceError):
    status, slug, title = 422, "non-finite-output", "Translation overflowed"


class EmptyBatch(ServiceError):
    status, slug, title = 422, "empty-batch", "No vectors given"


class BatchTooLarge(ServiceError):
    status, slug, title = 413, "batch-too-large", "Too many vectors in one request"

    def __init__(self, got: int, limit: int) -> None:
        super().__init__(f"{got} vectors in one request; the limit is {limit}", limit=limit, got=got)


class KOutOfRange(ServiceError):
    status, slug, title = 422, "k-out-of-range", "k out of range"

    def __init__(self, k: int, limit: int) -> None:
        super().__init__(f"k must be between 1 and {limit}, got {k}", minimum=1, limit=limit, got=k)


class EffortOutOfRange(ServiceError):
    status, slug, title = 422, "effort-out-of-range", "Search effort out of range"


class UnknownPayloadColumn(ServiceError):
    status, slug, title = 422, "unknown-payload-column", "Unknown payload column"


class InvalidWrite(ServiceError):
    status, slug, title = 422, "invalid-write", "Gallery write refused"


class WritesUnavailable(ServiceError):
    status, slug, title = 503, "writes-unavailable", "This server takes no gallery writes"


class GalleryUnavailable(ServiceError):
    status, slug, title = 503, "gallery-unavailable", "The gallery's store is unavailable"


class WriteFailed(ServiceError):
    status, slug, title = 503, "write-failed", "The write could not be made durable"


class MalformedVectors(ServiceError):
    status, slug, title = 422, "malformed-vectors", "Vectors cannot be decoded"


class InvalidPath(ServiceError):
    status, slug, title = 422, "invalid-path", "Pinned path does not fit the request"


class MissingEdge(ServiceError):
    status, slug, title = 409, "missing-edge", "Pinned path uses an edge the bundle lacks"


class NoRoute(ServiceError):
    status, slug, title = 409, "no-route", "No route between the modalities"


class UnsupportedMediaType(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported content type"


class VectorTooLong(ServiceError):
    status, slug, title = 413, "vector-too-long", "An input vector is too long"

    def __init__(self, got: int, limit: int, row: int) -> None:
        super().__init__(
            f"input vector {row} has {got} values; the limit is {limit}", limit=limit, got=got, row=row
        )


class NoEncoder(ServiceError):
    status, slug, title = 422, "no-encoder", "No encoder for this modality"


class WrongInputKind(ServiceError):
    status, slug, title = 422, "wrong-input-kind", "This modality takes another kind of raw input"


class MalformedInput(ServiceError):
    status, slug, title = 422, "malformed-input", "Raw input cannot be decoded"


class UnreadableMedia(ServiceError):
    status, slug, title = 422, "unreadable-media", "Image or audio file cannot be read"


class UnsupportedSampleRate(ServiceError):
    status, slug, title = 422, "unsupported-sample-rate", "Audio sample rate cannot be resampled"


class InputTooLarge(ServiceError):
    status, slug, title = 413, "input-too-large", "A raw input is too large"


class AudioTooLong(ServiceError):
    status, slug, title = 413, "audio-too-long", "Audio is too long"


class NoMedia(ServiceError):
    status, slug, title = 404, "no-media", "No media for this item"


class BodyTooLarge(ServiceError):
    status, slug, title = 413, "body-too-large", "Request body too large"

    def __init__(self, limit: int, got: int | None = None) -> None:
        size = f"{got} bytes" if got is not None else "more bytes than allowed"
        super().__init__(
            f"the request body has {size}; the limit is {limit} bytes (send large float batches as base64)",
            limit=limit,
            **({"got": got} if got is not None else {}),
        )


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "API key required"


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Wrong API key"


class BundleRefused(ServiceError):
    status, slug, title = 422, "bundle-refused", "Bundle refused"


class RequestTimeout(ServiceError):
    status, slug, title = 504, "request-timeout", "Request took too long"

    def __init__(self, limit: float) -> None:
        super().__init__(f"the request did not finish within {limit:g} s", limit=limit)


class NotReady(ServiceError):
    status, slug, title = 503, "not-ready", "No bundle loaded"


def problem_response(
    request: Request, status: int, slug: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="latent-bridge"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def send_problem(scope: Scope, send: Send, error: ServiceError) -> None:
    """Answer ``error`` as problem+json from ASGI middleware, where no route has run."""

    async def no_body() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    request = Request(scope, no_body)
    response = problem_response(request, error.status, error.slug, error.title, error.detail, **error.extra)
    await response(scope, no_body, send)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return problem_response(request, exc.status, exc.slug, exc.title, exc.detail, **exc.extra)


def _location(loc: Sequence[object]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    detail = f"{_location(first['loc'])}: {first['msg']}{more}"
    return problem_response(
        request, 422, "invalid-request", "Request validation failed", detail, errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    response = problem_response(request, exc.status_code, slug, title, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error on %s %s [%s]", request.method, request.url.path, request_id, exc_info=exc)
    response = problem_response(
        request,
        500,
        "internal-error",
        "Internal server error",
        "the server failed on this request; it is logged under this request id",
    )
    if request_id is not None:  # answered outside RequestIdMiddleware (by Starlette's ServerErrorMiddleware)
        response.headers["x-request-id"] = request_id
    # Starlette re-raises after this answer and uvicorn then closes the connection: say so, or a client
    # reusing the keep-alive connection meets a reset.
    response.headers["connection"] = "close"
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
