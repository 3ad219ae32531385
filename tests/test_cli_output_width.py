"""Output piped or in a CI log: no line wrapped at 80 columns, no path cut; a terminal keeps rich's width."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sleuth.cli._common import PIPE_WIDTH, console, err_console


def _long_dir(tmp_path: Path) -> Path:
    """An output root whose run-dir paths are far wider than 80 (and than 200) columns."""
    return tmp_path / ("a-rather-long-directory-name-" * 8) / "runs"


def _sleuth(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    return subprocess.run(
        [sys.executable, "-m", "sleuth", *args],
        capture_output=True,  # pipes: what a CI log or `| tee` sees
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_run_dir_lines_are_whole_on_stdout(tmp_path: Path) -> None:
    out = _long_dir(tmp_path)
    res = _sleuth(tmp_path, "run", "--trials", "1", "--output", str(out), "--", sys.executable, "-c", "pass")
    assert res.returncode == 0, res.stderr
    run_dir = next(p for p in out.rglob("*") if (p / "summary.json").exists() or (p / "trials").is_dir())
    header = [ln for ln in res.stdout.splitlines() if ln.startswith("sleuth run ")]
    assert len(header) == 1
    assert header[0].endswith(f"-> {run_dir}")  # the whole path on the line that announces it


def test_run_dir_line_is_whole_on_stderr(tmp_path: Path) -> None:
    out = _long_dir(tmp_path)
    (tmp_path / "list.txt").write_text("a\nb\nc\n")
    test = 'test "$SLEUTH_CANDIDATE" = a'
    res = _sleuth(tmp_path, "bisect", "list", "list.txt", "--output", str(out), "--", "sh", "-c", test)
    assert res.returncode == 0, res.stderr
    header = [ln for ln in res.stderr.splitlines() if ln.startswith("sleuth bisect list")]
    assert len(header) == 1, res.stderr
    assert header[0].startswith(f"sleuth bisect list -> {out}/")
    assert Path(header[0].split(" -> ", 1)[1]).is_dir()


def test_long_values_print_on_one_line(tmp_path: Path) -> None:
    value = "/opt/" + "x" * 300 + "/lib"
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"schema": 1, "env": {}}))
    b.write_text(json.dumps({"schema": 1, "env": {"NCCL_PLUGIN_DIR": value}}))
    res = _sleuth(tmp_path, "env", "diff", str(a), str(b))
    assert res.returncode == 1, res.stderr
    assert f"+ env.NCCL_PLUGIN_DIR: {value}" in res.stdout.splitlines()


@pytest.mark.parametrize("make", [console, err_console], ids=["stdout", "stderr"])
def test_consoles_share_one_rule(make, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    con = make()  # under pytest both streams are captured: not a terminal
    assert not con.is_terminal
    assert con.width >= PIPE_WIDTH
    assert con.soft_wrap
    monkeypatch.setenv("COLUMNS", "100")  # an explicit width is honoured
    assert make().width == 100
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: rich's own width, not ours
    term = make()
    assert term.is_terminal
    assert term.width < PIPE_WIDTH


#: texts as sleuth prints them, and texts where rich's rendering is more than taking the tags out
_MARKUPS = [
    "[bold]sleuth run[/] 3 trial(s) of [cyan]python train.py --lr 0.1[/], 2 at a time -> /tmp/r/run/x",
    "[dim] trial  outcome    rc      wall  metrics / signature[/]",
    "  [bold]failure rate [/] 33.3% [95% CI 12.1-64.6%]",
    "  [bold]trials       [/] 3: [green]3 pass[/]  [bold red]0 fail[/]  [yellow]0 skip[/]  [bold yellow]0 error[/]",
    "[bold green]not reproduced[/]: 5 of 5 trial(s) passed; failure rate < 45% (95% upper bound)",
    "trials 12/50 (24%), 0:35 elapsed",
    "two\nlines",
    "",
    "an emoji :smile: code",
    "a :not_an_emoji: code",
    "an escaped \\[bold] tag",
    "a [link=https://x.y]link[/link]",
    "a [/] closing nothing [bold]x[/]",
    "a\ttab",
    "a\rreturn",
    "trailing  ",
    "wide \N{CJK UNIFIED IDEOGRAPH-4E2D}\N{CJK UNIFIED IDEOGRAPH-6587} and [ 1 ] and [#3]",
]


@pytest.mark.parametrize("text", _MARKUPS)
@pytest.mark.parametrize("markup", [True, False])
def test_plain_print_writes_what_rich_writes(
    text: str, markup: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped, a deferred console prints plain text itself only where rich would write exactly that."""
    from sleuth.cli._common import _Deferred, _plain_text

    for k in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(k, raising=False)
    try:
        console().print(text, soft_wrap=True, markup=markup)
        expected = capsys.readouterr().out
    except Exception as exc:  # rich refuses it (a tag closing nothing): so must the deferred console
        with pytest.raises(type(exc)):
            _Deferred(stderr=False).print(text, soft_wrap=True, markup=markup)
        return
    deferred = _Deferred(stderr=False)
    deferred.print(text, soft_wrap=True, markup=markup)
    assert capsys.readouterr().out == expected
    plain = _plain_text((text,), {"soft_wrap": True, "markup": markup})
    assert (deferred._con is None) == (plain is not None)  # rich made only when it renders
    if text in _MARKUPS[:6]:
        assert plain is not None  # sleuth's own lines never need rich
