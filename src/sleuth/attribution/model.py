"""The attribution room's words as types: signatures' classes and roles, findings, verdicts, decisions.

Frozen, slotted dataclasses and Enums only; no I/O.  A *finding* is one matched log line; the
*root* is the finding a decision is about; a *verdict* is what one source (the built-in catalog,
an HTTP service, a command, an MCP server) says; the *decision* is the aggregated
recommendation (``action``) and what is done with it under the mode (``effective_action``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "Action",
    "Aggregation",
    "CatalogAction",
    "Decision",
    "Finding",
    "Mode",
    "Role",
    "SignatureClass",
    "SourceStatus",
    "SourceVerdict",
    "Vendor",
]


class SignatureClass(Enum):
    """What kind of fault a signature points at."""

    HARDWARE = "hardware"
    #: the GPU's memory hardware (ECC, row remapping, RAS UMC); CUDA/HIP out-of-memory is ``software``
    GPU_MEMORY = "gpu-memory"
    FABRIC = "fabric"
    INFRASTRUCTURE = "infrastructure"
    SOFTWARE = "software"
    NUMERIC = "numeric"
    USER = "user"
    AMBIGUOUS = "ambiguous"
    CASCADE = "cascade"


class Role(Enum):
    """How a finding takes part in choosing the root cause."""

    #: can be the cause
    ROOT = "root"
    #: a consequence of an earlier failure (watchdog timeouts, "remote process exited"): never the cause
    CASCADE = "cascade"
    #: confirms a cause (the OOM killer behind a SIGKILL); the cause only when no root was found
    CONFIRMATION = "confirmation"
    #: context for a person ("set CUDA_LAUNCH_BLOCKING=1"); never the cause
    DIAGNOSTIC = "diagnostic"


class CatalogAction(Enum):
    """A signature's default action, before history and policy."""

    RESTART = "RESTART"
    STOP = "STOP"
    RESTART_ONCE = "RESTART_ONCE"
    EXCLUDE_NODE = "EXCLUDE_NODE"


class Action(Enum):
    """A recommendation: restart the job, stop it, or no opinion."""

    RESTART = "RESTART"
    STOP = "STOP"
    UNKNOWN = "UNKNOWN"


class Mode(Enum):
    """Whether a STOP recommendation is acted on (``enforce``) or only recorded (``shadow``)."""

    SHADOW = "shadow"
    ENFORCE = "enforce"


class Vendor(Enum):
    """Whose message format a signature matches."""

    NVIDIA = "nvidia"
    AMD = "amd"
    ANY = "any"


class SourceStatus(Enum):
    """How a source's consultation ended; anything but ``ok`` abstains."""

    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Aggregation:
    """How the sources' verdicts combine: ``any`` (a STOP from any source stops), ``all`` (every voting
    source must say STOP), ``quorum`` (at least ``k`` STOPs) or ``priority`` (the first source, in
    order, that has an opinion decides)."""

    kind: str
    k: int = 0

    @classmethod
    def parse(cls, text: str) -> Aggregation:
        """``any``, ``all``, ``priority`` or ``quorum:K``; ValueError with the accepted forms otherwise."""
        t = text.strip().lower()
        if t in ("any", "all", "priority"):
            return cls(t)
        if t.startswith("quorum:"):
            try:
                k = int(t.split(":", 1)[1])
            except ValueError:
                k = 0
            if k >= 1:
                return cls("quorum", k)
        raise ValueError(f"{text!r} is not an aggregation (give any, all, priority or quorum:K with K >= 1)")

    def __str__(self) -> str:
        return f"quorum:{self.k}" if self.kind == "quorum" else self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One log line that matched a signature."""

    file: str
    line: int
    rank: int | None
    #: seconds since the epoch when the line carried a wall-clock time, else None
    timestamp: float | None
    signature: str
    cls: SignatureClass
    role: Role
    action: CatalogAction
    text: str
    #: the signature's ``peer_symptom``: a network error a peer's death causes (NET/IB error 12)
    peer_symptom: bool = False
    #: torchrun's attempt (``attempt_<n>`` in its ``--log-dir`` layout), or None
    attempt: int | None = None
    #: timed before the job's start as inferred from the logs, and kept (this job's own findings
    #: do not explain the failure): an earlier job's, or a fault while this job started
    before_start: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``--json`` and the service."""
        return {
            "file": self.file,
            "line": self.line,
            "rank": self.rank,
            "timestamp": self.timestamp,
            "signature": self.signature,
            "class": self.cls.value,
            "role": self.role.value,
            "action": self.action.value,
            "text": self.text,
            "peer_symptom": self.peer_symptom,
            "attempt": self.attempt,
            "before_start": self.before_start,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_json`."""
        return cls(
            file=str(data["file"]),
            line=int(data["line"]),
            rank=data.get("rank"),
            timestamp=data.get("timestamp"),
            signature=str(data["signature"]),
            cls=SignatureClass(data["class"]),
            role=Role(data["role"]),
            action=CatalogAction(data["action"]),
            text=str(data["text"]),
            peer_symptom=bool(data.get("peer_symptom", False)),
            attempt=data.get("attempt"),
            before_start=bool(data.get("before_start", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceVerdict:
    """What one source said, how long it took, and whether it counts."""

    name: str
    action: Action
    reason: str
    status: SourceStatus = SourceStatus.OK
    seconds: float = 0.0

    @property
    def votes(self) -> bool:
        """True when this verdict takes part in the aggregation (answered, with an opinion)."""
        return self.status is SourceStatus.OK and self.action is not Action.UNKNOWN

    def to_json(self) -> dict[str, Any]:
        """``{"name", "action", "status", "seconds", "reason"}``."""
        return {
            "name": self.name,
            "action": self.action.value,
            "status": self.status.value,
            "seconds": round(self.seconds, 4),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The recommendation (``action``), what is done with it (``effective_action``), and why."""

    action: Action
    effective_action: Action
    reason: str
    decided_by: str
    mode: Mode
    #: the policy rule that produced the catalog's verdict (``deterministic-class``, ``retry-budget`` ...)
    rule: str = ""
    #: node-level advice for EXCLUDE_NODE roots (``exclude the node of rank 3``)
    advice: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """``{"action", "effective_action", "reason", "decided_by", "mode", "rule", "advice"}``."""
        return {
            "action": self.action.value,
            "effective_action": self.effective_action.value,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "mode": self.mode.value,
            "rule": self.rule,
            "advice": list(self.advice),
        }
