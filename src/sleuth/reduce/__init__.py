"""``sleuth reduce``: shrink a failing workload along declared axes while the same failure reproduces.

Layout: :mod:`.search` (galloping boundary search), :mod:`.numeric` and :mod:`.listmin` (pure
per-axis strategies behind ask/tell), :mod:`.fixpoint` (several axes to a fixpoint), :mod:`.flaky`
(trials per candidate), :mod:`.spec` (the pydantic spec), :mod:`.axes` (a point made concrete),
:mod:`.ranks` (per-rank oracle for distributed runs), :mod:`.driver` (the trial loop, cache, resume)
and :mod:`.bundle` / :mod:`.pack` (what is shipped).
"""
