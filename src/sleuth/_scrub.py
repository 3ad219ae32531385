"""The text half of :mod:`sleuth.secrets`: the secrets found inside free text, :func:`scrub_text`.

Import it from :mod:`sleuth.secrets` (the one redaction rule), which re-exports it.  Inside any text
(a tail, a log line, an argv printed, a config dump), :func:`scrub_text` hides the secret values it
is given, then what the text itself says is secret: URL credentials, HTTP credentials, the values of
secret-named assignments and flags (``password=...``, ``"api_key": "..."``, ``--password ...``, an
INI's ``key = ...``, a YAML's ``db_password: ...``), W&B keys in their context, token-shaped words
and bare AWS secret keys (never a git commit id: 40 hex digits stay).

Invariants: it runs in linear time over any text (bounded keys and schemes, matched from a word's
start: a log line may be a megabyte of base64), and the slower patterns run only over a text that
holds one of their words; a value that names where a secret comes from (``$HF_TOKEN``, ``{{ secrets.X
}}``) or reads as code (``password = self.password``) stays as it is, as do prose (``wrong password:
...``) and words such as ``max_tokens``.
"""

from __future__ import annotations

import re

from sleuth._probe import REDACTED

__all__ = ["scrub_text"]

#: token-shaped words anywhere in a text (not only whole values)
_TOKEN_WORD_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:ghp_|gho_|ghs_|ghu_|github_pat_|glpat-|hf_|sk-|xox[abprs]-|AKIA|ASIA)[A-Za-z0-9_-]{8,}"
)
#: the scheme is bounded: unbounded, a run of a million letters (a base64 blob in a log) was tried
#: as a scheme from each of its letters, each try scanning to the run's end (quadratic: hours)
_URL_CREDENTIALS_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/@\s:]*:[^/@\s]*@")

#: the credentials of an HTTP header or a curl line: ``Authorization: Basic dXNlcjpwYXNz`` (a word of
#: at least 8 token characters after the header), ``Bearer eyJ...`` (at least 16 after the word alone,
#: so that prose, "the bearer certificates", keeps its words)
_HTTP_CREDENTIALS_RE = re.compile(
    r"((?i:(?:proxy-)?authorization)\s*[:=]\s*(?:(?i:basic|bearer|token|digest)\s+)?)(?!<redacted>)[A-Za-z0-9._~+/=-]{8,}"
    r"|((?i:bearer)\s+)(?!<redacted>)[A-Za-z0-9._~+/=-]{16,}"
)

#: the key of an assignment that says secret (its last word): ``password``, ``DB_PASSWORD``,
#: ``client-secret``, ``api_key``, ``HF_TOKEN``; ``max_tokens`` and ``cache_key`` are not.  Bounded
#: and matched from a word's start only, so a long run of letters costs linear time.
_SECRET_KEY = (
    r"(?P<key>-{0,2}(?:[A-Za-z0-9]{1,64}[_.-]){0,4}[A-Za-z0-9]{0,32}?"
    r"(?:(?P<strong>(?i:password|passwd|passphrase|secret|credentials?))"
    r"|(?P<weak>(?i:token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|secret[_-]?key|auth))))"
)
#: a value that names where the secret comes from (``$HF_TOKEN``, ``${HF_TOKEN:?}``, ``%(password)s``,
#: ``{{ secrets.TOKEN }}``) is not one, and a reproducer script needs it as it is
_VALUE = r"(?P<open>[\"']?)(?!<redacted>|\$|%\(|\{\{)(?P<value>[^\s\"',;&]{1,4096})"
#: ``password=hunter2``, ``--api-key=...``, ``export DB_PASSWORD=...`` as a workload or a shell prints it
_ASSIGN_RE = re.compile(r"(?<![A-Za-z0-9_.-])" + _SECRET_KEY + r"(?P<sep>=)" + _VALUE)
#: ``--password hunter2``, ``-secret s3cr3t``: a command line a workload or a launcher prints (a flag
#: given its value after a space; ``--token to`` keeps its word: a weak key's value must look like one)
_FLAG_RE = re.compile(r"(?<![A-Za-z0-9_.-])(?=-)" + _SECRET_KEY + r"(?P<sep>[ \t]+)" + _VALUE)
#: words one of which a text must hold for the flag pattern to run at all
_FLAG_WORDS = ("pass", "secret", "cred", "token", "key", "auth")
#: ``"password": "..."`` and ``'token': '...'``: a JSON document or a Python dict printed whole (a
#: bare ``password: ...`` is left alone: it is as often prose, "wrong password: check ...")
_QUOTED_RE = re.compile(r"(?P<q>[\"'])" + _SECRET_KEY + r"(?P=q)(?P<sep>\s*:\s*)" + _VALUE)

#: ``aws_secret_access_key = KEY`` (an INI file: ``~/.aws/credentials``, a ``.pypirc``) and
#: ``db_password: hunter22`` (a YAML config): the ``=`` spaced, or a colon after a compound key (a
#: bare ``password: ...`` stays: it is prose as often).  An env snapshot's ``JAX_Y='aws_secret_access_key
#: = KEY'`` and a failing workload's config dump reached its signature, report and journal.  A value
#: that reads as code (:data:`_CODE_VALUE_RE`) stays: a traceback's ``password = self.password``
_SPACED_RE = re.compile(
    r"(?<![A-Za-z0-9_.-])"
    + _SECRET_KEY
    + r"(?P<sep>[ \t]+=[ \t]*|=[ \t]+|(?<=[A-Za-z0-9])[ \t]*:[ \t]+)"
    + _VALUE
)
#: a spaced assignment's value that is code, not a secret: a comparison (``==``), a call, an index,
#: a literal of the language (``None``), an attribute (``self.password``), a snake_case name
_CODE_VALUE_RE = re.compile(
    r"^=|[(\[{]|^(?:None|True|False|null|true|false|nil)$"
    r"|^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$|^[a-z]+(?:_[a-z]+)+$"
)

#: a W&B API key (40 hex digits) where its context says it is one: ``wandb login [FLAGS] KEY``, a
#: netrc's ``password KEY`` (``machine api.wandb.ai``), ``wandb.login(key="KEY")``.  A 40-hex word
#: alone is as often a git commit, and stays (``WANDB_API_KEY=KEY`` is an assignment, above).
_WANDB_KEY_RE = re.compile(
    r"(?P<ctx>(?i:\bwandb\s+login\b)[^\n]{0,200}?|(?i:\bpassword)\s+[\"']?"
    r"|(?i:\bwandb\.login\()[^)\n]{0,200}?\bkey\s*=\s*[\"']?)"
    r"(?<![0-9A-Za-z])[0-9a-fA-F]{40}(?![0-9A-Za-z])"
)


#: an AWS secret access key alone in a text (a call's positional arguments in a traceback, a
#: credentials CSV): a whole word of exactly 40 characters of base64's alphabet (not the middle of a
#: longer blob, a path's ``.py``, a snake_case name), judged by :func:`_hide_aws_secret`.  A word's
#: start is found by the lookbehind alone, so a run of a million such characters costs linear time.
_AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9+/=_.-])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=_.-])")
_NON_HEX_LETTER_RE = re.compile(r"[g-zG-Z]")
#: a run of lowercase letters that reads as part of a word: four of them make a name, not a key
_WORDISH_RE = re.compile(r"[a-z]{4,}")


def _hide_aws_secret(m: re.Match[str]) -> str:
    """The 40-character word hidden when it is mixed case with a digit and a letter past ``f`` (a
    git commit id, 40 hex digits in one case, stays), unless it reads as words: a CamelCase name
    of four or more of them (``Conv2dBackwardKernel3x3Float16Tensor4Abc``) stays; one random key
    in about 1,400 reads so."""
    w = m[0]
    if (
        any(c.isupper() for c in w)
        and any(c.islower() for c in w)
        and any(c.isdigit() for c in w)
        and _NON_HEX_LETTER_RE.search(w)
        and len(_WORDISH_RE.findall(w)) < 4
    ):
        return REDACTED
    return w


def _hide_assignment(m: re.Match[str]) -> str:
    """The assignment with its value hidden; a ``token``/``key`` value only when it looks like one
    (8+ characters, not a number: ``token=42`` is a token id in a model's log)."""
    value = m["value"]
    if m["weak"] and (len(value) < 8 or value.replace(".", "").isdigit()):
        return m[0]
    return m[0][: m.start("value") - m.start()] + REDACTED


def _hide_spaced(m: re.Match[str]) -> str:
    """A spaced assignment or a compound key's colon with its value hidden, unless the value reads
    as code or the key is one word before a colon (``Password: wrong`` is a message)."""
    if _CODE_VALUE_RE.search(m["value"]):
        return m[0]
    if ":" in m["sep"] and not re.search(r"[_.-]", m["key"].lstrip("-")):
        return m[0]
    return _hide_assignment(m)


def scrub_text(text: str, values: tuple[str, ...] = ()) -> str:
    """``text`` with the given secret ``values``, URL credentials, HTTP credentials
    (``Authorization: Basic ...``, ``Bearer ...``), the values of secret-named assignments and flags
    (``password=...``, ``"api_key": "..."``, ``--password ...``, an INI's ``aws_secret_access_key =
    ...``, a YAML's ``db_password: ...``), W&B keys in their context (``wandb
    login KEY``, a netrc's ``password KEY``), token-shaped words and bare AWS secret keys (40
    characters of base64, mixed case; a 40-hex commit id stays) hidden."""
    for v in values:
        if v:
            text = text.replace(v, REDACTED)
    # the guards skip the slower patterns over texts that cannot hold them (a 10,000-line list:
    # 8 ms of 9; every trial's tails)
    if "://" in text:
        text = _URL_CREDENTIALS_RE.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    low = text.lower()
    if "authorization" in low or "bearer" in low:
        text = _HTTP_CREDENTIALS_RE.sub(lambda m: f"{m[1] or m[2]}{REDACTED}", text)
    if "=" in text:
        text = _ASSIGN_RE.sub(_hide_assignment, text)
    if ":" in text:
        text = _QUOTED_RE.sub(_hide_assignment, text)
    if ("=" in text or ":" in text) and any(w in low for w in _FLAG_WORDS):
        text = _SPACED_RE.sub(_hide_spaced, text)
    if "-" in text and any(w in low for w in _FLAG_WORDS):
        text = _FLAG_RE.sub(_hide_assignment, text)
    if "wandb" in low or "password" in low:
        text = _WANDB_KEY_RE.sub(lambda m: m["ctx"] + REDACTED, text)
    if len(text) >= 40:
        text = _AWS_SECRET_RE.sub(_hide_aws_secret, text)
    return _TOKEN_WORD_RE.sub(REDACTED, text)
