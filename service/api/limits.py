"""ASGI guards every request passes: a body size limit and a deadline, both answered as problem+json.

``BodyLimitMiddleware`` refuses a declared ``Content-Length`` over the limit before the app reads a
byte, and counts streamed (chunked) bodies as they arrive, refusing at the first chunk past the limit:
no body is ever buffered whole, nor parsed. Before answering 413 it reads and discards what is left
when that is at most ``DRAIN_BYTES`` past the limit (for at most ``DRAIN_SECONDS``): closing a socket
with unread data sends a TCP reset, and the client would see a broken connection instead of the 413.
Bigger bodies are cut off.

``TimeoutMiddleware`` answers 504 once a request has run for ``request_timeout`` seconds, slow uploads
included; work already in a worker thread cannot be stopped, so it runs to its end and its late answer
is dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from latent_bridge.service.api.problems import send_problem
from latent_bridge.service.errors import BodyTooLarge, RequestTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_LENGTH = b"content-length"
DRAIN_BYTES = 1 << 20
DRAIN_SECONDS = 1.0


class _Exceeded(Exception):
    """Raised into the app from ``receive`` when the streamed body passes the limit."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= self.max_bytes + DRAIN_BYTES:
                await _drain(receive, declared)
            await send_problem(scope, _closing(send), BodyTooLarge(self.max_bytes, declared))
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _Exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the exception (FastAPI: a 400), the answer is 413
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Exceeded:
            pass
        if exceeded and not started:
            await _drain(receive, DRAIN_BYTES)
            await send_problem(scope, _closing(send), BodyTooLarge(self.max_bytes))


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a body, up to ``budget`` bytes and ``DRAIN_SECONDS``."""

    async def read() -> None:
        left = budget
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    try:
        await asyncio.wait_for(read(), DRAIN_SECONDS)
    except TimeoutError:
        pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == CONTENT_LENGTH:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _closing(send: Send) -> Send:
    """The rest of a refused body is never read, so the connection cannot be reused."""

    async def send_close(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
        await send(message)

    return send_close


@dataclass(slots=True)
class _Deadline:
    started: bool = False
    timed_out: bool = False
    reply: asyncio.Task[None] | None = None


class TimeoutMiddleware:
    """Answer 504 after ``seconds``; paths starting with an ``exempt`` prefix have no deadline.

    The fast path costs one timer: the request runs in its own task, and only a request that passes its
    deadline gets a second task (the 504) and a cancellation.
    """

    def __init__(self, app: ASGIApp, seconds: float, exempt: tuple[str, ...] = ("/admin/",)) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        deadline = _Deadline()

        async def guarded_send(message: Message) -> None:
            if deadline.timed_out:  # the 504 went out already: drop the late answer
                return
            if message["type"] == "http.response.start":
                deadline.started = True
            await send(message)

        def expire() -> None:
            if deadline.started or task is None:  # a response is under way: let it finish
                return
            deadline.timed_out = True
            deadline.reply = loop.create_task(send_problem(scope, send, RequestTimeout(self.seconds)))
            task.cancel()

        timer = loop.call_later(self.seconds, expire)
        try:
            await self.app(scope, receive, guarded_send)
        except asyncio.CancelledError:
            if not deadline.timed_out or task is None:
                raise
            task.uncancel()
        finally:
            timer.cancel()
        if deadline.reply is not None:
            await deadline.reply
