"""Secrets that reach ``sleuth run`` by the other paths: the workload's own output, and ``--with``.

* A token, a URL with credentials or the value of a secret variable of its environment (inherited
  or ``--env``) that the workload prints stays in its log files (they are its own output, kept as
  written); every copy sleuth makes of it (tails in ``result.json``, the journal,
  ``summary.json``, ``report.md``, a ``--fail-regex`` line, ``--json``, the terminal) hides it, whether
  or not the run had a secret of its own.
* A venv requirement with credentials (a private index's wheel URL) is hidden everywhere, also in
  sleuth's one-line errors, and a resumed run installs from the real URL (``secrets.json`` keeps it);
  it reaches uv in a 0600 requirements file, never on uv's command line (which ``ps`` shows anyone).
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.badinput import assert_no_secret

PY = sys.executable
GH = "ghp_" + "Xy7" * 12
URL_PASSWORD = "pr1vateIndexPw"
PRINTS = (
    "import sys; "
    f"print('loading with token={GH}'); "
    f"print('mirror https://bob:{URL_PASSWORD}@mirror.example.com/simple', file=sys.stderr); "
    f"print('RuntimeError: bad token {GH}', file=sys.stderr); sys.exit(1)"
)


def _copies(run_dir: Path) -> list[Path]:
    """Every file of a run dir but the workload's own logs and secrets.json."""
    return [
        p
        for p in run_dir.rglob("*")
        if p.is_file() and p.name not in ("stdout", "stderr", "secrets.json") and p.name != ".lock"
    ]


@pytest.mark.parametrize("extra", [[], ["--env", "HF_TOKEN=hf_" + "Qw2" * 12]], ids=["no-secret", "a-secret"])
def test_what_the_workload_prints_is_hidden_in_every_copy(sleuth, extra: list[str]) -> None:
    res = sleuth("run", "-n", "2", "--json", "--fail-regex", "token", *extra, "--", PY, "-c", PRINTS)
    assert res.rc == 1, res.stdout + res.stderr
    rd = Path(res.json()["run_dir"])
    # the logs are the workload's: kept as it wrote them
    assert GH in (rd / "trials" / "0001" / "stdout").read_text()
    assert URL_PASSWORD in (rd / "trials" / "0001" / "stderr").read_text()
    copies = _copies(rd)
    assert {p.name for p in copies} >= {"journal.jsonl", "summary.json", "report.md", "result.json"}
    human = sleuth("run", "-n", "1", *extra, "--", PY, "-c", PRINTS)
    assert human.rc == 1 and "<redacted>" in human.stdout + human.stderr
    for secret in (GH, URL_PASSWORD):
        assert_no_secret(secret, res.stdout, res.stderr, human.stdout, human.stderr)
        for p in copies:
            assert secret.encode() not in p.read_bytes(), f"{secret} in {p}"
    first = res.json()["trials"][0]
    assert "<redacted>" in first["signature"]  # the --fail-regex line, hidden
    # what is left of the output still names the failure
    plain = sleuth("run", "-n", "1", "--json", *extra, "--", PY, "-c", PRINTS)
    assert "RuntimeError: bad token <redacted>" in plain.json()["trials"][0]["signature"]


def test_a_secret_variable_of_the_inherited_environment_that_the_workload_prints_is_hidden(sleuth) -> None:
    value = "plainDbPassword9"  # not token-shaped: only its variable's name says it is secret
    dump = "import os, sys; print('RuntimeError: login failed, DB_PASSWORD=' + os.environ['DB_PASSWORD'], file=sys.stderr); sys.exit(3)"
    res = sleuth("run", "-n", "1", "--json", "--", PY, "-c", dump, env={"DB_PASSWORD": value})
    assert res.rc == 1, res.stderr
    rd = Path(res.json()["run_dir"])
    assert value in (rd / "trials" / "0001" / "stderr").read_text()
    assert "DB_PASSWORD=<redacted>" in (rd / "trials" / "0001" / "result.json").read_text()
    assert value not in res.stdout + res.stderr
    for p in _copies(rd):
        assert value.encode() not in p.read_bytes(), f"secret in {p}"


def _wheel(path: Path, name: str = "tinypkg") -> Path:
    """A minimal pure-Python wheel, ``NAME 1.0``."""
    whl = path / f"{name}-1.0-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{f},,\n" for f in files) + f"{name}-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(whl, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
        z.writestr(f"{name}-1.0.dist-info/RECORD", record)
    return whl


def _uv_installs(under: Path) -> list[tuple[bytes, int | None]]:
    """``(cmdline, mode of its --requirements file)`` of every live ``uv pip install`` whose
    arguments name a path ``under``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:  # gone, or another user's
            continue
        args = argv.split(b"\0")
        uv = Path(args[0].decode(errors="replace")).name == "uv"
        if uv and b"install" in args and str(under).encode() in argv:
            at = args.index(b"--requirements") + 1 if b"--requirements" in args else None
            mode = Path(args[at].decode()).stat().st_mode & 0o777 if at else None
            found.append((argv, mode))
    return found


@pytest.fixture
def uv_seen() -> list[tuple[bytes, int | None]]:
    """What :func:`private_index` saw of the ``uv pip install`` processes that asked it for the wheel."""
    return []


@pytest.fixture
def index_password() -> str:
    """The password :func:`private_index` asks for (a test may parametrize another)."""
    return URL_PASSWORD


@pytest.fixture
def private_index(
    tmp_path: Path, uv_seen: list[tuple[bytes, int | None]], index_password: str
) -> Iterator[str]:
    """A wheel URL that answers only with the right credentials (401 otherwise); each request
    records the ``uv pip install`` waiting for the answer in ``uv_seen``."""
    whl = _wheel(tmp_path)
    want = "Basic " + base64.b64encode(f"alice:{index_password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            uv_seen.extend(_uv_installs(tmp_path))  # uv waits for this answer: it is alive now
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.end_headers()
                return
            data = whl.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://alice:{index_password}@127.0.0.1:{server.server_address[1]}/{whl.name}"
    finally:
        server.shutdown()
        server.server_close()


def test_with_credentials_are_hidden_and_a_resume_installs_from_the_real_url(
    sleuth, private_index: str, tmp_path: Path
) -> None:
    pin = f"tinypkg @ {private_index}"
    check = "import tinypkg; assert tinypkg.VALUE == 42"
    res = sleuth(
        "run", "-n", "1", "--json", "--environment", "venv", "--with", pin, "--", "python", "-c", check
    )
    assert res.rc == 0, res.stdout + res.stderr
    rd = Path(res.json()["run_dir"])
    start = json.loads((rd / "journal.jsonl").read_text().splitlines()[0])["config"]
    assert start["environment"]["pins"] == [pin.replace(f"alice:{URL_PASSWORD}", "<redacted>")]
    assert json.loads((rd / "secrets.json").read_text())["pins[0]"] == pin
    # killed before its trial, with a fresh venv cache: the resume must install from the real URL
    (rd / "journal.jsonl").write_text(json.dumps({"event": "start", "t": 1.0, "config": start}) + "\n")
    shutil.rmtree(rd / "trials")
    (rd / "summary.json").unlink()
    again = sleuth("run", "--resume", rd, "--json", env={"SLEUTH_CACHE": str(tmp_path / "fresh-cache")})
    assert again.rc == 0, again.stdout + again.stderr
    assert again.json()["summary"]["pass"] == 1
    # a requirement that cannot install: the one-line error hides the credentials it quotes
    broken = pin.replace("tinypkg-1.0", "tinypkg-9.9")
    bad = sleuth("run", "--environment", "venv", "--with", broken, "--", "python", "-c", "pass")
    assert bad.rc == 4 and bad.stderr.startswith("error: ") and "<redacted>" in bad.stderr
    assert_no_secret(
        URL_PASSWORD, res.stdout, res.stderr, again.stdout, again.stderr, bad.stdout, bad.stderr,
        roots=[tmp_path / "runs"],
    )  # fmt: skip


def test_with_credentials_stay_out_of_uvs_argv(
    sleuth, private_index: str, uv_seen: list[tuple[bytes, int | None]], tmp_path: Path
) -> None:
    # any user of the machine may read a process's argv (ps, /proc/PID/cmdline)
    pin = f"tinypkg @ {private_index}"
    check = "import tinypkg; assert tinypkg.VALUE == 42"
    cache = tmp_path / "argv-cache"
    (tmp_path / "local").mkdir()
    plain = str(_wheel(tmp_path / "local", "otherpkg"))  # a requirement without a secret
    check += "; import otherpkg"
    res = sleuth("run", "-n", "1", "--environment", "venv", "--with", pin, "--with", plain,
                 "--", "python", "-c", check, env={"SLEUTH_CACHE": str(cache)})  # fmt: skip
    assert res.rc == 0, res.stdout + res.stderr  # uv got the credentials: the wheel answers only with them
    assert uv_seen, "no uv pip install asked for the wheel"
    for argv, mode in uv_seen:
        assert URL_PASSWORD.encode() not in argv, argv
        assert plain.encode() in argv.split(b"\0")  # stays on the command line, as given
        assert mode == 0o600  # the pin with the credentials: in a file only its owner reads
    # that file is gone once uv is done, and the cached venv's record hides the credentials
    assert not [p for p in cache.rglob("*") if p.is_file() and URL_PASSWORD.encode() in p.read_bytes()]


def test_a_with_requirement_may_name_a_variable_that_uv_expands(
    sleuth, private_index: str, uv_seen: list[tuple[bytes, int | None]], tmp_path: Path
) -> None:
    """uv expands ``${NAME}`` in a requirement, on its command line and in a requirements file alike
    (the 0600 file a pin with credentials goes to changes nothing): the password then reaches neither
    sleuth's argv nor uv's, nor the run dir."""
    pin = f"tinypkg @ {private_index}".replace(URL_PASSWORD, "${SLEUTH_TEST_INDEX_PW}")
    check = "import tinypkg; assert tinypkg.VALUE == 42"
    res = sleuth("run", "-n", "1", "--json", "--environment", "venv", "--with", pin, "--", "python", "-c", check,
                 env={"SLEUTH_TEST_INDEX_PW": URL_PASSWORD, "SLEUTH_CACHE": str(tmp_path / "c1")})  # fmt: skip
    assert res.rc == 0, res.stdout + res.stderr  # the wheel answers only with the expanded password
    assert uv_seen and not [argv for argv, _mode in uv_seen if URL_PASSWORD.encode() in argv]
    assert_no_secret(URL_PASSWORD, res.stdout, res.stderr, roots=[tmp_path / "runs", tmp_path / "c1"])


@pytest.mark.parametrize("index_password", ["pw${SLEUTH_TEST_NOT_IT}9"])
def test_a_literal_dollar_brace_in_a_with_requirement_is_written_as_percent_24(
    sleuth, private_index: str, tmp_path: Path
) -> None:
    """A password that holds ``${`` itself: uv would expand it (here to another value: 401), so it
    is written ``%24{``, which uv decodes back to ``$`` in the credentials it sends (docs/environments.md)."""
    check = "import tinypkg; assert tinypkg.VALUE == 42"
    env = {"SLEUTH_TEST_NOT_IT": "other"}
    run = ("run", "-n", "1", "--environment", "venv", "--with")
    raw = sleuth(*run, f"tinypkg @ {private_index}", "--", "python", "-c", check,
                 env={**env, "SLEUTH_CACHE": str(tmp_path / "c1")})  # fmt: skip
    assert raw.rc == 4 and "401" in raw.stderr, raw.stdout + raw.stderr  # expanded: the wrong password
    escaped = f"tinypkg @ {private_index}".replace("${", "%24{")
    res = sleuth(
        *run, escaped, "--", "python", "-c", check, env={**env, "SLEUTH_CACHE": str(tmp_path / "c2")}
    )
    assert res.rc == 0, res.stdout + res.stderr


def test_a_constraints_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from sleuth.environments.venv import VenvEnvironment

    # a pip freeze may hold a private wheel's URL with its credentials
    plain = str(_wheel(tmp_path, "otherpkg"))
    env = VenvEnvironment(pins=(plain,), constraints=("otherpkg==1.0",), cache=tmp_path / "cache")
    env.prepare()
    (held,) = (tmp_path / "cache" / "venvs").glob("*.constraints.txt")
    assert held.stat().st_mode & 0o777 == 0o600
    held.chmod(0o644)  # as an older sleuth left it; the venv is built again: the file is closed again
    (env.path / ".sleuth-venv.json").unlink()
    env.prepare()
    assert held.stat().st_mode & 0o777 == 0o600
