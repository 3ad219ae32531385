"""Failure attribution: which failure ended a job, and whether restarting it can help.

``catalog`` (versioned signature data), ``match`` (scanning logs), ``decide`` (the pure decision),
``sources`` (HTTP, command and MCP analyzers beside the catalog), ``analyze`` (one attribution
end to end), ``service`` + ``store`` (the HTTP attribution service; its analysis threads in
``_worker``, its body limits in ``_bodylimit``), ``supervise`` (restarting a workload on the
decision; how the decision is had, locally or from the service, in ``_supervise_link``).
"""

from __future__ import annotations
