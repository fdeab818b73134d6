"""The one rendering of every error: RFC 9457 ``application/problem+json``.

One handler turns the domain errors (``service/errors.py``), FastAPI's validation errors and Starlette's
HTTP errors into the same body shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from latent_bridge.service.errors import ServiceError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:latent-bridge:problem:"

log = logging.getLogger(__name__)


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
    headers = {"WWW-Authenticate": 'Bearer realm="latent-bridge"'} if status == 401 else {}
    if isinstance(extra.get("retry_after"), int):  # a busy server says when to come back (503)
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers or None)


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
