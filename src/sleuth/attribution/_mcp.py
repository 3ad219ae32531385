"""Calling one tool of a Model Context Protocol server through the ``mcp`` package (2.x).

stdio servers are started by :func:`sleuth.runner.spawn_group` (the one module that spawns
processes) and spoken to over their pipes: newline-delimited JSON-RPC bridged into the
``mcp.ClientSession`` streams.  http(s) targets use the package's streamable-HTTP client.  The
whole exchange (start, initialize, call) runs under one deadline; the server's process group is
stopped afterwards whatever happened.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["call_tool"]


@asynccontextmanager
async def _stdio_streams(command: str) -> AsyncIterator[tuple[Any, Any]]:
    import anyio
    from mcp import types
    from mcp.shared.message import SessionMessage

    from sleuth.runner import spawn_group

    argv = shlex.split(command)
    env = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR")
    }
    group = spawn_group(argv, env=env, pipes=True)
    assert group.stdin is not None
    assert group.stdout is not None
    stdin, stdout = group.stdin, group.stdout
    read_send, read_recv = anyio.create_memory_object_stream[Any](16)
    write_send, write_recv = anyio.create_memory_object_stream[Any](16)

    async def reader() -> None:
        async with read_send:
            while True:
                line = await anyio.to_thread.run_sync(stdout.readline, abandon_on_cancel=True)
                if not line:
                    return
                try:
                    msg = types.jsonrpc_message_adapter.validate_json(line)
                except ValueError as exc:
                    await read_send.send(exc)
                    continue
                await read_send.send(SessionMessage(msg))

    async def writer() -> None:
        async with write_recv:
            async for session_message in write_recv:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"

                def put(data: bytes = data.encode()) -> None:
                    stdin.write(data)
                    stdin.flush()

                await anyio.to_thread.run_sync(put, abandon_on_cancel=True)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            try:
                yield read_recv, write_send
            finally:
                tg.cancel_scope.cancel()
    finally:
        group.terminate(grace_s=1.0)


@asynccontextmanager
async def _http_streams(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as streams:
        yield streams[0], streams[1]


async def _call(target: str, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
    import anyio
    from mcp import ClientSession

    opener = _http_streams if target.startswith(("http://", "https://")) else _stdio_streams
    with anyio.fail_after(timeout_s):
        async with opener(target) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool(tool, arguments)


def _result_payload(result: Any) -> Any:
    """The JSON a tool returned: its structured content, else the first text block parsed as JSON."""
    if getattr(result, "is_error", False) or getattr(result, "isError", False):
        texts = [getattr(c, "text", "") for c in getattr(result, "content", [])]
        from sleuth.secrets import scrub_text  # hidden before it is cut: a cut secret keeps its start

        raise RuntimeError(f"the tool reported an error: {scrub_text(' '.join(t for t in texts if t))[:200]}")
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if isinstance(structured, dict) and "action" in structured:
        return structured
    if isinstance(structured, dict) and isinstance(structured.get("result"), dict):
        return structured["result"]
    for block in getattr(result, "content", []):
        text = getattr(block, "text", None)
        if text:
            return json.loads(text)
    raise ValueError("the tool returned no JSON text")


def call_tool(target: str, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
    """Call ``tool`` on the MCP server ``target`` (a command or a URL); its JSON answer.

    Raises ``TimeoutError`` past ``timeout_s`` and other exceptions when the server fails.
    """
    import anyio

    result = anyio.run(_call, target, tool, arguments, timeout_s)
    return _result_payload(result)
