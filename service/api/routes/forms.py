"""multipart/form-data bodies for the routes that take raw input: a browser form or `curl -F` upload.

A form is turned into the JSON body the route already validates: files become base64 strings, a field
given more than once becomes a list. So one schema, one validation and one code path serve both; the
conversion costs a base64 pass over the uploaded bytes, small next to decoding an image or a sound.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from latent_bridge.service.api.routes.base import JSONBodyRoute
from latent_bridge.service.errors import MalformedInput
from latent_bridge.service.inputs.b64 import b64encode
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

MULTIPART = "multipart/form-data"
FORMS = frozenset({MULTIPART, "application/x-www-form-urlencoded"})
LIST_FIELDS = frozenset({"path"})  # always a list, even when given once
MAX_FORM_FIELDS = 256


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in FORMS


async def _value(value: UploadFile | str) -> str:
    if isinstance(value, UploadFile):
        return b64encode(await value.read()).decode("ascii")
    return value


async def form_as_json(request: Request) -> bytes:
    """The form's fields as the JSON object the route's body model reads."""
    try:
        form = await request.form(max_files=MAX_FORM_FIELDS, max_fields=MAX_FORM_FIELDS)
    except HTTPException as exc:
        raise MalformedInput(f"the multipart body cannot be parsed ({exc.detail})") from exc
    body: dict[str, Any] = {}
    try:
        for key in dict.fromkeys(form.keys()):
            values = [await _value(v) for v in form.getlist(key)]
            body[key] = values if key in LIST_FIELDS or len(values) > 1 else values[0]
    finally:
        await form.close()
    return pydantic_core.to_json(body)


class RawInputRoute(JSONBodyRoute):
    """A JSON-body route that also takes forms: multipart/form-data (fields and file uploads) or urlencoded."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if not is_form(request.headers.get("content-type", "")):
                return await handler(request)
            payload = await form_as_json(request)

            async def receive() -> Message:
                return {"type": "http.request", "body": payload, "more_body": False}

            scope = dict(request.scope)
            scope["headers"] = [
                (k, v) for k, v in request.scope["headers"] if k not in (b"content-type", b"content-length")
            ] + [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            return await handler(Request(scope, receive))

        return handle


def form_body(model: str, files: bool = True) -> dict[str, Any]:
    """OpenAPI ``openapi_extra``: the same body as multipart/form-data, raw files as uploads."""
    properties: dict[str, Any] = {"text": {"type": "array", "items": {"type": "string"}}}
    if files:
        binary = {"type": "array", "items": {"type": "string", "format": "binary"}}
        properties |= {"image": binary, "audio": binary}
    return {
        "requestBody": {
            "content": {
                MULTIPART: {
                    "schema": {
                        "allOf": [{"$ref": f"#/components/schemas/{model}"}],
                        "properties": properties,
                    }
                }
            }
        }
    }
