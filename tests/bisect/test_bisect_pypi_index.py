"""``bisect pypi`` against the index the user configured: a local index served by a thread, no network.

Tiny wheels are built here; the index is served as PEP 503 HTML, as PEP 691 JSON, or read from
``file://``.  uv installs from it, so the venvs are real.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sleuth.bisect.index import PYPI, index_from_env, list_releases
from sleuth.errors import UsageError
from tests.bisect.test_bisect_cli import doc, sleuth


def wheel(root: Path, name: str, version: str, *, body: str = "", requires: str = "") -> Path:
    """A valid pure-Python wheel of ``name`` ``version`` whose module sets ``VERSION`` (plus ``body``)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n{body}",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + (f"Requires-Dist: {requires}\n" if requires else ""),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: sleuth-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    out = root / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


def build_index(root: Path, versions: dict[str, dict[str, Any]], name: str = "tinypkg") -> Path:
    """``root/simple/<name>/index.html`` (PEP 503) and ``index.json`` (PEP 691); wheels in ``root/files``."""
    from html import escape

    (root / "files").mkdir(parents=True, exist_ok=True)  # several packages may share one index
    page = root / "simple" / name
    page.mkdir(parents=True)
    links, files = [], []
    for v, opts in versions.items():
        w = wheel(root / "files", name, v, body=opts.get("body", ""), requires=opts.get("requires", ""))
        rp, yanked = opts.get("requires_python"), bool(opts.get("yanked"))
        attrs = (f' data-requires-python="{escape(rp)}"' if rp else "") + (
            ' data-yanked=""' if yanked else ""
        )
        links.append(f'<a href="../../files/{w.name}"{attrs}>{w.name}</a><br/>')
        files.append({"filename": w.name, "url": f"../../files/{w.name}", "hashes": {}, "requires-python": rp,
                      "yanked": yanked})  # fmt: skip
    (page / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
    )
    (page / "index.json").write_text(
        json.dumps({"meta": {"api-version": "1.0"}, "name": name, "files": files})
    )
    return root


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the directory; a project page as PEP 691 JSON when asked for it and ``json_api`` is on;
    a file only once ``gate`` is set, when there is one (a uv caught in the middle of an install)."""

    json_api = False
    gate: threading.Event | None = None

    def do_GET(self) -> None:  # http.server's name
        if self.gate is not None and "/files/" in self.path:
            self.gate.wait(120)
        parts = self.path.strip("/").split("/")
        wants_json = "vnd.pypi.simple.v1+json" in self.headers.get("Accept", "")
        if self.json_api and wants_json and len(parts) == 2 and parts[0] == "simple":
            page = Path(self.directory, "simple", parts[1], "index.json")
            if page.is_file():
                body = page.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []
    gates: list[threading.Event] = []

    def start(root: Path, json_api: bool = False, gate: threading.Event | None = None) -> str:
        handler = type("H", (_Handler,), {"json_api": json_api, "gate": gate})
        gates.extend([gate] if gate is not None else [])

        def make(*a: Any, **k: Any) -> Any:
            return handler(*a, directory=str(root), **k)

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/simple"

    yield start
    for gate in gates:  # a request held at its gate would keep the server from closing
        gate.set()
    for srv in servers:
        srv.shutdown()
        srv.server_close()


VERSIONS: dict[str, dict[str, Any]] = {
    "0.9": {"requires_python": "<3"},  # not for this Python
    "1.0": {},
    "1.1": {"yanked": True},
    "1.2": {},
    "1.3": {"body": "BROKEN = True\n"},
    "1.4": {"body": "BROKEN = True\n"},
    "2.0rc1": {"body": "BROKEN = True\n"},
}


@pytest.mark.parametrize("how", ["html", "json", "file"])
def test_listing_reads_each_kind_of_index(tmp_path: Path, serve: Any, how: str) -> None:
    root = build_index(tmp_path / "idx", VERSIONS)
    url = (root / "simple").as_uri() if how == "file" else serve(root, json_api=how == "json")
    got = list_releases(url, "TinyPkg")  # names are normalized
    assert set(got) == set(VERSIONS)
    assert got["0.9"][0]["requires_python"] == "<3"
    assert got["1.1"][0]["yanked"] and not got["1.0"][0]["yanked"]
    assert all(f["packagetype"] == "bdist_wheel" for fs in got.values() for f in fs)
    with pytest.raises(UsageError, match="no such package"):
        list_releases(url, "nothere")


def test_the_index_comes_from_the_flag_then_uv_then_pip(tmp_path: Path) -> None:
    env = {"PIP_INDEX_URL": "https://pip.example/simple", "UV_INDEX_URL": "https://uv.example/simple/"}
    assert index_from_env(None, {}) == (PYPI, "default")
    assert index_from_env(None, {"PIP_INDEX_URL": env["PIP_INDEX_URL"]})[0] == "https://pip.example/simple"
    assert index_from_env(None, env) == ("https://uv.example/simple", "$UV_INDEX_URL")
    both = {**env, "UV_DEFAULT_INDEX": "https://default.example/simple"}
    assert index_from_env(None, both)[1] == "$UV_DEFAULT_INDEX"
    assert index_from_env("https://flag.example/simple", both)[1] == "--index-url"
    with pytest.raises(UsageError, match=r"\$PIP_INDEX_URL"):
        index_from_env(None, {"PIP_INDEX_URL": "not a url"})


TEST = ["--", "python", "-c", "import sys, tinypkg; sys.exit(1 if getattr(tinypkg, 'BROKEN', 0) else 0)"]


def test_bisect_over_a_local_index_given_by_flag_or_environment(tmp_path: Path, serve: Any) -> None:
    url = serve(build_index(tmp_path / "idx", VERSIONS))
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--flaky", "off", "--json", "--output", "o",
                 *TEST, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("1.3", "1.2")
    journal = Path(d["run_dir"], "journal.jsonl").read_text().splitlines()
    labels = next(json.loads(x)["labels"] for x in journal if '"candidates"' in x)
    # 0.9 needs Python 2 (not the default good end), 1.1 is yanked, 2.0rc1 is a pre-release
    assert labels == ["1.0", "1.2", "1.3", "1.4"]
    # the same through $PIP_INDEX_URL, as pip users configure it
    res = sleuth("bisect", "pypi", "tinypkg", "--flaky", "off", "--json", "--output", "o", *TEST, cwd=tmp_path,
                 env={"PIP_INDEX_URL": url, "UV_INDEX_URL": "", "UV_DEFAULT_INDEX": ""})  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert doc(res)["first_bad"]["label"] == "1.3"


def test_a_default_good_end_that_does_not_install_steps_to_the_next(tmp_path: Path, serve: Any) -> None:
    versions = {
        "1.0": {"requires": "no-such-dependency-anywhere>=1"},  # resolves nowhere: uv fails
        "1.1": {},
        "1.2": {},
        "1.3": {"body": "BROKEN = True\n"},
    }
    url = serve(build_index(tmp_path / "idx", versions))
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--flaky", "off", "--output", "o", *TEST,
                 cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "note: 1.0 does not install, the older end moves on" in res.stderr
    assert "first bad 1.3  (last good 1.2)" in res.stdout
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    events = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines()]
    (step,) = [e for e in events if e["event"] == "default end"]
    assert [s["version"] for s in step["stepped"]] == ["1.0"] and step["used"] == "1.1"
    # a --good given by the user is never moved (no "default end" step); the search still answers,
    # since 1.2 passes and 1.3 fails without the good end itself having to install
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--good", "1.0", "--flaky", "off",
                 "--json", "--output", "o2", *TEST, cwd=tmp_path)  # fmt: skip
    (run2,) = (tmp_path / "o2").glob("bisect/pypi/*")
    assert not [x for x in (run2 / "journal.jsonl").read_text().splitlines() if '"default end"' in x]
    d = doc(res)
    assert d["first_bad"]["label"] == "1.3" and d["last_good"]["label"] == "1.2", d


def test_index_credentials_stay_out_of_the_run_dir(tmp_path: Path, serve: Any) -> None:
    from tests.badinput import assert_no_secret

    url = serve(build_index(tmp_path / "idx", VERSIONS))
    secret = "IndexPassw0rdPlanted"
    with_cred = url.replace("http://", f"http://alice:{secret}@")
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", with_cred, "--good", "1.2", "--bad", "1.4",
                 "--flaky", "off", "--json", "--output", "o", *TEST, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert doc(res)["first_bad"]["label"] == "1.3"
    assert_no_secret(secret, res.stdout, res.stderr, roots=[tmp_path / "o"])
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    assert secret in (run / "secrets.json").read_text()


def test_an_end_named_by_the_user_is_a_candidate_even_a_pre_release_a_yanked_or_a_local_one(
    tmp_path: Path,
) -> None:
    from sleuth.bisect.packaged import PypiSource

    url = (build_index(tmp_path / "idx", VERSIONS) / "simple").as_uri()
    # "passed with 2.0rc1" without --pre; the pre-releases between the ends stay out
    assert PypiSource("tinypkg", good="1.2", bad="2.0rc1", index_url=url).resolve() == [
        "1.2",
        "1.3",
        "1.4",
        "2.0rc1",
    ]
    # a yanked release installs when pinned with ==: it may be what the user ran
    assert PypiSource("tinypkg", good="1.1", bad="1.3", index_url=url).resolve() == ["1.1", "1.2", "1.3"]
    local = build_index(tmp_path / "torch", {"2.2.0+cu121": {}, "2.3.0+cu121": {}, "2.4.0+cu121": {}})
    # torch's own index: every release has a local label; --good 2.2.0 means 2.2.0+cu121
    src = PypiSource("tinypkg", good="2.2.0", bad="2.4.0", index_url=(local / "simple").as_uri())
    assert src.resolve() == ["2.2.0+cu121", "2.3.0+cu121", "2.4.0+cu121"]
    with pytest.raises(UsageError, match="no such release") as err:
        PypiSource("tinypkg", good="1.5", index_url=url).resolve()
    assert err.value.hint == "the releases around it: 1.3, 1.4"  # a typo is seen at once


def test_the_answer_says_which_other_packages_differ_between_its_two_venvs(
    tmp_path: Path, serve: Any
) -> None:
    root = build_index(tmp_path / "idx", {"1.0": {}, "2.0": {}}, name="helperpkg")
    build_index(root, {"1.0": {"requires": "helperpkg<2"}, "1.1": {"requires": "helperpkg<2"},
                       "1.2": {"requires": "helperpkg>=2", "body": "BROKEN = True\n"}})  # fmt: skip
    url = serve(root)
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--flaky", "off", "--output", "o", *TEST,
                 cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "first bad 1.2  (last good 1.1)" in res.stdout
    assert "also changed between them: helperpkg 1.0 -> 2.0" in res.stdout
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["packages_changed"] == [{"name": "helperpkg", "last_good": "1.0", "first_bad": "2.0"}]
    assert "| helperpkg | 1.0 | 2.0 |" in (run / "report.md").read_text()
    assert "tinypkg==1.1" in (run / "last-good" / "packages.txt").read_text()


def test_a_package_with_extras_bisects_the_distribution_and_installs_the_extras(
    tmp_path: Path, serve: Any
) -> None:
    root = build_index(tmp_path / "idx", {"1.0": {}}, name="helperpkg")
    extra = 'helperpkg; extra == "fast"\nProvides-Extra: fast'
    build_index(root, {"1.0": {"requires": extra}, "1.1": {"requires": extra},
                       "1.2": {"requires": extra, "body": "BROKEN = True\n"}})  # fmt: skip
    # the extra's dependency must be there (the test imports it); the name as the user spells it
    res = sleuth("bisect", "pypi", "TinyPkg[fast]", "--index-url", serve(root), "--flaky", "off", "--json",
                 "--output", "o", "--", "python", "-c", "import helperpkg; " + TEST[-1], cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("1.2", "1.1")
    assert "helperpkg==1.0" in Path(d["run_dir"], "first-bad", "packages.txt").read_text()


def test_uv_offline_with_nothing_cached_is_one_line_not_every_release_skipped(
    tmp_path: Path, serve: Any
) -> None:
    url = serve(build_index(tmp_path / "idx", VERSIONS))
    env = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-uv-cache")}
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--flaky", "off", "--output", "o", *TEST,
                 cwd=tmp_path, env=env)  # fmt: skip
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "$UV_OFFLINE is set and uv's cache does not hold it; unset UV_OFFLINE" in line, line
    assert not (tmp_path / "o").exists()


def _uv_installs(venvs: Path) -> list[int]:
    """The pids of the `uv pip install` processes writing a venv under ``venvs``."""
    import os

    pids = []
    for p in Path("/proc").iterdir():
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"install" in argv and any(str(venvs).encode() in a for a in argv):
            pids.append(int(p.name))
    return [pid for pid in pids if pid != os.getpid()]


def test_a_uv_left_running_by_a_killed_sleuth_keeps_its_venv_locked(tmp_path: Path, serve: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    gate = threading.Event()  # the wheels are served once it is set: the first uv is caught mid-install
    url = serve(build_index(tmp_path / "idx", VERSIONS), gate=gate)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    venvs = tmp_path / "cache" / "venvs"
    run = [sys.executable, "-m", "sleuth", "bisect"]
    first = subprocess.Popen([*run, "pypi", "tinypkg", "--index-url", url, "--good", "1.2", "--bad", "1.4",
                              "--flaky", "off", "--output", "o", *TEST], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    orphans: list[int] = []
    resume: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while not (orphans := _uv_installs(venvs)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert orphans, "uv never started"
        first.kill()  # kill -9: the uv it started goes on alone
        first.wait()
        (rd,) = (tmp_path / "o").glob("bisect/pypi/*")
        resume = subprocess.Popen([*run, "resume", str(rd)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert resume.stderr is not None
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(resume.stderr or ()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("waiting for its build" in x for x in said) and time.monotonic() < deadline:
            assert len(_uv_installs(venvs)) == 1, "a second uv writes the venv the first is still writing"
            time.sleep(0.1)
        assert any("waiting for its build by another process" in x for x in said), said
        gate.set()
        assert resume.wait(timeout=120) == 0, said
        assert resume.stdout is not None and "first bad 1.3  (last good 1.2)" in resume.stdout.read()
    finally:
        gate.set()
        if resume is not None and resume.poll() is None:
            resume.kill()
        for pid in orphans + _uv_installs(venvs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if resume is not None:
            resume.wait()
            reader.join(timeout=60)  # it ends at the pipe's end of file: then the pipes can close
            for pipe in (resume.stdout, resume.stderr):
                if pipe is not None:
                    pipe.close()


def test_a_uv_killed_by_a_signal_is_an_error_not_a_release_that_does_not_install(
    tmp_path: Path, serve: Any
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    gate = threading.Event()
    url = serve(build_index(tmp_path / "idx", VERSIONS), gate=gate)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    venvs = tmp_path / "cache" / "venvs"
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "pypi", "tinypkg", "--index-url", url,
                             "--good", "1.2", "--bad", "1.4", "--flaky", "off", "--json", "--output", "o", *TEST],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (uv := _uv_installs(venvs)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert uv, "uv never started"
        os.kill(uv[0], signal.SIGKILL)  # as the OOM killer does
        gate.set()
        proc.communicate(timeout=120)
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    trials = [json.loads(x) for x in (run / "journal.jsonl").read_text().splitlines() if '"trial"' in x]
    killed = trials[0]  # the first probe, 1.3, whose uv was killed
    assert killed["subdir"] == "candidates/0001-1.3" and killed["trial"]["outcome"] == "error", killed
    assert "uv pip install was killed by signal 9" in killed["trial"]["error"], killed


def test_a_constraint_file_holds_the_other_packages_where_the_users_environment_had_them(
    tmp_path: Path, serve: Any
) -> None:
    root = build_index(tmp_path / "idx", {"1.0": {}, "2.0": {}}, name="helperpkg")
    build_index(root, {"1.0": {"requires": "helperpkg"}, "1.1": {"requires": "helperpkg"},
                       "1.2": {"requires": "helperpkg", "body": "BROKEN = True\n"}})  # fmt: skip
    # helperpkg 2.0 breaks every release: unconstrained, each venv takes it and nothing passes
    test = ["--", "python", "-c", "import sys, helperpkg, tinypkg; "
            "sys.exit(1 if helperpkg.VERSION == '2.0' or getattr(tinypkg, 'BROKEN', 0) else 0)"]  # fmt: skip
    (tmp_path / "froze.txt").write_text("# pip freeze of the environment that worked\nhelperpkg==1.0\n"
                                        "TinyPkg==1.0  # the package bisected: left out\n\n")  # fmt: skip
    args = [
        "bisect",
        "pypi",
        "tinypkg",
        "--index-url",
        serve(root),
        "--flaky",
        "off",
        "--json",
        "--output",
        "o",
    ]
    res = sleuth(*args, "--constraint", "froze.txt", *test, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = doc(res)
    assert (d["first_bad"]["label"], d["last_good"]["label"]) == ("1.2", "1.1")
    assert "note: --constraint froze.txt: left out TinyPkg==1.0 (the package bisected)" in res.stderr
    assert "helperpkg==1.0" in Path(d["run_dir"], "first-bad", "packages.txt").read_text()
    # the constraints are journaled with the source: a resume rebuilds it without the file
    from sleuth.bisect.candidates import source_from_config

    cfg = next(json.loads(x)["source"] for x in Path(d["run_dir"], "journal.jsonl").read_text().splitlines()
               if '"candidates"' in x)  # fmt: skip
    assert cfg["constraints"] == ["helperpkg==1.0"], cfg
    assert source_from_config(cfg).constraints == ("helperpkg==1.0",)  # type: ignore[union-attr]
    (tmp_path / "bad.txt").write_text("helperpkg==1.0\n-e ./src\n")
    res = sleuth(*args, "--constraint", "bad.txt", *test, cwd=tmp_path)
    assert res.returncode == 2 and "--constraint bad.txt:2: '-e ./src' is not a requirement" in res.stderr


def test_release_notes_point_at_the_changelog_else_the_github_releases_and_only_on_pypi() -> None:
    from sleuth.bisect.index import release_notes

    urls = {"Documentation": "https://x.org/", "Changelog": "https://x.org/changes.html",
            "Source": "https://github.com/org/x"}  # fmt: skip
    assert release_notes(urls, "Foo_Bar", "1.3", PYPI) == [
        "https://pypi.org/project/foo-bar/1.3/",
        "https://x.org/changes.html",
    ]
    hub = {"Homepage": "https://github.com/huggingface/transformers.git"}  # transformers names no changelog
    assert (
        release_notes(hub, "transformers", "4.41.0", PYPI)[1]
        == "https://github.com/huggingface/transformers/releases"
    )
    assert release_notes({}, "x", "1.0", PYPI) == ["https://pypi.org/project/x/1.0/"]
    assert release_notes(urls, "x", "1.0", "https://mirror.example/simple") == []  # another index: no links


def test_an_answer_from_another_index_has_no_release_notes(tmp_path: Path, serve: Any) -> None:
    url = serve(build_index(tmp_path / "idx", VERSIONS))
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", url, "--good", "1.2", "--bad", "1.4", "--flaky", "off",
                 "--json", "--output", "o", *TEST, cwd=tmp_path)  # fmt: skip
    assert doc(res)["release_notes"] == []


def test_index_credentials_stay_out_of_uvs_argv(tmp_path: Path, serve: Any) -> None:
    import os
    import subprocess
    import sys
    import time

    gate = threading.Event()  # uv waits for the wheel: its argv can be read meanwhile
    secret = "ArgvPassw0rdPlanted"
    url = serve(build_index(tmp_path / "idx", VERSIONS), gate=gate).replace("http://", f"http://al:{secret}@")
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "pypi", "tinypkg", "--index-url", url,
                             "--good", "1.2", "--bad", "1.4", "--flaky", "off", "--output", "o", *TEST],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (uv := _uv_installs(tmp_path / "cache" / "venvs")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert uv, "uv never started"
        # any user on the machine may read a process's argv (ps, /proc/PID/cmdline)
        assert secret.encode() not in Path(f"/proc/{uv[0]}/cmdline").read_bytes()
        gate.set()
        assert proc.wait(timeout=120) == 0
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()


def test_an_index_that_cannot_be_reached_is_an_error_not_releases_that_do_not_install(
    tmp_path: Path, serve: Any
) -> None:
    root = build_index(tmp_path / "idx", VERSIONS)
    page = root / "simple" / "tinypkg" / "index.html"  # the files are on a host that refuses connections
    page.write_text(page.read_text().replace('href="../../files/', 'href="http://127.0.0.1:1/files/'))
    res = sleuth("bisect", "pypi", "tinypkg", "--index-url", serve(root), "--good", "1.2", "--bad", "1.4",
                 "--flaky", "off", "--output", "o", *TEST, cwd=tmp_path,
                 env={"UV_CACHE_DIR": str(tmp_path / "uv"), "UV_HTTP_RETRIES": "0"})  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert "uv could not reach the index" in res.stderr.strip().splitlines()[-1]
    assert "does not install" not in res.stderr


def test_ctrl_c_during_uv_pip_install_ends_cleanly_and_resumes(tmp_path: Path, serve: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    gate = threading.Event()
    url = serve(build_index(tmp_path / "idx", VERSIONS), gate=gate)
    env = {**os.environ, "SLEUTH_CACHE": str(tmp_path / "cache"), "UV_CACHE_DIR": str(tmp_path / "uv")}
    venvs = tmp_path / "cache" / "venvs"
    proc = subprocess.Popen([sys.executable, "-m", "sleuth", "bisect", "pypi", "tinypkg", "--index-url", url,
                             "--good", "1.2", "--bad", "1.4", "--flaky", "off", "--output", "o", *TEST],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _uv_installs(venvs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _uv_installs(venvs), "uv never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted; resume with: sleuth bisect resume")
    assert not _uv_installs(venvs)  # the install was stopped with sleuth
    (run,) = (tmp_path / "o").glob("bisect/pypi/*")
    events = [json.loads(x)["event"] for x in (run / "journal.jsonl").read_text().splitlines()]
    assert events[-1] == "interrupted" and "trial" not in events  # nothing half-done was recorded
    assert not list(venvs.glob("*/.sleuth-venv.json"))  # no venv counts as built
    res = sleuth(
        "bisect", "resume", str(run), "--json", cwd=tmp_path, env={"UV_CACHE_DIR": str(tmp_path / "uv")}
    )
    assert res.returncode == 0, res.stderr
    assert doc(res)["first_bad"]["label"] == "1.3"


def test_a_constraint_file_that_is_a_fifo_or_too_large_is_one_line(tmp_path: Path) -> None:
    """``--constraint`` read its file without looking at its kind: a FIFO (``<(pip freeze)`` handed
    over after its writer left) was read for ever."""
    from sleuth.bisect.pypifiles import CONSTRAINTS_MAX_BYTES, read_constraints

    fifo = tmp_path / "freeze"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"--constraint .*freeze: not a regular file \(a FIFO\)"):
        read_constraints(fifo, "tinypkg")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x==1\n" * (CONSTRAINTS_MAX_BYTES // 5 + 1))
    with pytest.raises(UsageError, match="larger than 1 MiB"):
        read_constraints(big, "tinypkg")


def test_a_release_that_does_not_install_keeps_no_part_of_a_token_in_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's error quoted in a skipped release's reason is hidden before it is cut to 200 characters:
    cut first, an index URL's password crossing the cut kept its start (``https://bob:s3cr``), which
    no rule recognises without the ``@``."""
    from sleuth.bisect.candidates import Candidate
    from sleuth.bisect.packaged import PypiSource
    from sleuth.errors import EnvironmentBuildError
    from sleuth.model import TrialSpec

    token = "s3cretPassw0rdOfTheIndex"  # an index URL's password, hidden by the rule only with its "@"

    class Broken:
        def prepare(self) -> None:
            raise EnvironmentBuildError("x" * 170 + f" https://bob:{token}@pkgs.example/simple unreachable")

    src = PypiSource("tinypkg", good="1.0", bad="2.0")
    monkeypatch.setattr(PypiSource, "_venv", lambda self, version: Broken())
    got = src.prepare(Candidate(1, "1.5"), TrialSpec(argv=("true",)), tmp_path / "c")
    assert got.spec is None and got.skip_reason.startswith("does not install: ")
    for i in range(len(token) - 7):
        assert token[i : i + 8] not in got.skip_reason, token[i : i + 8]
    assert token not in (tmp_path / "c" / "build.log").read_text()
