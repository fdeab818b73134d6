"""The JSON access log: one line per request with the same request id as the response and any error body.

Replaces uvicorn's text access log (``latent-bridge serve`` turns that one off). Lines go to the
``latent_bridge.access`` logger; ``configure_access_log`` gives it a handler that prints the bare JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "latent_bridge.access"
log = logging.getLogger(ACCESS_LOGGER)


def configure_access_log() -> None:
    """Print access lines as bare JSON on stdout (once per process)."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class AccessLogMiddleware:
    """Sits inside ``RequestIdMiddleware``, so ``scope["state"]["request_id"]`` is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0

        async def send_counted(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                line = {
                    "ts": round(time.time(), 3),
                    "request_id": scope.get("state", {}).get("request_id"),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                    "bytes": sent,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                }
                log.info(json.dumps(line, separators=(",", ":")))
