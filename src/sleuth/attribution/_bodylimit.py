"""The service's limits on a request's body: its size (413) and the time it takes to arrive (408).

:class:`BodyLimit` is ASGI middleware in front of the FastAPI app (``service.wrap_limits``).  A body
over the limit is refused by its Content-Length, or as it streams in; a body not received in full
within the timeout of the request's start is refused too (a client that sent a large Content-Length
and then trickled or stalled its body once held its connection for ever: uvicorn bounds neither).
Each answer is one JSON line and closes the connection; the rest of an oversized body is read and
dropped first, so the client reads the 413 instead of a reset.  The headers' time is bounded by
:mod:`._headers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes (by Content-Length or as it streams in),
    408 for a body not received within ``timeout_s`` of the request's start.

    A client that sent its headers with a large Content-Length and then trickled its body, or
    stopped sending it, held its connection for ever (uvicorn bounds neither).  Both answers are
    one JSON line and close the connection.
    """

    def __init__(self, app: Any, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        whole = False  # the body was received in full: what follows (a disconnect) is not timed

        async def timed() -> Any:
            nonlocal whole
            if whole:
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _TooSlow from None
            if msg.get("type") != "http.request" or not msg.get("more_body"):
                whole = True
            return msg

        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._drain(timed, int(length))
            await self._reject(send, 413, f"request body larger than {self.limit} bytes")
            return
        seen = 0
        # what went wrong reading the body: the app turns the exception raised in its receive into
        # an answer of its own ("There was an error parsing the body"), which is replaced
        failed: list[Exception] = []
        started = False

        async def counted() -> Any:
            nonlocal seen
            try:
                msg = await timed()
            except _TooSlow as exc:
                failed.append(exc)
                raise
            if msg.get("type") == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    failed.append(_TooLarge())
                    raise failed[-1]
            return msg

        async def sending(msg: Any) -> None:
            nonlocal started
            if failed:
                return
            started = started or msg.get("type") == "http.response.start"
            await send(msg)

        with contextlib.suppress(_TooLarge, _TooSlow):  # the app did not turn them into an answer
            await self.app(scope, counted, sending)
        if not failed or started:
            return
        if isinstance(failed[0], _TooLarge):
            await self._drain(timed, 4 * self.limit)
            await self._reject(send, 413, f"request body larger than {self.limit} bytes")
        else:
            await self._reject(send, 408, f"request body not received within {self.timeout_s:g} s")

    async def _drain(self, receive: Callable[[], Awaitable[Any]], cap: int) -> None:
        """Read (and drop) the rest of the body, so the client reads our 413 instead of a reset
        (within the body's time: a slow client is answered when it is up)."""
        seen = 0
        try:
            while seen <= 4 * self.limit and seen <= cap:
                msg = await receive()
                if msg.get("type") != "http.request":
                    return
                seen += len(msg.get("body", b""))
                if not msg.get("more_body"):
                    return
        except _TooSlow:
            return

    async def _reject(self, send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode() + b"\n"
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass
