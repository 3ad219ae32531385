"""sleuth: find out why an ML/GPU workload fails or got slower."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
