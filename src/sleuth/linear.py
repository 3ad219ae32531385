"""Linear-time match location for the user's regexes (``--fail-regex``, ``--metric``) that Python's
backtracking ``re`` could take hours over.

``.*Error`` searched in 16 MB of tqdm progress bars (one "line": ``\\r`` is not a line end) is
quadratic in ``re``: minutes; ``(a+)+b`` is exponential in the run of ``a`` s.  Such a *risky*
pattern (see :func:`twin`) gets an RE2 twin (a DFA: linear time) translated from ``re``'s own parse
tree, for the constructs whose meaning is the same in both engines; RE2 finds where the next match
starts and ``re`` then matches there (``pattern.match(text, start)``), so groups, spans and
greedy/lazy choices stay Python's.  The twin only has to accept the same strings as ``re`` at each
position (which match wins is ``re``'s), so the translation is exact for what it accepts; anything
else (look-arounds, back-references, patterns that can match the empty string, an ``re`` that is
not 3.11's parser, no ``google-re2`` wheel) keeps plain ``re``.  ``\\d``, ``\\w``, ``\\s``, ``\\b``
and ``(?i)`` mean more in ``re`` than in RE2 on non-ASCII text: with those the twin is used only
on windows of pure-ASCII text.  Patterns that start with a literal and repeat no ``.`` or negated
class without bound (``loss=([0-9.]+)``) are not risky and keep ``re`` alone: it is faster per match
(RE2 costs about 3 us a match through its binding, ``re`` under 1 us).  For the same reason a risky
pattern is searched by ``re`` itself in a window whose lines are all shorter than ``LONG_LINE``
(one RE2 pass tells), where backtracking over at most a line stays cheap, unless it nests unbounded
repeats (``(a+)+b``: exponential even on a short line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["LONG_LINE", "Twin", "twin"]

#: a window whose lines are all shorter than this is searched by ``re`` itself, unless the pattern
#: nests unbounded repeats: ``.*`` backtracks over at most a line, so the cost stays near linear
LONG_LINE = 256

try:  # 3.11+'s parser (re's own); another layout keeps plain re
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _c = _p = None


@dataclass(frozen=True, slots=True)
class Twin:
    """An RE2 twin of a Python pattern: ``search(data, pos)`` over UTF-8 bytes."""

    rx: Any
    #: only exact on text that is pure ASCII (``\\d``, ``\\w``, ``\\s``, ``\\b``, ``(?i)``)
    ascii_only: bool
    #: nested unbounded repeats (``(a+)+``): exponential in ``re`` even on a short line
    nested: bool
    #: finds a line of ``LONG_LINE`` characters or more
    long_line: Any

    def locate(self, data: bytes) -> bool:
        """Whether matches in ``data`` (a window) must be located by the twin."""
        return self.nested or self.long_line.search(data) is not None


class _No(Exception):
    """The construct has no exact RE2 twin."""


_cache: dict[tuple[str, int], Twin | None] = {}


def twin(pattern: re.Pattern[str]) -> Twin | None:
    """The RE2 twin of a risky ``pattern``, or None (not risky, or not translatable: plain ``re``)."""
    key = (pattern.pattern, pattern.flags)
    if key in _cache:
        return _cache[key]
    found: Twin | None = None
    if _p is not None:
        try:
            tree = _p.parse(pattern.pattern, pattern.flags)
            if tree.getwidth()[0] > 0 and _risky(list(tree)):
                t = _Translator()
                source = t.seq(list(tree), tree.state.flags)
                # imported here, at the first risky pattern (20 ms): not on every start-up.  The
                # declared dependency where a wheel exists; elsewhere ImportError keeps plain re
                import re2 as _re2

                opts = _re2.Options()
                opts.max_mem = 64 << 20
                long_line = _re2.compile(f"[^\\n]{{{LONG_LINE}}}".encode(), opts)
                nested = _nested(list(tree), False)
                found = Twin(_re2.compile(source.encode(), opts), t.ascii_only, nested, long_line)
        except Exception:  # _No, no wheel, an RE2 limit ({1001,}), a parser change: plain re works
            found = None
    if len(_cache) > 256:
        _cache.clear()
    _cache[key] = found
    return found


def _unbounded_over_wide(items: list[tuple[Any, Any]], inside_repeat: bool) -> bool:
    for op, av in items:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            _lo, hi, sub = av
            body = list(sub)
            if hi == _c.MAXREPEAT and (inside_repeat or any(_wide(o, a) for o, a in body)):
                return True
            if _unbounded_over_wide(body, inside_repeat or hi == _c.MAXREPEAT or hi > 1):
                return True
        elif op in (_c.SUBPATTERN, _c.ATOMIC_GROUP):
            sub = av[-1] if op == _c.SUBPATTERN else av
            if _unbounded_over_wide(list(sub), inside_repeat):
                return True
        elif op == _c.BRANCH and any(_unbounded_over_wide(list(b), inside_repeat) for b in av[1]):
            return True
    return False


def _nested(items: list[tuple[Any, Any]], inside_repeat: bool) -> bool:
    """An unbounded repeat inside a repeat (``(a+)+b``, ``(\\w+\\s?)*``)."""
    for op, av in items:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            _lo, hi, sub = av
            if hi == _c.MAXREPEAT and inside_repeat:
                return True
            if _nested(list(sub), inside_repeat or hi == _c.MAXREPEAT or hi > 1):
                return True
        elif op in (_c.SUBPATTERN, _c.ATOMIC_GROUP):
            if _nested(list(av[-1] if op == _c.SUBPATTERN else av), inside_repeat):
                return True
        elif op == _c.BRANCH and any(_nested(list(b), inside_repeat) for b in av[1]):
            return True
    return False


def _wide(op: Any, av: Any) -> bool:
    """Matches most characters: ``.``, ``[^x]``, ``\\S``, ``\\D``, ``\\W``, or a group/repeat."""
    if op in (_c.ANY, _c.NOT_LITERAL, _c.SUBPATTERN, _c.BRANCH, _c.MAX_REPEAT, _c.MIN_REPEAT):
        return True
    if op == _c.IN:
        negated = any(o == _c.NEGATE for o, _ in av)
        cats = {a for o, a in av if o == _c.CATEGORY}
        return negated or bool(cats & {_c.CATEGORY_NOT_DIGIT, _c.CATEGORY_NOT_WORD, _c.CATEGORY_NOT_SPACE})
    return False


def _risky(items: list[tuple[Any, Any]]) -> bool:
    """Can ``re`` backtrack more than linearly?  Not when the pattern opens with a literal (``re``
    jumps between its occurrences) and repeats nothing wide or nested without bound."""
    return not items or items[0][0] != _c.LITERAL or _unbounded_over_wide(items, False)


def _ch(code: int) -> str:
    c = chr(code)
    return c if c.isascii() and c.isalnum() else f"\\x{{{code:X}}}"


# the characters of re's \d, \w, \s on ASCII text (re.ASCII: \s lacks \x1c-\x1f), in a class
_DIGIT = "0-9"
_WORD = "0-9A-Za-z_"
_SPACE = {True: "\\x{9}-\\x{D} ", False: "\\x{9}-\\x{D}\\x{1C}-\\x{1F} "}


class _Translator:
    def __init__(self) -> None:
        self.ascii_only = False

    def seq(self, items: list[tuple[Any, Any]], flags: int) -> str:
        return "".join(self.one(op, av, flags) for op, av in items)

    def _fold(self, flags: int, *codes: int) -> str:
        if flags & re.IGNORECASE:
            if not all(c < 128 for c in codes):
                raise _No("non-ASCII under (?i)")
            self.ascii_only = True
            return "(?i)"
        return ""

    def one(self, op: Any, av: Any, flags: int) -> str:
        if op == _c.LITERAL:
            fold = self._fold(flags, av)
            return f"(?{fold[2:-1]}:{_ch(av)})" if fold else _ch(av)
        if op == _c.NOT_LITERAL:
            fold = self._fold(flags, av)
            return f"(?{fold[2:-1]}:[^{_ch(av)}])" if fold else f"[^{_ch(av)}]"
        if op == _c.ANY:
            return "(?s:.)" if flags & re.DOTALL else "[^\\n]"
        if op == _c.IN:
            return self.klass(av, flags)
        if op == _c.BRANCH:
            return "(?:" + "|".join(self.seq(list(b), flags) for b in av[1]) + ")"
        if op == _c.SUBPATTERN:
            _group, add, drop, sub = av
            return "(?:" + self.seq(list(sub), (flags | add) & ~drop) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            body = self.seq(list(sub), flags)
            n = f"{{{lo},}}" if hi == _c.MAXREPEAT else f"{{{lo},{hi}}}"
            return f"(?:{body}){n}" + ("?" if op == _c.MIN_REPEAT else "")
        if op == _c.AT:
            return self.at(av, flags)
        raise _No(str(op))

    def at(self, av: Any, flags: int) -> str:
        if av == _c.AT_BEGINNING:
            return "(?m:^)" if flags & re.MULTILINE else "\\A"
        if av == _c.AT_BEGINNING_STRING:
            return "\\A"
        if av == _c.AT_END and flags & re.MULTILINE:
            return "(?m:$)"
        if av == _c.AT_END_STRING:
            return "\\z"
        if av in (_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY):
            if not flags & re.ASCII:
                self.ascii_only = True
            return "\\b" if av == _c.AT_BOUNDARY else "\\B"
        raise _No(str(av))  # $ without MULTILINE: "or before a final newline"

    def klass(self, items: list[tuple[Any, Any]], flags: int) -> str:
        negate = bool(items) and items[0][0] == _c.NEGATE
        body = items[1:] if negate else items
        asc = bool(flags & re.ASCII)
        parts: list[str] = []
        for op, av in body:
            if op == _c.LITERAL:
                parts.append(_ch(av))
                self._fold(flags, av)
            elif op == _c.RANGE:
                lo, hi = av
                if flags & re.IGNORECASE and not (
                    ord("a") <= lo <= hi <= ord("z") or ord("A") <= lo <= hi <= ord("Z") or hi < ord("A")
                ):
                    raise _No("a range that case folding would change")
                self._fold(flags, lo, hi)
                parts.append(f"{_ch(lo)}-{_ch(hi)}")
            elif op == _c.CATEGORY:
                if not asc:
                    self.ascii_only = True
                pos = {
                    _c.CATEGORY_DIGIT: _DIGIT,
                    _c.CATEGORY_WORD: _WORD,
                    _c.CATEGORY_SPACE: _SPACE[asc],
                }.get(av)
                neg = {
                    _c.CATEGORY_NOT_DIGIT: _DIGIT,
                    _c.CATEGORY_NOT_WORD: _WORD,
                    _c.CATEGORY_NOT_SPACE: _SPACE[asc],
                }.get(av)
                if pos is not None:
                    parts.append(pos)
                elif neg is not None and len(body) == 1 and not negate:
                    return f"[^{neg}]"
                else:
                    raise _No(str(av))
            else:
                raise _No(str(op))
        if not parts:
            raise _No("an empty class")
        fold = "(?i)" if flags & re.IGNORECASE else ""
        cls = f"[{'^' if negate else ''}{''.join(parts)}]"
        return f"(?{fold[2:-1]}:{cls})" if fold else cls
