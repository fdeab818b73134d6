"""Keys and scopes: a read key for the API, a separate admin key for what changes the server.

The rule, checked in ASGI middleware before routing (so nothing answers without the right key: not the
API, not /metrics, not the OpenAPI document, not even a 404 for an unknown path):

- ``/healthz`` and ``/readyz`` are open.
- The **admin scope** is every path under ``/admin/`` and every method but GET, HEAD and OPTIONS under
  ``/galleries/`` (gallery writes). It needs ``LATENT_BRIDGE_ADMIN_KEY``; without one configured it is
  closed (403) whatever the request offers.
- Everything else needs ``LATENT_BRIDGE_API_KEY`` when one is set (open otherwise); the admin key opens
  it too.

A key may come as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (or both, if both are right);
no key is 401, a wrong one 403. Keys are compared as SHA-256 digests with ``hmac.compare_digest``:
constant time, and the length of the real key does not leak either.
"""

from __future__ import annotations

import hashlib
import hmac

from latent_bridge.service.api.problems import send_problem
from latent_bridge.service.errors import Forbidden, Unauthorized
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
ADMIN_PREFIX = "/admin/"
GALLERIES_PREFIX = "/galleries/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_HEADER = b"x-api-key"
AUTHORIZATION = b"authorization"
HOW = "send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`"


def admin_scoped(method: str, path: str) -> bool:
    """Whether a request needs the admin key: ``/admin/*``, and any write under ``/galleries/``."""
    return path.startswith(ADMIN_PREFIX) or (path.startswith(GALLERIES_PREFIX) and method not in READ_METHODS)


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


def _all_match(digests: list[bytes], expected: bytes | None) -> bool:
    """Every key offered must be right: a wrong one beside a right one is still refused."""
    if expected is None:
        return False
    matches = [hmac.compare_digest(d, expected) for d in digests]  # all compared
    return bool(matches) and all(matches)


class APIKeyMiddleware:
    """Installed always: even a server without keys must keep the admin scope closed."""

    def __init__(
        self,
        app: ASGIApp,
        key: str | None,
        admin_key: str | None = None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.digest = None if key is None else _digest(key.encode())
        self.admin_digest = None if admin_key is None else _digest(admin_key.encode())
        self.open_paths = open_paths

    def accepts(self, offered: list[bytes]) -> bool:
        """Whether the keys offered open the read scope (the read key, or the admin key)."""
        digests = [_digest(key) for key in offered]
        return _all_match(digests, self.digest) or _all_match(digests, self.admin_digest)

    def accepts_admin(self, offered: list[bytes]) -> bool:
        return _all_match([_digest(key) for key in offered], self.admin_digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if admin_scoped(scope["method"], scope["path"]):
            await self._admin(scope, receive, send)
        elif self.digest is None:
            await self.app(scope, receive, send)
        else:
            offered = credentials(scope["headers"])
            if not offered:
                await send_problem(scope, send, Unauthorized(f"this server needs an API key: {HOW}"))
            elif not self.accepts(offered):
                await send_problem(scope, send, Forbidden(f"the API key is not valid for this server; {HOW}"))
            else:
                await self.app(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        offered = credentials(scope["headers"])
        if self.admin_digest is None:
            await send_problem(
                scope, send, Forbidden("admin routes are closed on this server (no LATENT_BRIDGE_ADMIN_KEY)")
            )
        elif not offered:
            await send_problem(scope, send, Unauthorized(f"this route needs the admin key: {HOW}"))
        elif not self.accepts_admin(offered):
            await send_problem(scope, send, Forbidden(f"this route needs the admin key; {HOW}"))
        else:
            await self.app(scope, receive, send)
