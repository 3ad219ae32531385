"""uvicorn's h11 protocol with a bound on the time a request's headers may take.

uvicorn bounds the size of a request's headers (h11's ``max_incomplete_event_size``, 16 KiB: a
400 after) but not the time they take: a client that sent them a byte at a time (a slowloris),
or opened a connection and sent nothing, held it for ever.  :func:`header_timeout_protocol` makes
a subclass of uvicorn's ``H11Protocol`` (given to ``uvicorn.Config(http=...)``) that closes a
connection whose request headers are not complete within ``timeout_s`` of its opening, or of the
previous response on a kept-alive connection: with a one-line 408 when part of a request came,
silently when nothing did (an idle connection, which a client may reuse at that very moment).
The body's time is bounded by the service's own middleware (``--body-timeout``).

It relies on H11Protocol's ``connection_made``, ``on_response_complete`` and ``connection_lost``
and its ``transport``, ``loop``, ``conn`` (the h11 connection) and ``cycle`` attributes (uvicorn
0.2x to 0.54); ``tests/attribution/test_service.py`` checks the bound with a real server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["header_timeout_protocol"]


def header_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """An ``H11Protocol`` whose request headers must be complete within ``timeout_s`` seconds."""

    class HeaderTimeoutProtocol(_HeaderTimeout):
        header_timeout_s = timeout_s

    return HeaderTimeoutProtocol


class _HeaderTimeout(H11Protocol):
    header_timeout_s = 30.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's headers on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired, self.cycle)

    def _expired(self, cycle: Any) -> None:
        """Close the connection unless a request's headers came since ``cycle`` (the request then
        current) was armed, or that request is still being answered (pipelined)."""
        self._header_timer = None
        waiting = self.cycle is cycle and (cycle is None or cycle.response_complete)
        if not waiting or self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it is closed
            body = json.dumps({"detail": f"request headers not received within {self.header_timeout_s:g} s"})
            data = body.encode() + b"\n"
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
                + data
            )
        self.transport.close()
