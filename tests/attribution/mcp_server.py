"""A small real MCP server (stdio) for the MCP source's tests.

Its ``attribute`` tool answers STOP when the excerpt mentions "out of memory", RESTART otherwise;
``slow`` sleeps for argv[2] seconds first; ``broken`` answers text that is not JSON.  It writes
the excerpt it was given to the file named by argv[1] (when given), so a test can check that
secrets were scrubbed before they reached the source.
"""

from __future__ import annotations

import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("sleuth-test-analyzer")
seen = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else ""
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0


@server.tool()
def attribute(excerpt: str) -> str:
    """Say RESTART or STOP for a log excerpt."""
    if seen:
        with open(seen, "w", encoding="utf-8") as fh:
            fh.write(excerpt)
    time.sleep(delay)
    if "out of memory" in excerpt.lower():
        return json.dumps({"action": "STOP", "reason": "the analyzer saw an out-of-memory"})
    return json.dumps({"action": "RESTART", "reason": "nothing deterministic"})


@server.tool()
def broken(excerpt: str) -> str:
    """Answer something that is not a verdict."""
    return "I think you should restart"


if __name__ == "__main__":
    port = os.environ.get("SLEUTH_TEST_MCP_PORT")
    if port:  # the streamable-HTTP transport, on loopback
        server.run("streamable-http", host="127.0.0.1", port=int(port))
    else:
        server.run("stdio")
