"""A galloping boundary search over integers, the primitive of every reduce strategy.

``Gallop(limit, guess)`` finds the largest ``k`` in ``[0, limit]`` with ``ok(k)``, given ``ok(0)``
and assuming ``not ok(limit + 1)`` and monotonicity (``ok(k)`` implies ``ok(j)`` for ``j < k``).
It probes ``guess`` first, then gallops (the step doubles after every ``ok``) until a probe fails,
then bisects.  With ``n`` free slots it hands out ``n`` probes at once: further gallop steps that
assume the earlier ones succeed, or ``n`` evenly spaced points of the open interval.  An answer
``k`` costs about ``2 log2(k / guess) + 1`` probes from a good guess, ``log2(limit)`` from none.
"""

from __future__ import annotations

from itertools import pairwise

__all__ = ["Gallop"]


class Gallop:
    """Largest ``k`` in ``[0, limit]`` with ``ok(k)``.

    Invariants: ``ok(lo)`` holds (observed or given), ``ok(hi)`` does not (observed, or
    ``hi == limit + 1``); ``lo < hi``; done when ``hi == lo + 1``.  A probe is always strictly
    between ``lo`` and ``hi`` and never handed out twice while pending.  Observations outside
    ``(lo, hi)`` (speculation overtaken by other answers) change nothing and are counted as stale.
    """

    __slots__ = ("_bisecting", "_pending", "_step", "hi", "lo", "probes", "stale")

    def __init__(self, limit: int, guess: int = 1) -> None:
        if limit < 0:
            raise ValueError(f"limit {limit} < 0")
        self.lo = 0
        self.hi = limit + 1
        self._step = max(1, guess)
        self._bisecting = False
        self._pending: set[int] = set()
        #: probes handed out, and observations that came too late to matter
        self.probes = 0
        self.stale = 0

    @property
    def done(self) -> bool:
        """True when the boundary is known."""
        return self.hi == self.lo + 1

    def result(self) -> int:
        """The largest ``k`` known to be ok."""
        return self.lo

    def propose(self, n: int) -> list[int]:
        """Up to ``n`` new probes."""
        if self.done or n <= 0:
            return []
        out: list[int] = []
        if not self._bisecting:
            top, step = max([self.lo, *self._pending]), self._step
            if self._pending:  # gallop steps already out: continue as if they all succeed
                step *= 2 ** len([p for p in self._pending if p > self.lo])
            while len(out) < n:
                x = min(top + step, self.hi - 1)
                if x <= top or x in self._pending:
                    break
                out.append(x)
                top, step = x, step * 2
        else:
            inside = sorted(p for p in self._pending if self.lo < p < self.hi)
            edges = [self.lo, *inside, self.hi]
            while len(out) < n:
                gaps = [(b - a, a, b) for a, b in pairwise(edges) if b - a > 1]
                if not gaps:
                    break
                _, a, b = max(gaps)
                x = (a + b) // 2
                out.append(x)
                edges = sorted([*edges, x])
        self._pending.update(out)
        self.probes += len(out)
        return out

    def observe(self, k: int, ok: bool) -> bool:
        """Record ``ok(k)``; False when the observation was stale."""
        self._pending.discard(k)
        if not self.lo < k < self.hi:
            self.stale += 1
            return False
        if ok:
            self.lo = k
            if not self._bisecting:
                self._step *= 2
        else:
            self.hi = k
            self._bisecting = True
        self._pending = {p for p in self._pending if self.lo < p < self.hi}
        return True
