"""Build runs for the gate tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sleuth.gate.model import Run, RunStatus, Sample


def run(
    i: int,
    metrics: Mapping[str, float | Sequence[float]],
    *,
    suite: str = "s",
    status: str = "success",
    branch: str | None = "main",
) -> Run:
    """Run ``r{i:03d}`` created at second ``i`` with the given samples (a number is one sample)."""
    samples = tuple(
        Sample(m, tuple(float(x) for x in (v if isinstance(v, Sequence) else [v])), "u")
        for m, v in metrics.items()
    )
    return Run(
        suite=suite,
        run_id=f"r{i:03d}",
        created_at=f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}.000000Z",
        status=RunStatus(status),
        branch=branch,
        commit=f"c{i}",
        samples=samples,
    )


def series(metric: str, values: Sequence[float | Sequence[float]], start: int = 0) -> list[Run]:
    """One run per value (or per list of samples)."""
    return [run(start + i, {metric: v}) for i, v in enumerate(values)]
