"""The process's memory after big work: freed heap back to the OS, long-lived objects out of the GC's scans.

glibc keeps freed heap pages in each thread's malloc arena: without ``malloc_trim`` a worker that once
parsed a 4 MB batch or wrote a 20 MB answer keeps that peak resident while idle (+15-21% of the demo
server's RSS per such request, measured). Frozen objects (``gc.freeze``: the bundle, the app, the imported
modules) are never scanned by the cyclic collector again; a full collection during a big answer held the
GIL, and ``/healthz`` with it, for 90-110 ms scanning them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRIM_BYTES = 1 << 20  # a request or an answer this large trims the heap when it is done (about 1 ms)


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)`` (ctypes releases the GIL while it runs), or nothing where the C library has
    none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    return lambda: None if trim(0) else None


trim_heap = _malloc_trim()


def release_memory() -> None:
    """After a load or a swap: collect the old bundle's cycles, freeze what is left, trim the heap. Unfrozen
    first, so that the bundle a swap replaced is collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    trim_heap()


class HeapTrimMiddleware:
    """Trims the heap after a request whose body or answer held at least ``TRIM_BYTES``, once the route's
    objects are gone (innermost middleware: everything the route made is freed when it returns)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        moved = 0

        async def counted_receive() -> Message:
            nonlocal moved
            message = await receive()
            moved += len(message.get("body", b""))
            return message

        async def counted_send(message: Message) -> None:
            nonlocal moved
            moved += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            if moved >= TRIM_BYTES:
                await anyio.to_thread.run_sync(trim_heap)
