"""``sleuth report`` on ``sleuth run`` run dirs: real runs, the real CLI, a real headless Chromium."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.report.conftest import external_refs, parse, visible_text

# trials 0002 and 0005 fail, each with its own message; every trial prints a loss
WORKLOAD = (
    'case "$SLEUTH_TRIAL_ID" in '
    '0002) echo loss=9.5; echo "CUDA error: an illegal memory access" >&2; exit 3;; '
    '0005) echo loss=8.25; echo "NCCL timeout on rank 3" >&2; exit 1;; '
    "*) echo loss=1.5;; esac"
)


def _run_dir(result: CliResult) -> Path:
    assert result.rc in (0, 1), result.stderr
    return Path(result.json()["run_dir"])


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_a_failing_run_has_its_rate_its_figures_signatures_and_logs_in_one_page(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str]
) -> None:
    run_dir = _run_dir(sleuth("run", "--trials", "6", "--metric", "loss=loss=([0-9.]+)", "--json", "--",
                              "sh", "-c", WORKLOAD))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())["summary"]
    made = sleuth("report", run_dir)
    assert made.rc == 0, made.stderr
    page = run_dir / "report.html"
    assert made.stdout.strip() == str(page)
    dom = browser(page)
    text = visible_text(dom)
    lo, hi = summary["failure_rate_ci"]
    assert f"{summary['fail']} of {summary['trials']} trial(s) failed" in text
    assert f"failure rate {_pct(summary['failure_rate'])} [95% CI {_pct(lo)}-{_pct(hi)}]" in text
    # every signature the run found, with the first trial's own log under it
    for sig, first in summary["signature_first"].items():
        assert sig in text and f"Trial {first}, first of" in text
    assert "CUDA error: an illegal memory access" in text and "NCCL timeout on rank 3" in text
    # the two figures (trials over time, loss by outcome) are inline SVG, and nothing is fetched
    tags = [t for t, _ in parse(dom).tags]
    assert tags.count("svg") == 2
    assert external_refs(dom) == []
    assert "loss" in text and "0002" in text and "FAIL" in text


def test_the_page_hides_the_runs_secrets_even_in_the_workloads_own_logs(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    token = "ghp_" + "Zx9" * 10
    secret = "hunter2-but-longer-value"
    result = sleuth("run", "--trials", "1", "--env", f"API_PASSWORD={secret}", "--json", "--",
                    "sh", "-c", f'echo "using $API_PASSWORD and {token}" >&2; exit 1')  # fmt: skip
    run_dir = _run_dir(result)
    assert secret in (run_dir / "trials" / "0001" / "stderr").read_text()  # the log is the workload's own
    assert sleuth("report", run_dir).rc == 0
    page = (run_dir / "report.html").read_text()
    assert "using " in page
    assert secret not in page and token not in page


def test_markup_in_a_workloads_output_is_shown_as_text_never_run(
    sleuth: Callable[..., CliResult], browser: Callable[[Path], str]
) -> None:
    evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    run_dir = _run_dir(
        sleuth("run", "--trials", "1", "--json", "--", "sh", "-c", f'echo "{evil}" >&2; exit 1')
    )
    assert sleuth("report", run_dir).rc == 0
    dom = browser(run_dir / "report.html")
    tags = parse(dom).tags
    assert not [t for t, _ in tags if t in ("script", "img")]
    assert evil in visible_text(dom)


def test_an_interrupted_run_gets_a_page_that_says_it_did_not_finish(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir = _run_dir(sleuth("run", "--trials", "3", "--json", "--", "true"))
    # what a kill -9 before the end leaves: no summary, no end event
    lines = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "journal.jsonl").write_text("".join(line for line in lines if '"event": "end"' not in line))
    (run_dir / "summary.json").unlink()
    made = sleuth("report", run_dir)
    assert made.rc == 0, made.stderr
    text = visible_text((run_dir / "report.html").read_text())
    assert "Not finished (interrupted or still running): 0 of 3 trial(s) failed" in text
    assert 'class="headline unsure"' in (run_dir / "report.html").read_text()


def test_the_same_run_dir_gives_the_same_page_byte_for_byte(sleuth: Callable[..., CliResult]) -> None:
    run_dir = _run_dir(sleuth("run", "--trials", "4", "--metric", "loss=loss=([0-9.]+)", "--json", "--",
                              "sh", "-c", WORKLOAD))  # fmt: skip
    assert sleuth("report", run_dir, "--out", run_dir / "a.html").rc == 0
    assert sleuth("report", run_dir, "--out", run_dir / "b.html").rc == 0
    assert (run_dir / "a.html").read_bytes() == (run_dir / "b.html").read_bytes()


def test_a_long_run_lists_its_failures_first_when_the_table_is_cut(sleuth: Callable[..., CliResult]) -> None:
    script = 'case "$SLEUTH_TRIAL_ID" in 0290|0299) exit 1;; esac'
    run_dir = _run_dir(sleuth("run", "--trials", "300", "--jobs", "2", "--json", "--", "sh", "-c", script))
    assert sleuth("report", run_dir).rc == 0
    text = visible_text((run_dir / "report.html").read_text())
    assert "200 of 300 rows shown." in text
    assert "0290 FAIL" in text and "0299 FAIL" in text
    assert "0001 PASS" in text and "0250 PASS" not in text


def test_non_utf8_output_is_shown_with_replacement_characters(sleuth: Callable[..., CliResult]) -> None:
    run_dir = _run_dir(
        sleuth(
            "run", "--trials", "1", "--json", "--", "sh", "-c", r"printf 'bad \377\376 bytes\n' >&2; exit 1"
        )
    )
    assert sleuth("report", run_dir).rc == 0
    assert "bad \ufffd\ufffd bytes" in (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda p: p / "missing", "no such run dir"),
        (lambda p: (p / "plain").mkdir() or p / "plain", "not a sleuth run dir"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a directory"),
    ],
)
def test_a_path_that_is_not_a_run_dir_is_one_line_and_exit_2(
    sleuth: Callable[..., CliResult], tmp_path: Path, make: Callable[[Path], Path], expect: str
) -> None:
    target = make(tmp_path)
    result = sleuth("report", target)
    assert result.rc == 2
    assert expect in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("report.html"))


def test_an_unwritable_out_is_one_line_and_leaves_no_file(
    sleuth: Callable[..., CliResult], tmp_path: Path
) -> None:
    run_dir = _run_dir(sleuth("run", "--trials", "1", "--json", "--", "true"))
    (tmp_path / "a-file").write_text("x")
    result = sleuth("report", run_dir, "--out", tmp_path / "a-file" / "r.html")
    assert result.rc == 2 and "cannot write the report" in result.stderr and "--out" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_dir / "report.html").exists()


def test_json_names_the_page_and_the_verb(sleuth: Callable[..., CliResult]) -> None:
    run_dir = _run_dir(sleuth("run", "--trials", "1", "--json", "--", "true"))
    result = sleuth("report", run_dir, "--json")
    assert result.rc == 0
    assert result.json() == {"report": str(run_dir / "report.html"), "verb": "run", "run_dir": str(run_dir)}
    assert os.path.getsize(run_dir / "report.html") > 0


def test_thousands_of_trials_are_drawn_as_an_image_inside_the_svg_not_as_thousands_of_paths() -> None:
    from sleuth.report.run import RASTER_POINTS, _timeline

    def trials(n: int) -> list[dict[str, object]]:
        return [{"id": f"{i:05d}", "wall_s": 0.01 * (i % 7), "outcome": "fail" if i % 5 == 0 else "pass"}
                for i in range(n)]  # fmt: skip

    small, big = _timeline(trials(50)), _timeline(trials(RASTER_POINTS + 1000))
    assert small is not None and big is not None
    assert "<image" not in small.svg and "<image" in big.svg
    # the big figure weighs about what the small one does, not 60x more
    assert len(big.svg) < 3 * len(small.svg) + 200_000


def test_a_value_kept_as_a_whole_assignment_in_secrets_json_is_hidden_bare_in_logs(tmp_path: Path) -> None:
    from sleuth.report.source import _kept_secrets

    (tmp_path / "secrets.json").write_text(json.dumps({"--env API_KEY": "API_KEY=s3cr3t-value-long"}))
    secrets = _kept_secrets(tmp_path)
    assert "s3cr3t-value-long" not in secrets.scrub("the log said s3cr3t-value-long here")
