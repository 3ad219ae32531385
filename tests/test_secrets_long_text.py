"""The one redaction rule runs in linear time: a workload's log line of a million letters or hex
digits (a base64 or hex blob) is scrubbed at once, never for hours (the URL-credentials pattern
once tried every letter of a run as a scheme's start and scanned the whole run from each)."""

from __future__ import annotations

import pytest

from sleuth.secrets import REDACTED, scrub_text


@pytest.mark.timeout(60)
@pytest.mark.parametrize("blob", ["x" * 1_000_000, "deadbeef01" * 100_000, "a1" * 500_000])
def test_a_long_run_of_letters_is_scrubbed_in_linear_time(blob: str) -> None:
    text = f"{blob} https://bob:pw123456@host/x git+ssh://al:pw7@h {blob[:40]}://u:p@h"
    out = scrub_text(text)
    assert "pw123456" not in out and "pw7" not in out and ":p@" not in out
    assert out.count(REDACTED) == 3 and out.startswith(blob)


def test_the_scheme_of_a_url_is_kept() -> None:
    assert scrub_text("see https://u:secretpw@example.com/a") == f"see https://{REDACTED}@example.com/a"
    assert scrub_text("x=git+https://u:p@h") == f"x=git+https://{REDACTED}@h"


@pytest.mark.timeout(60)
def test_a_long_base64_run_is_scrubbed_in_linear_time() -> None:
    """The bare AWS-key pattern finds a word's start by its lookbehind: a megabyte of base64 is tried
    once, not from each of its characters."""
    blob = "Zq4/" * 250_000
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert scrub_text(f"{blob} {key} {blob}") == f"{blob} {REDACTED} {blob}"
