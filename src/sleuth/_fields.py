"""Pydantic field types shared by the config schemas (a matrix recipe, a reduce spec)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo

from sleuth.model import MAX_TIMEOUT_S, timeout_cap, timeout_over_max

__all__ = ["Timeout"]


def _at_most_cap(seconds: float, info: ValidationInfo) -> float:
    problem = timeout_over_max(seconds, timeout_cap(info.context))  # a resume's: what the run recorded
    if problem is not None:  # the words of every verb's --timeout, after the key's path
        raise ValueError(problem)
    return seconds


#: a trial's timeout: over 0, at most :data:`~sleuth.model.MAX_TIMEOUT_S` (30 days, as ``sleuth run``'s
#: ``--timeout``); a run's own record read back on resume (context ``RECORDED``) takes what an older
#: sleuth allowed (a year)
Timeout = Annotated[
    float,
    Field(gt=0, allow_inf_nan=False, strict=True, json_schema_extra={"maximum": MAX_TIMEOUT_S}),
    AfterValidator(_at_most_cap),
]
