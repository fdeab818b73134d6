"""Connection limits uvicorn lacks: a deadline and a size limit for request headers, a connection cap.

uvicorn's httptools protocol keeps a connection whose headers never finish open for as long as the client
likes, buffers headers of any size, and accepts every connection. ``GuardedHttpProtocol`` adds:

- ``header_timeout``: a connection whose request headers are not complete this many seconds after it
  opened (or after the previous response) gets 408 and is closed (slow-header attacks, idle sockets);
- ``max_header_bytes``: request line and headers larger than this get 431 and the connection is closed;
- ``max_connections``: a connection beyond this many open ones gets 503 and is closed at once.

Keep-alive between requests stays uvicorn's (``timeout_keep_alive``). uvicorn imports the class by name
(``--workers`` processes too); ``configure`` sets its limits from the settings in each process.
"""

from __future__ import annotations

import asyncio

from latent_bridge.service.settings import Settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "latent_bridge.service.api.protocol:GuardedHttpProtocol"


def _reply(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
    )


TIMEOUT = _reply(b"408 Request Timeout", b"request headers took too long")
TOO_LARGE = _reply(b"431 Request Header Fields Too Large", b"request headers too large")
BUSY = _reply(b"503 Service Unavailable", b"too many connections")


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 1000

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0
    _in_headers: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(BUSY)
            return
        self._await_headers()

    def _await_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_done(self) -> None:
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers:
            self._refuse(TIMEOUT)

    def _refuse(self, reply: bytes) -> None:
        self._headers_done()
        if not self.transport.is_closing():
            self.transport.write(reply)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._in_headers and self.parser is not None:  # headers still unfinished after this chunk
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()  # a request on a kept-alive connection: its headers get the same deadline

    def on_headers_complete(self) -> None:
        self._headers_done()
        super().on_headers_complete()


def configure(settings: Settings) -> None:
    """Set the limits of every connection this process will accept."""
    GuardedHttpProtocol.header_timeout = settings.header_timeout
    GuardedHttpProtocol.max_header_bytes = settings.max_header_bytes
    GuardedHttpProtocol.max_connections = settings.max_connections
