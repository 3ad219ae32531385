"""A small client of the attribution service (stdlib ``urllib``: no extra dependency).

Every call has a timeout; a service that cannot be reached (refused, reset, timed out, 5xx) is
a :class:`ServiceUnavailable`, which callers turn into their safe default.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from sleuth.errors import InfrastructureError

__all__ = ["ServiceClient", "ServiceUnavailable", "split_credentials"]


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@`` and the Basic ``Authorization`` header it stood for
    (urllib would take ``user:password@host`` for a host name)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    import base64

    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class ServiceUnavailable(InfrastructureError):
    """The attribution service could not be reached or failed (``http_status`` when it answered)."""

    http_status: int | None = None


class ServiceClient:
    """Calls to one service at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        url, self._auth = split_credentials(url)
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **self._auth},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            detail = exc.read(2000).decode("utf-8", "replace")
            if exc.code == 409:
                return json.loads(detail)
            err = ServiceUnavailable(f"{method} {self.url}{path}: HTTP {exc.code}: {detail[:300]}")
            err.http_status = exc.code
            raise err from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailable(f"{method} {self.url}{path}: {reason}") from None

    @staticmethod
    def _key(job_id: str, cycle_id: str) -> str:
        return f"{urllib.parse.quote(job_id, safe='')}/{urllib.parse.quote(cycle_id, safe='')}"

    def submit(
        self,
        job_id: str,
        cycle_id: str,
        logs: Sequence[tuple[str, str]],
        *,
        progress: bool | None = None,
        node: str = "0",
        nodes: int = 1,
        job_start: float | None = None,
    ) -> Any:
        """POST the logs of one node for (job, cycle), with when the cycle started on it (seconds
        since the epoch) when known; the record."""
        body = {
            "job_id": job_id,
            "cycle_id": cycle_id,
            "node": node,
            "nodes": nodes,
            "progress": progress,
            "job_start": job_start,
            "logs": [{"name": n, "text": t} for n, t in logs],
        }
        return self._call("POST", "/v1/attributions", body)

    def get(self, job_id: str, cycle_id: str, wait_s: float = 0.0) -> Any:
        """The record (None when the service has none), after waiting up to ``wait_s`` for its decision."""
        return self._call(
            "GET",
            f"/v1/attributions/{self._key(job_id, cycle_id)}?wait={wait_s:g}",
            timeout_s=wait_s + self.timeout_s,
        )

    def put_outcome(
        self, job_id: str, cycle_id: str, *, action: str, decided_by: str, reason: str, node: str
    ) -> Any:
        """Record the leader's outcome; the stored one (which may be an earlier one)."""
        body = {"action": action, "decided_by": decided_by[:200], "reason": reason[:2000], "node": node}
        return self._call("PUT", f"/v1/attributions/{self._key(job_id, cycle_id)}/outcome", body)

    def get_outcome(self, job_id: str, cycle_id: str, wait_s: float = 0.0) -> Any:
        """The leader's outcome for (job, cycle), or None (no record yet, or no outcome yet)."""
        res = self._call(
            "GET",
            f"/v1/attributions/{self._key(job_id, cycle_id)}/outcome?wait={wait_s:g}",
            timeout_s=wait_s + self.timeout_s,
        )
        return res.get("outcome") if isinstance(res, dict) else None
