"""Failure signatures: one line that names a failure, and the rule that says when two are the same.

A signature reads ``HEAD[: KIND][: MESSAGE]``:

* HEAD: ``exit 1``, ``signal SIGSEGV``, ``timeout``, ``output`` (a ``--fail-regex`` match) or a
  ``metric ...`` line;
* KIND: the exception type as printed (``pydantic.errors.PydanticImportError``), or pytest's
  ``FAILED <node id>``; absent for a plain error line (``Fatal Python error: Segmentation fault``);
* MESSAGE: the exception's message, normalized.

The message is the first line after ``Type:`` of the last traceback; when that line is empty
(scikit-learn's ``ImportError:`` whose text starts on the next line) or ends with a colon, the next
meaningful line joins it, skipping the boilerplate a library adds to every error of a family (CUDA's
"kernel errors might be asynchronously reported", pydantic's "For further information visit").
Later lines are detail (data, advice, a C++ stack) and left out: pydantic's ``1 validation error for
M`` is named by that summary, not by the field below it.  Normalizing replaces what changes between
runs and releases: versions as a whole (``1.26.4``, ``2.0.0rc1``, ``v1.2``) become ``<ver>`` (a bare
``2.0`` reads as a number, ``<n>``, and the two compare equal), URLs ``<url>``, sizes ``<size>``,
numbers ``<n>``, and paths, hex, UUIDs and timestamps; it removes the interpreter's hints (``Did you
mean: 'float16'?``, ``Did you forget to import 'sys'?``, ``Perhaps you forgot a comma?``), PyTorch's
per-process memory report and trailing punctuation, and keeps at most 200 characters (cut at a word).

Two signatures are :func:`same_failure` when their heads are equal, their kinds name the same type
(the class name: ``numpy.core._exceptions._UFuncNoLoopError`` and ``numpy._core...`` are one type)
and their messages are equal after normalization, or near-identical: the shorter message's tokens
appear in order in the longer one (only insertions: a qualifier ``A.f()`` for ``f()``, a hint or a
clause added), the longer has at most half as many tokens again (token ratio
``2*short/(short+long) >= 0.8``) and no more negations (``not``, ``no``, ``cannot``...).
A replaced token is never near: names of modules, attributes, keys and tests are the identity of a
failure, so ``No module named 'a'`` and ``No module named 'b'`` differ, as do different exception
types and different heads (``exit 139`` and ``signal SIGSEGV``).  A head alone matches only itself,
except a bare signal, which says no more than its name: ``signal SIGSEGV`` is also
``signal SIGSEGV: Fatal Python error: Segmentation fault``.  Examples::

    exit 1: AttributeError: `np.float_` was removed in the NumPy <n> release. Use `np.float64` instead
        numpy 2.0.0 (with "Did you mean: 'float16'?") and 2.1.0 (without): the same signature
    exit 1: TypeError: f() takes <n> positional arguments but <n> were given        (Python 3.9)
    exit 1: TypeError: A.f() takes <n> positional arguments but <n> were given      same (3.10+)
    exit 1: TypeError: A.g() takes <n> positional arguments but <n> were given      different (name)
    exit 1: KeyError: 'a'   /   exit 1: KeyError: 'b'                               different
    exit 1: ImportError   /   exit 1: ImportError: cannot import name 'x' from 'y'  different

Not seen: a difference past the first 200 characters of a message, and a reworded message (PyTorch's
"total capacty" fixed to "total capacity", or ``RuntimeError`` becoming ``torch.cuda.OutOfMemoryError``):
those stay different failures (``--any-failure`` counts every failure as bad).  The corpus of real
messages in ``tests/data/signatures/`` shows where the line falls.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MESSAGE_LIMIT",
    "NEAR_RATIO",
    "Parts",
    "error_text",
    "group_signatures",
    "make_signature",
    "normalize_line",
    "parse_signature",
    "same_failure",
]

#: characters of a normalized message kept in a signature
MESSAGE_LIMIT = 200
#: token ratio ``2*short/(short+long)`` at or above which an insertion-only difference is near
NEAR_RATIO = 0.8

# --- normalizing ------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_URL = re.compile(r"\b(?:https?|ftp|file)://[^\s'\"<>`]+?(?=[.,;:!?)\]'\">]*(?:\s|$))")
_HINTS = re.compile(
    r"(?:^|[.,;]?\s+)(?:Did you (?:mean|forget)|Perhaps you|Maybe you|Were you)\b[^?]*\?\s*$", re.IGNORECASE
)
#: PyTorch's out-of-memory message lists the memory of each process on the device: run-specific
_VOLATILE = re.compile(
    r"(?:Including non-PyTorch memory, this process|Process \d+) has [\d.]+ ?[KMGTP]?i?B memory in use\.\s*"
)
_NORMALIZERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a path starts a word: after the line start, a space, a quote, a bracket or '=' / ':' / ','
    (
        re.compile(r"(?<![^\s\"'(=:,])(?:(?:~|\.{1,2})?(?:/[\w.@+%=~-]+)+/?|[\w.-]+(?:/[\w.@+%=~-]+)+)"),
        "<path>",
    ),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"), "<hex>"),
    # a version as a whole: X.Y.Z[...], X.Y with a pre/post/dev part, v-prefixed, +local
    (
        re.compile(
            r"(?<![\w.])(?:v\d+(?:\.\d+)+|\d+(?:\.\d+){2,}|\d+\.\d+(?=[-.]?(?:a|b|rc|dev|post)\d))"
            r"(?:[-.]?(?:a|b|rc|alpha|beta|dev|post)\d*)*(?:\+[\w.]+)?(?![\w])"
        ),
        "<ver>",
    ),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:[KMGTPE]i?B|bytes)\b"), "<size>"),
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])"), "<n>"),
)
_WS = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s.?!:;,]+$")


def _strip_hints(text: str) -> str:
    while True:
        cut = _HINTS.sub("", text)
        if cut == text:
            return text
        text = cut


def normalize_line(line: str, limit: int = MESSAGE_LIMIT) -> str:
    """Replace run- and release-specific parts with placeholders and drop the interpreter's hints.

    ``np.float_ was removed in the NumPy 2.0.2 release.. Did you mean: 'float16'?`` becomes
    ``np.float_ was removed in the NumPy <ver> release``; the result is at most ``limit`` characters.
    """
    text = _WS.sub(" ", _ANSI.sub("", line)).strip()
    text = _strip_hints(_VOLATILE.sub("", text))
    text = _URL.sub("<url>", text)
    for pattern, repl in _NORMALIZERS:
        text = pattern.sub(repl, text)
    text = _TRAILING.sub("", _WS.sub(" ", text))
    if len(text) > limit:  # cut at a word boundary, so the cut does not depend on a word's length
        cut = text[: limit + 1].rfind(" ")
        text = text[: cut if cut > limit // 2 else limit]
    return _TRAILING.sub("", text)


# --- finding the error in the output ----------------------------------------------------------

#: prefixes that are not part of a line: torchrun's ``[rank3]:``, CI logs' timestamps, pytest's ``E``
_PREFIX = re.compile(
    r"^(?:\[(?:rank|Rank|default)\d+\]:\s?"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?\s+"
    r"|[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}\s+"
    r"|E {3,})"
)
_EXC_NAME = r"(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*"
_EXC_LINE = re.compile(
    rf"^\s*({_EXC_NAME}(?:Error|Exception|Exit|Interrupt|Failure|Fault))(?::.*)?$", re.MULTILINE
)
#: a Python warning (``x.py:12: UserWarning: Failed to ...``) is not the error, whatever its words
_WARNING = re.compile(r"\b[A-Z]\w*Warning:")
_AFTER_TRACEBACK = re.compile(rf"^({_EXC_NAME})(?::(.*))?$")
_ERR_WORDS = re.compile(
    r"^.*(?:\b(?:error|fatal|panic|abort(?:ed)?|assert(?:ion)?|exception|failed|failure|nan)\b"
    r"|segmentation fault|core dumped|illegal memory access"
    # a shell that could not fork (the process limit met by the workload's own processes): dash's
    # "sh: 1: Cannot fork", busybox's "can't fork", bash's last "fork: Resource temporarily
    # unavailable" (not its "fork: retry: ..." lines)
    r"|\bcan(?:not|'t) fork\b|\bfork: resource temporarily unavailable).*$",
    re.MULTILINE | re.IGNORECASE,
)
_PYTEST = re.compile(r"^(FAILED|ERROR) (\S+\.py(?:::\S+)?)(?: - (.*))?$", re.MULTILINE)
#: lines a library adds to every error of a family: hints, not identity
_BOILERPLATE = re.compile(
    r"^(?:CUDA kernel errors might be asynchronously reported"
    r"|For debugging consider passing CUDA_LAUNCH_BLOCKING"
    r"|Compile with `TORCH_USE_CUDA_DSA`"
    r"|Device-side assertions? (?:were|was) explicitly omitted"
    r"|For further information visit https?://"
    r"|\(Triggered internally at )"
)
#: a rule drawn under a header (torchrun's ChildFailedError: ``=====`` then ``train.py FAILED``)
_RULE = re.compile(r"^[\W_]+$")
_TRACEBACK = "Traceback (most recent call last):"
_NEW_BLOCK = re.compile(
    r"^(?:Traceback \(most recent call last\)|During handling of|The above exception"
    r"|Exception raised from |frame #\d)"
)


def _clean(text: str) -> list[str]:
    return [_PREFIX.sub("", line).rstrip() for line in _ANSI.sub("", text).splitlines()]


def _message(first: str, lines: list[str], start: int) -> str:
    """The message's first line; when it is empty (scikit-learn's ``ImportError:`` then the text) or
    ends with a colon (a header), the next meaningful line joins it.  Later lines are detail (data,
    advice, a C++ stack) and not part of the identity."""
    parts = [first.strip()] if first.strip() else []
    k = start
    while k < len(lines) and len(parts) < 2 and (not parts or parts[-1].endswith(":")):
        line = lines[k].strip()
        k += 1
        if parts and (not line or _NEW_BLOCK.match(line)):
            break
        if line and not _BOILERPLATE.match(line) and not _NEW_BLOCK.match(line) and not _RULE.match(line):
            parts.append(line)
    return " ".join(parts)


def _pytest_failure(text: str) -> str | None:
    found = sorted(_PYTEST.findall(_ANSI.sub("", text)), key=lambda m: (m[1], m[0]))
    if not found:
        return None
    outcome, node, msg = found[0]
    if msg.endswith("..."):  # pytest cut the line to the terminal's width: the last word may be cut too
        msg = msg[:-3].rsplit(" ", 1)[0]
    return f"{outcome} {node} - {msg}" if msg else f"{outcome} {node}"


def _exception(text: str) -> str | None:
    lines = _clean(text)
    last_tb = max((i for i, line in enumerate(lines) if line == _TRACEBACK), default=-1)
    if last_tb >= 0:
        j = last_tb + 1
        while j < len(lines) and (not lines[j] or lines[j][0] in " \t"):
            j += 1
        m = _AFTER_TRACEBACK.match(lines[j]) if j < len(lines) else None
        if m:
            return f"{m.group(1)}: {_message(m.group(2) or '', lines, j + 1)}".rstrip(": ")
    for j in range(len(lines) - 1, -1, -1):
        if _EXC_LINE.match(lines[j]):
            # the first line of a block of exception-looking lines carries the type: NCCL's
            # ``ncclSystemError: ...`` under ``RuntimeError: NCCL error ...`` is detail
            while j > 0 and _EXC_LINE.match(lines[j - 1]):
                j -= 1
            name, _, rest = lines[j].strip().partition(":")
            return f"{name}: {_message(rest, lines, j + 1)}".rstrip(": ")
    return None


def error_text(*texts: str) -> str | None:
    """The line that best names the error in ``texts`` (stream tails, most telling first).

    In order: pytest's summary line of the first failing test (by node id); the exception of the last
    traceback with its message; the last line that looks like an exception; the first error-ish line
    that is not a Python warning.
    """
    for finder in (_pytest_failure, _exception):
        for text in texts:
            found = finder(text)
            if found:
                return found
    for text in texts:
        for m in _ERR_WORDS.finditer("\n".join(_clean(text))):
            if not _WARNING.search(m.group(0)):
                return m.group(0).strip()
    return None


# --- signatures -------------------------------------------------------------------------------

_HEAD = re.compile(r"^(exit -?\d+|signal \w+|timeout|output)(?::\s?(.*))?$", re.DOTALL)
_KIND = re.compile(rf"^({_EXC_NAME})(?::\s?(.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Parts:
    """A signature taken apart: head, kind (exception type or pytest outcome + node id), message."""

    head: str
    kind: str
    message: str

    @property
    def kind_key(self) -> str:
        """What identifies the kind: an exception's class name without its module path."""
        if self.kind.startswith(("FAILED ", "ERROR ")):
            return self.kind
        return self.kind.rpartition(".")[2]


def _split_kind(text: str) -> tuple[str, str]:
    m = _PYTEST.match(text)
    if m:
        return f"{m.group(1)} {m.group(2)}", m.group(3) or ""
    m = _KIND.match(text)
    if m:
        return m.group(1), m.group(2) or ""
    return "", text


def parse_signature(sig: str) -> Parts:
    """Take a signature (or an un-normalized one from an older run) apart, normalizing its message."""
    m = _HEAD.match(sig.strip())
    if not m:
        return Parts(sig.strip(), "", "")
    kind, message = _split_kind((m.group(2) or "").strip())
    return Parts(m.group(1), kind, normalize_line(message))


def make_signature(head: str, line: str | None) -> str:
    """``HEAD: KIND: MESSAGE`` for the error ``line`` (see the module docstring); ``head`` without one."""
    if not line or not line.strip():
        return head
    kind, message = _split_kind(_WS.sub(" ", line).strip())
    message = normalize_line(message)
    if kind.startswith(("FAILED ", "ERROR ")):  # pytest's own form, so a node id stays one word
        return f"{head}: {kind} - {message}" if message else f"{head}: {kind}"
    return ": ".join(p for p in (head, kind, message) if p)


# --- comparing --------------------------------------------------------------------------------

_TOKEN = re.compile(r"<[a-z]+>|(?<!\w)'[^'\s][^']*'|\"[^\"]*\"|`[^`]*`|[A-Za-z]+n't\b|[A-Za-z_]\w*|\d+|\S")
_NEGATIONS = frozenset({"not", "no", "never", "cannot", "without", "none", "neither", "nor"})


def _tokens(message: str) -> list[str]:
    return ["<n>" if t == "<ver>" else t for t in _TOKEN.findall(message)]


def _negations(tokens: list[str]) -> int:
    return sum(1 for t in tokens if t.lower() in _NEGATIONS or t.lower().endswith("n't"))


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(t == u for u in it) for t in short)


def _near(a: list[str], b: list[str]) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not short or 2 * len(short) / (len(short) + len(long)) < NEAR_RATIO:
        return False
    return _is_subsequence(short, long) and _negations(long) == _negations(short)


def same_failure(a: str | None, b: str | None) -> bool:
    """True when two signatures name the same failure, as a person reading them would judge.

    Same head, same exception type (class name) and the same normalized message, or a near-identical
    one (see the module docstring).  Every room compares signatures through this, never with ``==``.
    """
    if a is None or b is None:
        return False
    if a == b:
        return True
    pa, pb = parse_signature(a), parse_signature(b)
    if pa.head != pb.head:
        return False
    bare_a, bare_b = not (pa.kind or pa.message), not (pb.kind or pb.message)
    if bare_a or bare_b:
        # a bare head matches a bare head; a bare signal says no more than its name, so it is also
        # that signal with any report (faulthandler's "Fatal Python error: Segmentation fault")
        return (bare_a and bare_b) or pa.head.startswith("signal ")
    if pa.kind_key != pb.kind_key:
        return False
    ta, tb = _tokens(pa.message), _tokens(pb.message)
    return ta == tb or _near(ta, tb)


def group_signatures(sigs: Iterable[str]) -> dict[str, list[str]]:
    """Group signatures that are the same failure: ``{representative: [every member, repeats kept]}``.

    The representative is the most common signature of its group (ties: alphabetically first); a
    signature joins the first group whose representative it is the same failure as, so the result
    does not depend on the order of ``sigs``.  ``len(members)`` is the group's count.
    """
    counts = Counter(sigs)
    groups: dict[str, list[str]] = {}
    for sig, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        rep = next((r for r in groups if same_failure(sig, r)), sig)
        groups.setdefault(rep, []).extend([sig] * n)
    return groups
