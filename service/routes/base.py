"""A route class for JSON-body endpoints: a non-JSON content type gets a plain 415 before any parsing."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.errors import UnsupportedMediaType


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JSONBodyRoute(APIRoute):
    """Without this, FastAPI hands a text/plain body to validation and answers a confusing 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if content_type is not None and not is_json(content_type):
                raise UnsupportedMediaType(
                    f"content type {content_type!r} is not supported; send application/json",
                    supported=["application/json"],
                )
            return await handler(request)

        return checked
