"""``bisect pypi`` and the indexes uv's own configuration files add (``uv.toml``, ``[tool.uv]``,
``$UV_CONFIG_FILE``), and an extra index that cannot be reached: local indexes served by threads
(the fixtures of test_bisect_pypi_extra), real uv venvs, no network."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sleuth.errors import UsageError
from tests.badinput import assert_no_secret
from tests.bisect.test_bisect_cli import doc, sleuth
from tests.bisect.test_bisect_pypi_extra import _served
from tests.bisect.test_bisect_pypi_index import TEST, build_index

#: the releases on the default index: 1.2 broke
MAIN = {"1.0": {}, "1.1": {}, "1.2": {"body": "BROKEN = 1\n"}, "1.3": {"body": "BROKEN = 1\n"}}
#: another build of the package on a second index: only its 1.3 is broken
OTHER = {"1.1+x1": {}, "1.2+x1": {}, "1.3+x1": {"body": "BROKEN = 1\n"}}


def _isolated(tmp_path: Path) -> dict[str, str]:
    """No user- or system-level uv configuration of the machine running the tests (an empty
    ``$UV_CONFIG_FILE`` is an error to uv: these tests do not run where one is set)."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_DIRS": str(tmp_path / "xdg-dirs"),
            "UV_INDEX": "", "UV_EXTRA_INDEX_URL": "", "UV_DEFAULT_INDEX": "", "UV_INDEX_URL": ""}  # fmt: skip


def _events(root: Path) -> list[dict[str, object]]:
    (run,) = root.glob("bisect/pypi/*")
    return [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("where", ["UV_CONFIG_FILE", "uv.toml", "pyproject.toml"])
def test_an_index_in_uvs_own_configuration_is_listed_as_uv_installs_from_it(
    tmp_path: Path, where: str
) -> None:
    secret = "ConfigIndexPassw0rd"
    with (
        _served(build_index(tmp_path / "main", MAIN)) as main,
        _served(build_index(tmp_path / "x", OTHER)) as x,
    ):
        table = f'[[index]]\nurl = "{x.replace("http://", f"http://bob:{secret}@")}"\n'
        env = _isolated(tmp_path)
        if where == "UV_CONFIG_FILE":
            (tmp_path / "conf.toml").write_text(table)
            env["UV_CONFIG_FILE"] = str(tmp_path / "conf.toml")
        elif where == "uv.toml":
            (tmp_path / "uv.toml").write_text(table)
        else:
            (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.uv]\n" + table.replace("[[index]]", "[[tool.uv.index]]"))  # fmt: skip
        res = sleuth("bisect", "pypi", "tinypkg", "--index-url", main, "--flaky", "off", "--json", "--output", "o",
                     *TEST, cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    # uv takes tinypkg from the first index that has it, the one the file adds: its builds are the
    # candidates (before, the default's 1.0-1.3 were listed and "1.2" installed 1.2+x1, which passed)
    events = _events(tmp_path / "o")
    assert next(e["labels"] for e in events if e["event"] == "candidates") == ["1.1+x1", "1.2+x1", "1.3+x1"]
    d = doc(res)
    assert (d["last_good"]["label"], d["first_bad"]["label"]) == ("1.2+x1", "1.3+x1"), d
    assert "its releases are listed too" in res.stderr, res.stderr
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    for ev in (e for e in events if e["event"] == "test"):  # each venv holds the candidate it tests
        held = (run / str(ev["trial_dir"])).parent / "packages.txt"
        assert f"tinypkg=={ev['label']}\n" in held.read_text(), ev
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "o"])


def test_a_configured_index_without_the_package_leaves_the_default_s_releases(tmp_path: Path) -> None:
    with _served(build_index(tmp_path / "main", MAIN)) as main, _served(build_index(tmp_path / "x", OTHER, name="other")) as x:  # fmt: skip
        (tmp_path / "uv.toml").write_text(f'index-url = "{main}"\n[pip]\nextra-index-url = ["{x}"]\n')
        res = sleuth("bisect", "pypi", "tinypkg", "--flaky", "off", "--json", "--output", "o", *TEST,
                     cwd=tmp_path, env=_isolated(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"sets the default index {main}" in res.stderr, res.stderr
    d = doc(res)
    assert (d["last_good"]["label"], d["first_bad"]["label"]) == ("1.1", "1.2"), d


def test_uvs_configuration_is_found_as_uv_finds_it(tmp_path: Path) -> None:
    from sleuth.bisect.uvconfig import config_indexes

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "uv.toml").write_text('[[index]]\nurl = "https://far.example/simple"\n')
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.uv]\nextra-index-url = ["https://near.example/simple"]\n'
                                                   '[[tool.uv.index]]\nurl = "https://pinned.example/simple"\n'
                                                   'explicit = true\nname = "p"\n')  # fmt: skip
    user = tmp_path / "xdg" / "uv"
    user.mkdir(parents=True)
    (user / "uv.toml").write_text('[[index]]\nurl = "https://user.example/simple/"\ndefault = true\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    got = config_indexes(tmp_path / "a" / "b", env)  # the nearest file wins; an explicit index is left out
    assert got.extras == (("https://near.example/simple", str(tmp_path / "a" / "pyproject.toml")),)
    assert got.default == ("https://user.example/simple", str(user / "uv.toml"))
    assert config_indexes(tmp_path / "a" / "b", {**env, "UV_NO_CONFIG": "1"}).extras == ()
    (tmp_path / "a" / "b" / "c").mkdir()  # a pyproject.toml uv cannot read: uv passes it over
    for bad in ("[tool.uv\n", "[tool.uv]\nindex = 5\n"):
        (tmp_path / "a" / "b" / "c" / "pyproject.toml").write_text(bad)
        assert config_indexes(tmp_path / "a" / "b" / "c", env) == got
    only = config_indexes(tmp_path / "a", {**env, "UV_CONFIG_FILE": str(tmp_path / "uv.toml")})
    assert (only.extras, only.default) == ((("https://far.example/simple", str(tmp_path / "uv.toml")),), None)
    (tmp_path / "a" / "b" / "uv.toml").write_text("[[index]]\nurl = 'wheels/'\n")
    with pytest.raises(UsageError, match=r"uv.toml: \[\[index\]\] #1 url 'wheels/': not an index URL"):
        config_indexes(tmp_path / "a" / "b", env)
    (tmp_path / "a" / "b" / "uv.toml").write_text("[[index]\n")
    with pytest.raises(UsageError, match=r"uv.toml: not valid TOML"):
        config_indexes(tmp_path / "a" / "b", env)


def test_a_bad_uv_configuration_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "uv.toml").write_text('[[index]]\nurl = "./wheels"\nformat = "flat"\n')
    res = sleuth("bisect", "pypi", "tinypkg", "--output", "o", *TEST, cwd=tmp_path, env=_isolated(tmp_path))
    assert res.returncode == 2, res.stderr
    assert f"{tmp_path / 'uv.toml'}: [[index]] #1 url './wheels': format 'flat'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


def test_an_unreachable_extra_index_stops_at_the_start_as_uv_would_at_every_install(tmp_path: Path) -> None:
    from sleuth.environments.venv import uv_bin

    secret = "Unreach4blePass"
    dead = f"http://bob:{secret}@127.0.0.1:1/simple"  # nothing listens on port 1
    env = {**_isolated(tmp_path), "UV_HTTP_RETRIES": "0"}
    with _served(build_index(tmp_path / "main", MAIN)) as main:
        # uv itself: the extra index is asked first, and its failure is the install's
        subprocess.run([uv_bin(), "venv", "-q", str(tmp_path / "v")], check=True, capture_output=True)
        uv = subprocess.run([uv_bin(), "pip", "install", "--python", str(tmp_path / "v" / "bin" / "python"), "tinypkg==1.0"],
                            env={**env, "PATH": "/usr/bin:/bin", "UV_CACHE_DIR": str(tmp_path / "uvc"),
                                 "UV_INDEX": dead, "UV_DEFAULT_INDEX": main},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
        assert uv.returncode != 0 and "127.0.0.1:1" in uv.stderr, uv.stderr
        res = sleuth("bisect", "pypi", "tinypkg", "--index-url", main, "--extra-index-url", dead, "--output", "o",
                     *TEST, cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == 4, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: extra index http://127.0.0.1:1/simple/tinypkg/: the package index is unreachable"
    ), last
    assert "uv asks it before the default index for every package, so no release would install either" in last
    assert "leave it out of --extra-index-url" in res.stderr
    assert_no_secret(secret, res.stdout, res.stderr)
    assert not (tmp_path / "o").exists()


def test_pypi_given_over_a_default_in_uvs_configuration_reaches_uv() -> None:
    from sleuth.bisect.candidates import source_from_config
    from sleuth.bisect.index import PYPI
    from sleuth.bisect.packaged import PypiSource

    # `--index-url https://pypi.org/simple` where uv.toml sets `index-url = <mirror>`: PyPI is listed, so
    # uv must be told PyPI too (before, the venvs got no index and uv installed from the mirror)
    src = PypiSource("tinypkg", index_url=PYPI, pypi_over_config=True)
    assert src._venv("1.0").index_url == PYPI
    assert source_from_config(src.config())._venv("1.0").index_url == PYPI  # a resume too
    assert PypiSource("tinypkg", index_url=PYPI)._venv("1.0").index_url is None  # uv's own default: PyPI


def test_the_flags_and_variables_come_first_then_the_files_which_uv_always_asks(tmp_path: Path) -> None:
    from sleuth.bisect.index import PYPI
    from sleuth.bisect.uvconfig import pypi_indexes

    (tmp_path / "uv.toml").write_text('index-url = "https://mirror.example/simple"\n'
                                      '[[index]]\nurl = "https://b.example/simple"\n')  # fmt: skip
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    got = pypi_indexes(None, (), tmp_path, {**env, "UV_INDEX": "https://a.example/simple"})
    assert (got.index, got.extras, got.fixed) == (
        "https://mirror.example/simple",
        ("https://a.example/simple", "https://b.example/simple"),
        (1,),
    )
    assert got.origins == {
        "https://a.example/simple": "$UV_INDEX",
        "https://b.example/simple": str(tmp_path / "uv.toml"),
    }
    assert len(got.notes) == 2 and not got.pypi_over_config
    # an index given by flag that a file adds too is still asked by uv whatever it is given
    both = pypi_indexes(PYPI, ("https://b.example/simple",), tmp_path, env)
    assert (both.index, both.extras, both.fixed, both.pypi_over_config) == (
        PYPI,
        ("https://b.example/simple",),
        (0,),
        True,
    )


@pytest.mark.parametrize("where", ["UV_INDEX_STRATEGY", "uv.toml"])
def test_an_unsafe_index_strategy_lists_the_releases_of_every_index_as_uv_installs_them(
    tmp_path: Path, where: str
) -> None:
    """uv.toml adds an index that has the package: under uv's default strategy it hides the default
    index, but an ``unsafe-*`` strategy installs the default's 1.0 too, which was not a candidate
    (every build there is broken: the search found no answer)."""
    broken = {v: {"body": "BROKEN = 1\n"} for v in OTHER}
    with (
        _served(build_index(tmp_path / "main", MAIN)) as main,
        _served(build_index(tmp_path / "x", broken)) as x,
    ):
        env = _isolated(tmp_path)
        table = f'[[index]]\nurl = "{x}"\n'
        if where == "UV_INDEX_STRATEGY":
            env["UV_INDEX_STRATEGY"] = "unsafe-first-match"
        else:
            table = 'index-strategy = "unsafe-best-match"\n' + table
        (tmp_path / "uv.toml").write_text(table)
        res = sleuth("bisect", "pypi", "tinypkg", "--index-url", main, "--flaky", "off", "--json", "--output", "o",
                     *TEST, cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "uv looks for a release on every index; all are listed" in res.stderr, res.stderr
    events = _events(tmp_path / "o")
    assert next(e["labels"] for e in events if e["event"] == "candidates") == [
        "1.0",
        "1.1+x1",
        "1.2+x1",
        "1.3+x1",
    ]
    d = doc(res)
    assert (d["last_good"]["label"], d["first_bad"]["label"]) == ("1.0", "1.1+x1"), d
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    for ev in (e for e in events if e["event"] == "test"):  # each venv holds the candidate it tests
        held = (run / str(ev["trial_dir"])).parent / "packages.txt"
        assert f"tinypkg=={ev['label']}\n" in held.read_text(), ev


def test_an_index_strategy_uv_does_not_know_is_one_line_naming_where_it_was_set(tmp_path: Path) -> None:
    from sleuth.bisect.uvconfig import pypi_indexes

    env = {**_isolated(tmp_path), "UV_INDEX_STRATEGY": "best-match"}
    res = sleuth("bisect", "pypi", "tinypkg", "--output", "o", *TEST, cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "$UV_INDEX_STRATEGY 'best-match': not an index strategy uv knows" in res.stderr, res.stderr
    assert (
        "first-index, unsafe-first-match, unsafe-best-match" in res.stderr and not (tmp_path / "o").exists()
    )
    (tmp_path / "uv.toml").write_text('[pip]\nindex-strategy = "first"\n')
    res = sleuth("bisect", "pypi", "tinypkg", "--output", "o", *TEST, cwd=tmp_path, env=_isolated(tmp_path))
    assert res.returncode == 2, res.stderr
    assert f"{tmp_path / 'uv.toml'}: pip.index-strategy 'first': not an index strategy" in res.stderr, (
        res.stderr
    )
    # the variable wins over the files, the nearest file over the user's; the default lists as before
    (tmp_path / "uv.toml").write_text('index-strategy = "unsafe-best-match"\n')
    base = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_DIRS": str(tmp_path / "none")}
    assert pypi_indexes(None, (), tmp_path, base).strategy == "unsafe-best-match"
    assert (
        pypi_indexes(None, (), tmp_path, {**base, "UV_INDEX_STRATEGY": "first-index"}).strategy
        == "first-index"
    )
    assert pypi_indexes(None, (), tmp_path, {**base, "UV_NO_CONFIG": "1"}).strategy == "first-index"
