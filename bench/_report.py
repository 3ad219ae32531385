"""What the benches print alike: the closing table of targets."""

from __future__ import annotations

from collections.abc import Sequence


def print_targets(checks: Sequence[tuple[str, str, bool]]) -> None:
    """One line per target: what it asks, what was measured, and whether it is met."""
    what_w = max(len(what) for what, _, _ in checks)
    got_w = max(len(got) for _, got, _ in checks)
    print(f"\n# {'target':<{what_w}} {'measured':<{got_w}} met")
    for what, got, ok in checks:
        print(f"  {what:<{what_w}} {got:<{got_w}} {'yes' if ok else 'NO'}")
