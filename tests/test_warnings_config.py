"""The test suite's warning filters (``filterwarnings`` in pyproject.toml): a deprecation that
sleuth's own code runs into fails its test; one that a third-party library warns of does not."""

from __future__ import annotations

import warnings

import pytest


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_attributed_to_a_sleuth_module_is_an_error(
    category: type[Warning], request: pytest.FixtureRequest
) -> None:
    for module in ("sleuth", "sleuth.bisect.index"):
        with pytest.raises(category, match="old API"):
            warnings.warn_explicit("old API", category, f"{module}.py", 1, module=module)
    if request.config.getoption("pythonwarnings"):  # -W error::DeprecationWarning: every module's
        return
    for module in ("sleuthy", "packaging.version", "tests.test_warnings_config"):
        with warnings.catch_warnings(record=True) as got:  # the filters as they are, not reset
            warnings.warn_explicit("old API", category, f"{module}.py", 1, module=module, registry={})
        assert [w.category for w in got] == [category], module
