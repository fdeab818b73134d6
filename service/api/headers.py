"""Security headers on every response.

``SecurityHeadersMiddleware`` (pure ASGI, outermost) adds to every answer, errors from other middleware
included: ``X-Content-Type-Options: nosniff`` (a browser never runs a JSON answer or a media file as
script or style), ``X-Frame-Options: DENY`` with CSP ``frame-ancestors 'none'`` (no page may frame ours:
no clickjacking of the search page or Swagger UI), ``Referrer-Policy: no-referrer``, and a
``Content-Security-Policy`` unless the route set its own (``docs.py`` does, for Swagger UI's inline
script). The search page ``/`` may run only its own inline script and style (their sha256 hashes, read
from the page file, so an edit of the page keeps its policy right), load images and sounds from this
server or the blob: URLs it makes of them, and call this server only. Everything else is data: its policy
allows nothing at all.
(``Retry-After`` on a busy answer is set where problems are rendered, ``problems.py``.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping

from latent_bridge.service.api.routes import page
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_FRAMES = "frame-ancestors 'none'"
DATA_CSP = f"default-src 'none'; {NO_FRAMES}; base-uri 'none'; form-action 'none'"
COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
CSP = b"content-security-policy"
_INLINE = {tag: re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL) for tag in ("script", "style")}


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP sources (``'sha256-…'``) of each inline ``<script>`` or ``<style>`` element of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE[tag].findall(html)
    ]


def csp(directives: Mapping[str, Iterable[str]]) -> str:
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def page_csp(html: str) -> str:
    """The search page's policy: itself (its inline script and style), its media, this server's API."""
    return csp(
        {
            "default-src": ["'none'"],
            "script-src": ["'self'", *inline_hashes(html, "script")],
            "style-src": ["'self'", *inline_hashes(html, "style")],
            "img-src": ["'self'", "blob:", "data:"],
            "media-src": ["'self'", "blob:"],
            "connect-src": ["'self'"],
            "form-action": ["'self'"],
            "base-uri": ["'none'"],
            "frame-ancestors": ["'none'"],
        }
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.policies = {path: page_csp(page.page().decode()).encode() for path in page.PAGE_PATHS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policies.get(scope["path"], DATA_CSP.encode())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in COMMON if name not in present]
                if CSP not in present:
                    headers.append((CSP, policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
