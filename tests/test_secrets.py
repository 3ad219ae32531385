"""The one redaction rule (sleuth.secrets) that every verb uses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleuth import secrets
from sleuth._probe import secret_name
from sleuth.errors import UsageError
from sleuth.secrets import (
    REDACTED,
    SECRETS_FILE,
    Secrets,
    assigned_secrets,
    env_secret_values,
    is_secret,
    scrub_text,
)


@pytest.mark.parametrize(
    "name",
    ["HF_TOKEN", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "NPM_AUTHTOKEN", "DB_PASSWD", "GITHUB_PAT",
     "wandb_api_key", "MY_APIKEY", "PGPASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"],
)  # fmt: skip
def test_names_that_say_secret(name: str) -> None:
    assert secret_name(name)
    assert is_secret(name, "x")


@pytest.mark.parametrize(
    "name",
    ["TOKENIZERS_PARALLELISM", "KEYBOARD_LAYOUT", "CUDA_VISIBLE_DEVICES", "PATH", "PYTHONPATH", "MONKEY",
     "NCCL_DEBUG", "PASSENGER_COUNT", "OMP_NUM_THREADS"],
)  # fmt: skip
def test_names_that_do_not(name: str) -> None:
    assert not secret_name(name)
    assert not is_secret(name, "1")


def test_token_like_values_are_secret_whatever_the_name() -> None:
    assert is_secret("X", "hf_PlantedHuggingFaceToken0123456789")
    assert is_secret("X", "Zq8vN3kL0pR7sT2uW9xY4bC6dF1gH5jK7mP")
    assert not is_secret("X", "GPU-8f3a2c1e-0b6d-4f7a-9e2b-1c3d5e7f9a0b")  # a device UUID
    assert not is_secret("X", "/a/rather/long/path/to/some/checkpoint/dir/of/the/model")


def test_scrub_text_hides_values_url_credentials_and_token_words() -> None:
    text = "pull http://alice:s3cret@host/x with hf_AbCdEfGhIjKlMnOp and MYVALUE42 here"
    out = scrub_text(text, ("MYVALUE42",))
    assert "s3cret" not in out and "hf_AbCdEfGhIjKlMnOp" not in out and "MYVALUE42" not in out
    assert out.count(REDACTED) == 3 and out.startswith("pull http://")


def test_scrub_walks_json_and_keeps_non_secrets() -> None:
    s = Secrets.of({"HF_TOKEN": "hf_PlantedHuggingFaceToken0123456789", "NCCL_DEBUG": "INFO"})
    assert s.names == ["HF_TOKEN"]
    doc = {"env": {"HF_TOKEN": "hf_PlantedHuggingFaceToken0123456789", "NCCL_DEBUG": "INFO"},
           "argv": ["python", "t.py", "--tok", "hf_PlantedHuggingFaceToken0123456789"], "n": 3}  # fmt: skip
    out = s.scrub(doc)
    assert "hf_Planted" not in json.dumps(out)
    assert (
        out["env"]["NCCL_DEBUG"] == "INFO"
        and out["n"] == 3
        and out["argv"][:3] == ["python", "t.py", "--tok"]
    )


def test_save_is_0600_and_load_prefers_the_file_then_the_shell(tmp_path: Path) -> None:
    Secrets({"HF_TOKEN": "from-file-value"}).save(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / SECRETS_FILE).st_mode)
    assert mode == 0o600
    got = Secrets.load(tmp_path, ["HF_TOKEN", "API_KEY"], environ={"API_KEY": "from-shell", "HF_TOKEN": "no"})
    assert got.values == {"HF_TOKEN": "from-file-value", "API_KEY": "from-shell"}
    assert got.restore_env({"HF_TOKEN": REDACTED, "A": "b"}) == {"HF_TOKEN": "from-file-value", "A": "b"}
    with pytest.raises(UsageError, match="MISSING_TOKEN"):
        Secrets.load(tmp_path, ["MISSING_TOKEN"], environ={})


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("postgresql://:s3cretpw@db:5432/x", "postgresql://"),  # a password without a user
        ("redis://:s3cretpw@cache:6379/0", "@cache:6379/0"),
        ("see http://host:8080/a@b", "http://host:8080/a@b"),  # a port, then a path: no credentials
    ],
)
def test_url_credentials_without_a_user_are_hidden(text: str, kept: str) -> None:
    out = scrub_text(text)
    assert "s3cretpw" not in out and kept in out, out


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("launch: python train.py --password hunter2 --lr 0.1", "hunter2", "--lr 0.1"),
        ("cmd: tool -secret s3cr3tvalue x", "s3cr3tvalue", " x"),
        ("cmd: tool --api-key abcdefgh12345 --n 3", "abcdefgh12345", "--n 3"),
        ("use --token to pass it", None, "use --token to pass it"),  # prose: a weak key's short word
        ("--max-tokens 4096 and --cache-key 12", None, "--max-tokens 4096 and --cache-key 12"),
        ("--secret-file /etc/x --password-file /etc/y", None, "--secret-file /etc/x --password-file /etc/y"),
    ],
)
def test_a_secret_flag_with_its_value_after_a_space_is_hidden(
    text: str, hidden: str | None, kept: str
) -> None:
    # a failing launcher prints its whole command line: '--password hunter2' reached the signature
    out = scrub_text(text)
    assert kept in out, out
    if hidden is not None:
        assert hidden not in out and REDACTED in out, out


def test_a_fifo_in_place_of_secrets_json_does_not_hang_the_load(tmp_path: Path) -> None:
    # a hostile (or broken) run dir with a FIFO named secrets.json blocked the resume for ever; it is
    # now read as no file, and the value comes from the shell
    os.mkfifo(tmp_path / SECRETS_FILE)
    code = f"from pathlib import Path; from sleuth.secrets import Secrets; print(Secrets.load(Path({str(tmp_path)!r}), ['K'], {{'K': 'from-shell'}}).restore_env({{'K': '{REDACTED}'}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "from-shell" in out.stdout, out.stderr


def test_a_command_lines_secrets_are_found_by_flag_and_by_shape() -> None:
    """``--password VALUE``, ``--api-key=VALUE`` and a lone token; not ``--num-keys 4``."""
    argv = ["train", "--password", "hunter2", "--api-key=abc123x", "--num-keys", "4", "hf_" + "Ab1" * 10]
    found = Secrets.of_argv(argv)
    assert found.values == {"argv[2]": "hunter2", "argv[3]": "abc123x", "argv[6]": "hf_" + "Ab1" * 10}
    assert (
        found.scrub(" ".join(argv))
        == "train --password <redacted> --api-key=<redacted> --num-keys 4 <redacted>"
    )
    # a shell string is split as the shell would; one that cannot be split gives nothing by name
    assert Secrets.of_argv("make --token 's3cr3t9' all").words == {"s3cr3t9"}
    assert not Secrets.of_argv("make --token 's3cr3t9")


@given(st.lists(st.text(alphabet="-=abcdefghKEYTOKN0123456789_", max_size=14), max_size=8))
def test_every_found_value_is_part_of_its_argument_and_is_hidden_there(argv: list[str]) -> None:
    found = Secrets.of_argv(argv, str)
    for key, value in found.values.items():
        arg = argv[int(key)]
        assert value in (arg, arg.partition("=")[2])
        assert value not in found.scrub(arg) or len(value) < 6


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (
            'curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig" https://x',
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("proxy-authorization=token abcdefgh1234", "abcdefgh1234"),
        ("using bearer ABCDEFGH12345678abc", "ABCDEFGH12345678abc"),
        # any case (the scan is skipped only when no case of the word is in the text)
        ("AUTHORIZATION: BASIC dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("x BeArEr abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
        ("git clone HTTPS://bob:pa55w0rd@host/x", "pa55w0rd"),
    ],
)
def test_http_credentials_are_hidden(text: str, hidden: str) -> None:
    out = scrub_text(text)
    assert hidden not in out and REDACTED in out
    assert scrub_text(out) == out  # idempotent: nothing redacted twice


@pytest.mark.parametrize(
    "text", ["the bearer certificates are", "authorization failed for user", "Bearer short"]
)
def test_prose_about_authorization_keeps_its_words(text: str) -> None:
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("connecting with password=hunter2", "hunter2"),
        ("export DB_PASSWORD=hunter2; run", "hunter2"),
        ("mysql --password='hunter2' db", "hunter2"),
        ('{"user": "bob", "password": "hunter2"}', "hunter2"),
        ("{'api_key': 'abcd1234efgh'}", "abcd1234efgh"),
        ("client_secret=s3cr3t&grant=x", "s3cr3t"),
        ("AWS_SECRET_ACCESS_KEY=abcdEFGH1234", "abcdEFGH1234"),
        ("mypassword=hunter2", "hunter2"),
        ("session token=abcdefgh1234", "abcdefgh1234"),
    ],
)
def test_the_values_of_secret_named_assignments_are_hidden(text: str, hidden: str) -> None:
    out = scrub_text(text)
    assert hidden not in out and REDACTED in out
    assert scrub_text(out) == out  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "step 10 max_tokens=1024 tokens=55 token=42 loss=1.5",  # a model's log: counts and ids
        "cache_key=abcdef0123456789 keyboard=us",
        "wrong password: check the config",  # prose: a bare `password:` is not an assignment
        "auth=true token=12345678.5",
        "passwords=3 secrets_dir=/etc",
        'export HF_TOKEN="${HF_TOKEN:?set it}" PASSWORD=$DB_PASSWORD',  # references, not values
        "password=%(password)s token={{ secrets.HF_TOKEN }}",
    ],
)
def test_assignments_that_are_not_secrets_keep_their_values(text: str) -> None:
    assert scrub_text(text) == text


def test_a_short_password_variable_is_hidden_inside_texts() -> None:
    """``PASSWORD=hunter2`` (7 characters) printed by a failing workload reached its signature in every
    copy (result.json, the journal, the reports): a value was hidden inside texts from 8 characters
    on, although ``--password hunter2`` is from 6.  A password or secret variable is now the same;
    a key, token or auth variable keeps 8 (``CACHE_KEY=abc1234`` is as often an id), and a value
    under 6 stays hidden under its name only (``USE_AUTH=0``)."""
    from sleuth.secrets import Secrets

    s = Secrets.of({"DB_PASSWORD": "hunter2", "MY_SECRET": "12345", "CACHE_KEY": "abc1234", "USE_AUTH": "0"})
    text = "login rejected for hunter2 (cache abc1234, secret 12345, auth 0)"
    assert s.scrub({"signature": text})["signature"] == (
        "login rejected for <redacted> (cache abc1234, secret 12345, auth 0)"
    )
    assert s.scrub({"DB_PASSWORD": "hunter2", "USE_AUTH": "0"}) == {
        "DB_PASSWORD": "<redacted>",
        "USE_AUTH": "<redacted>",
    }


KEY = "0123456789abcdef" * 2 + "01234567"  # a W&B API key: 40 hex digits


@pytest.mark.parametrize(
    "text",
    [
        f"+ wandb login {KEY}",
        f"wandb login --relogin --host https://wandb.example.com {KEY}",
        f"machine api.wandb.ai login user password {KEY}",
        f"  password {KEY}",
        f'wandb.login(key="{KEY}")',
        f"WANDB_API_KEY={KEY}",
    ],
)
def test_a_wandb_key_in_its_context_is_hidden(text: str) -> None:
    out = scrub_text(text)
    assert KEY not in out and REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        f"commit {KEY}",
        f"git checkout {KEY}",
        f"wandb: Syncing run at commit {KEY}",
        f"password {KEY}0",  # 41 hex digits: not a W&B key
    ],
)
def test_a_40_hex_word_without_a_key_context_stays(text: str) -> None:
    assert scrub_text(text) == text


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret access key


@pytest.mark.parametrize(
    "text",
    [
        AWS_SECRET,
        f"boto3.client('s3', None, None, 'AKIAIOSFODNN7EXAMPLE', '{AWS_SECRET}')",  # positional, in a traceback
        f"alice,,AKIAIOSFODNN7EXAMPLE,{AWS_SECRET}",  # a credentials CSV
        "signing with je7MtGbClwBF+2Zp9Utk/h3yCo8nvbEXAMPLEKEY failed",
    ],
)
def test_a_bare_aws_secret_key_is_hidden(text: str) -> None:
    """A 40-character AWS secret key alone in a text: whole values and secret-named assignments were
    hidden, the key by itself (a traceback's arguments, a CSV) was not."""
    out = scrub_text(text)
    assert out.count(REDACTED) >= 1 and "EXAMPLEKEY" not in out, out


@pytest.mark.parametrize(
    "text",
    [
        f"first bad commit {KEY.replace('0123', '3f2a')}",  # a git commit id: 40 hex digits
        f"HEAD is now at {KEY.upper()}",  # in capitals
        "tests/test_conv.py::Conv2dBackwardKernel3x3Float16Tensor4Abc FAILED",  # a CamelCase name
        f"sha {AWS_SECRET}Z and {AWS_SECRET[:39]}",  # 41 and 39 characters
        f"blob {'Zq4/' * 30}",  # the middle of a longer base64 run
        "src/sleuth/x/Conv2dBackwardKernel3x3Float16.py",  # a path's file
    ],
)
def test_a_40_character_word_that_is_no_key_stays(text: str) -> None:
    assert scrub_text(text) == text


def test_sleuths_own_command_line_hides_each_secret_pair_and_keeps_the_harmless_ones() -> None:
    """``--env NAME=VALUE``, ``--env=NAME=VALUE`` and a bare ``NAME=VALUE`` are judged by the name's
    words and the value's shape; a name given twice hides both values (a dict of the pairs kept the
    last one only); ``--env CUDA_VISIBLE_DEVICES=...`` and ``--backend-opt partition=...`` stay."""
    argv = [
        "run", "--env", "DB_PASSWORD=hunter2pw", "--env=HF_TOKEN=abcdefgh99", "API_KEY=zyxwvuts77",
        "--env", "DB_PASSWORD=second2pw", "--env", "CUDA_VISIBLE_DEVICES=gpu-0-gpu-1",
        "--backend-opt=partition=debug-queue", "--", "curl", "--password", "hunter3pw",
    ]  # fmt: skip
    assert assigned_secrets(argv) == {
        2: ("DB_PASSWORD", "hunter2pw"),
        3: ("HF_TOKEN", "abcdefgh99"),
        4: ("API_KEY", "zyxwvuts77"),
        6: ("DB_PASSWORD", "second2pw"),
    }
    quoted = "hunter2pw abcdefgh99 zyxwvuts77 second2pw hunter3pw gpu-0-gpu-1 debug-queue"
    shown = Secrets.of_command_line(argv, env={}).scrub(quoted)
    assert shown == " ".join([REDACTED] * 5) + " gpu-0-gpu-1 debug-queue"


def test_sleuths_own_command_line_hides_the_shells_secret_values() -> None:
    env = {"MY_TOKEN": "abcdef123456secret", "PLAIN": "abcdef123456plain"}
    shown = Secrets.of_command_line(["run"], env=env).scrub("abcdef123456secret abcdef123456plain")
    assert shown == f"{REDACTED} abcdef123456plain"


def test_env_secret_values_follow_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEUTH_TEST_DEPLOY_TOKEN", "first-value-1234")
    assert "first-value-1234" in env_secret_values(os.environ)
    monkeypatch.setenv("SLEUTH_TEST_DEPLOY_TOKEN", "second-value-5678")
    assert "second-value-5678" in env_secret_values(os.environ, named=True)
    assert "first-value-1234" not in env_secret_values(os.environ)
    monkeypatch.delenv("SLEUTH_TEST_DEPLOY_TOKEN")
    assert "second-value-5678" not in env_secret_values(os.environ)
    env = {"A_TOKEN": "in-place-value-1"}
    assert env_secret_values(env) == ("in-place-value-1",)
    env["A_TOKEN"] = "in-place-value-2"  # the same dict, changed: not the answer kept for it
    assert env_secret_values(env) == ("in-place-value-2",)


def test_named_secret_values_leave_out_values_that_only_look_like_tokens() -> None:
    token = "ghp_" + "Ab1" * 12
    env = {"DEPLOY_PASSWORD": "hunter2pw", "GITHUB_HEAD_REF": token, "PATH": "/usr/bin"}
    assert env_secret_values(env) == (token, "hunter2pw")
    assert env_secret_values(env, named=True) == ("hunter2pw",)


def test_alternating_environments_are_each_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate checks every name against this shell's environment and against its secret-named part:
    with one answer kept, each call evicted the other's and read the whole environment again."""
    real = Secrets.of.__func__  # type: ignore[attr-defined]
    reads: list[int] = []

    def counted(cls: type[Secrets], *envs: dict[str, str]) -> Secrets:
        reads.append(1)
        return real(cls, *envs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Secrets, "of", classmethod(counted))
    whole = {"SLEUTH_TEST_A_TOKEN": "alternating-1", "HOME": "/root"}
    part = {"SLEUTH_TEST_A_TOKEN": "alternating-1", "OTHER_KEY": "alternating-2"}
    for _ in range(10):
        assert env_secret_values(whole) == ("alternating-1",)
        assert set(env_secret_values(part, named=True)) == {"alternating-1", "alternating-2"}
        assert env_secret_values(os.environ) == env_secret_values(os.environ)
    assert len(reads) <= 3, len(reads)
    assert len(secrets._env_cache) <= secrets._ENV_CACHE_SIZE
