"""The optional API key: when ``LATENT_BRIDGE_API_KEY`` is set, every route but the probes needs it.

Checked in ASGI middleware, before routing, so nothing answers without it: not the API, not /metrics,
not the OpenAPI document, not even a 404 for an unknown path. The key may come as ``X-API-Key: <key>``
or ``Authorization: Bearer <key>`` (or both, if both are right); no key is 401, a wrong one 403. Keys
are compared as SHA-256 digests with ``hmac.compare_digest``: constant time, and the length of the real
key does not leak either.
"""

from __future__ import annotations

import hashlib
import hmac

from latent_bridge.service.errors import Forbidden, Unauthorized, send_problem
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
API_KEY_HEADER = b"x-api-key"
AUTHORIZATION = b"authorization"
HOW = "send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>`"


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def credentials(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The keys a request offers: its X-API-Key and its bearer token (empty for another scheme)."""
    offered = []
    for name, value in headers:
        if name == API_KEY_HEADER:
            offered.append(value.strip())
        elif name == AUTHORIZATION:  # another scheme than Bearer offers a key that cannot be right
            scheme, _, token = value.strip().partition(b" ")
            offered.append(token.strip() if scheme.lower() == b"bearer" else b"")
    return offered


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.digest = _digest(key.encode())
        self.open_paths = open_paths

    def accepts(self, offered: list[bytes]) -> bool:
        """Every key offered must be right: a wrong one beside a right one is still refused."""
        matches = [hmac.compare_digest(_digest(key), self.digest) for key in offered]  # all compared
        return bool(matches) and all(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        offered = credentials(scope["headers"])
        if not offered:
            await send_problem(scope, send, Unauthorized(f"this server needs an API key: {HOW}"))
        elif not self.accepts(offered):
            await send_problem(scope, send, Forbidden(f"the API key is not valid for this server; {HOW}"))
        else:
            await self.app(scope, receive, send)
