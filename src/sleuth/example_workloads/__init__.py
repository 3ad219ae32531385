"""Built-in named workloads, registered like a third-party plugin (pyproject.toml's
``[project.entry-points."sleuth.workloads"]``): ``numpy_nan``, a small numpy training loop whose
loss turns NaN in about one run in three (seedable), for trying ``sleuth matrix`` without a GPU.
"""

from __future__ import annotations

from sleuth.workloads import Workload

__all__ = ["NumpyNaN"]


class NumpyNaN(Workload):
    """A numpy SGD loop whose loss goes NaN in reduced precision (tf32_off fixes it)."""

    name = "numpy_nan"
    params = {"steps": 50, "seed": -1, "spike_p": 0.008, "step_ms": 2.0, "lr": 0.05}
    entry = "sleuth.example_workloads.nan_loop:train"
    # the loop reports its own step times and verdict (through the launcher); the regex is for
    # people reading the log, and for a recipe that prefers a regex oracle
    step_time = {"metric": "step_time"}
    timeout = 120.0
