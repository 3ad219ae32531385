"""``sleuth bisect git`` over merges: first parents, then down into the merged branch that fails."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bisect.test_bisect_cli import doc, git, sleuth

TEST = 'test ! -f bad || { echo "AssertionError: bad" >&2; exit 1; }\n'


def commit(repo: Path, name: str, *, bad: bool = False) -> str:
    (repo / name).write_text(name + "\n")
    if bad:
        (repo / "bad").write_text("1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").strip()


def merged_repo(root: Path, *, bad_in_merge: bool = False) -> dict[str, str]:
    """main: m1 m2 [good] m3 m4 merge(feat) m5 m6 [bad]; feat from m2: f1 f2 f3 f4, the bug in f3.

    The feature commits are older than m3 and m4, so ``git log`` order puts the good m3, m4 after
    the bad f3: the linearized history is not monotone.  ``bad_in_merge``: no bug on the branch,
    the merge commit adds it.
    """
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    c = {n: commit(repo, n) for n in ("m1", "m2")}
    git(repo, "checkout", "-q", "-b", "feat")
    for n in ("f1", "f2", "f3", "f4"):
        c[n] = commit(repo, n, bad=n == "f3" and not bad_in_merge)
    git(repo, "checkout", "-q", "main")
    c |= {n: commit(repo, n) for n in ("m3", "m4")}
    git(repo, "merge", "-q", "--no-ff", "--no-commit", "feat")
    if bad_in_merge:
        (repo / "bad").write_text("1\n")
        git(repo, "add", "bad")
    git(repo, "commit", "-q", "-m", "merge feat")
    c["merge"] = git(repo, "rev-parse", "HEAD").strip()
    c |= {n: commit(repo, n) for n in ("m5", "m6")}
    return c


def bisect(root: Path, c: dict[str, str], *extra: str) -> dict[str, object]:
    res = sleuth("bisect", "git", "--repo", "repo", "--good", c["m2"], "--bad", c["m6"], "--output", "o",
                 "--json", *extra, "--", "sh", "-c", TEST, cwd=root)  # fmt: skip
    d: dict[str, object] = doc(res)
    return d


def test_bug_on_a_merged_branch_is_found_on_that_branch(tmp_path: Path) -> None:
    c = merged_repo(tmp_path)
    d = bisect(tmp_path, c)
    assert d["status"] == "found"
    assert d["first_bad"]["label"] == c["f3"] and d["last_good"]["label"] == c["f2"]  # type: ignore[index]
    assert d["first_bad"]["title"].startswith("f3 (t, ")  # type: ignore[index]
    assert d["candidates"] == 10  # m2..m6 on first parents, m2 f1..f4 on the branch
    assert "First bad: `" + c["f3"] + "` f3 (t, " in Path(str(d["run_dir"]), "report.md").read_text()
    events = [json.loads(ln) for ln in Path(str(d["run_dir"]), "journal.jsonl").read_text().splitlines()]
    assert [e["label"] for e in events if e.get("phase") == "merged parent"] == [c["f4"]]
    # --first-parent stops at the merge that brought the bug in
    fp = bisect(tmp_path, c, "--first-parent")
    assert fp["first_bad"]["label"] == c["merge"] and fp["last_good"]["label"] == c["m4"]  # type: ignore[index]


def test_a_merge_whose_parents_both_pass_is_the_first_bad(tmp_path: Path) -> None:
    c = merged_repo(tmp_path, bad_in_merge=True)
    d = bisect(tmp_path, c)
    assert d["status"] == "found" and d["first_bad"]["label"] == c["merge"]  # type: ignore[index]
    assert "merge itself" in str(d["note"])
