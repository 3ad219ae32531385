"""The signature rule (sleuth.signature): properties, the near-identity line, and finding the error."""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sleuth.oracle import group_signatures, normalize_line, same_failure
from sleuth.signature import NEAR_RATIO, error_text, make_signature, parse_signature

# --- strategies ---------------------------------------------------------------------------------

WORDS = ["loss", "is", "was", "removed", "in", "the", "release", "use", "instead", "module", "has",
         "attribute", "value", "at", "step", "for", "field", "required", "cannot", "import", "name",
         "from", "tensor", "shape", "device", "error", "found"]  # fmt: skip
NAMES = ["'float16'", "'a'", "'b'", "`np.float_`", "'sklearn.datasets'", "Foo.bar", "x_1", "'load_nope'"]
HEADS = ["exit 1", "exit 2", "exit 139", "signal SIGSEGV", "signal SIGABRT", "timeout", "output"]
TYPES = ["ValueError", "KeyError", "ImportError", "AttributeError", "RuntimeError",
         "torch.cuda.OutOfMemoryError", "pydantic.errors.PydanticImportError"]  # fmt: skip

PATH_PARTS = ["home", "tmp", "scratch", "job_17", "x.py", "venv-3a"]
# volatile parts: (slot, two generators that give different values of the same kind)
VOLATILE = {
    "num": lambda r: str(r.randint(0, 10**9)),
    "float": lambda r: f"{r.uniform(-1e6, 1e6):.4f}",
    "ver": lambda r: (
        r.choice(["", "v"])
        + ".".join(str(r.randint(0, 30)) for _ in range(r.randint(3, 4)))
        + r.choice(["", "rc1", "a2", ".dev3", ".post1"])
    ),
    "path": lambda r: "/" + "/".join(r.choice(PATH_PARTS) for _ in range(r.randint(1, 4))),
    "hex": lambda r: hex(r.randint(2**20, 2**48)),
    "uuid": lambda r: "-".join(f"{r.getrandbits(4 * n):0{n}x}" for n in (8, 4, 4, 4, 12)),
    "ts": lambda r: f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:00:00Z",
    "size": lambda r: f"{r.uniform(0, 900):.2f} {r.choice(['MiB', 'GiB', 'KiB'])}",
    "url": lambda r: f"https://errors.pydantic.dev/{r.randint(1, 3)}.{r.randint(0, 14)}/v/missing",
}
HINTS = ["", ". Did you mean: 'float16'?", " Did you mean 'nan'?", ". Did you forget to import 'sys'?",
         ". Perhaps you forgot a comma?", "."]  # fmt: skip


@st.composite
def templates(draw: st.DrawFn) -> list[str]:
    """A message template: words and names with volatile slots (``{num}`` ...) between them."""
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(WORDS), st.sampled_from(NAMES), st.sampled_from(sorted(VOLATILE))),
            min_size=1,
            max_size=14,
        )
    )
    return parts


def fill(parts: list[str], seed: int, hint: str) -> str:
    r = random.Random(seed)
    return " ".join(VOLATILE[p](r) if p in VOLATILE else p for p in parts) + hint


messages = st.lists(st.sampled_from(WORDS + NAMES), min_size=0, max_size=12).map(" ".join)


# --- properties ---------------------------------------------------------------------------------


@given(st.sampled_from(HEADS), st.sampled_from(TYPES), messages)
def test_reflexive_and_stable(head: str, kind: str, msg: str) -> None:
    sig = make_signature(head, f"{kind}: {msg}")
    assert same_failure(sig, sig)
    assert make_signature(head, f"{kind}: {msg}") == sig  # the same input, the same signature
    assert same_failure(sig, f"{head}: {kind}: {msg}")  # an un-normalized signature (older journal)


@st.composite
def related_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two signatures of one head/type whose messages differ by a few edits (either outcome occurs)."""
    head, kind = draw(st.sampled_from(HEADS)), draw(st.sampled_from(TYPES))
    a = draw(st.lists(st.sampled_from(WORDS + NAMES), min_size=1, max_size=12))
    b = list(a)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        i = draw(st.integers(0, len(b)))
        token = draw(st.sampled_from(WORDS + NAMES + ["not"]))
        if op == "insert":
            b.insert(i, token)
        elif b and i < len(b):
            if op == "delete":
                del b[i]
            else:
                b[i] = token
    other_head = draw(st.sampled_from([head, *HEADS]))
    return make_signature(head, f"{kind}: {' '.join(a)}"), make_signature(
        other_head, f"{kind}: {' '.join(b)}"
    )


@given(related_pairs())
def test_symmetric(pair: tuple[str, str]) -> None:
    a, b = pair
    assert same_failure(a, b) == same_failure(b, a)


@given(parts=templates(), s1=st.integers(0, 2**32), s2=st.integers(0, 2**32), h1=st.sampled_from(HINTS),
       h2=st.sampled_from(HINTS), head=st.sampled_from(HEADS), kind=st.sampled_from(TYPES))  # fmt: skip
@settings(max_examples=300)
def test_invariant_under_volatile_parts_and_hints(
    *, parts: list[str], s1: int, s2: int, h1: str, h2: str, head: str, kind: str
) -> None:
    """Numbers, versions, paths, hex, UUIDs, timestamps, sizes, URLs and hints never tell failures apart."""
    a = make_signature(head, f"{kind}: {fill(parts, s1, h1)}")
    b = make_signature(head, f"{kind}: {fill(parts, s2, h2)}")
    assert a == b
    assert same_failure(a, b)


@given(h1=st.sampled_from(HEADS), h2=st.sampled_from(HEADS), t1=st.sampled_from(TYPES),
       t2=st.sampled_from(TYPES), m1=messages, m2=messages)  # fmt: skip
def test_never_across_heads_or_types(*, h1: str, h2: str, t1: str, t2: str, m1: str, m2: str) -> None:
    assume(h1 != h2 or t1.rpartition(".")[2] != t2.rpartition(".")[2])
    a, b = make_signature(h1, f"{t1}: {m1}"), make_signature(h2, f"{t2}: {m2}")
    assert not same_failure(a, b)


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=300))
@settings(max_examples=300)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_line(text)
    assert normalize_line(once) == once
    assert len(once) <= 200


GROUPABLE = [
    *(make_signature("exit 1", f"ValueError: {m}")
      for m in ("bad value", "bad value in x", "bad value 3", "other thing", "not a bad value")),
    "signal SIGSEGV",
    "signal SIGSEGV: Fatal Python error: Segmentation fault",
]  # fmt: skip


@given(st.lists(st.sampled_from(GROUPABLE), max_size=30), st.randoms())
def test_group_signatures_does_not_depend_on_order(sigs: list[str], rnd: random.Random) -> None:
    shuffled = list(sigs)
    rnd.shuffle(shuffled)
    groups = group_signatures(sigs)
    assert groups == group_signatures(shuffled)
    assert sorted(s for m in groups.values() for s in m) == sorted(sigs)
    for rep, members in groups.items():
        assert all(same_failure(rep, s) for s in members)


# --- where the line is --------------------------------------------------------------------------


def sig(line: str, head: str = "exit 1") -> str:
    return make_signature(head, line)


def test_names_are_identity() -> None:
    assert not same_failure(
        sig("ModuleNotFoundError: No module named 'a'"), sig("ModuleNotFoundError: No module named 'b'")
    )
    assert not same_failure(sig("KeyError: 'a'"), sig("KeyError: 'b'"))
    assert not same_failure(sig("TypeError: f() takes 2 positional arguments but 3 were given"),
                            sig("TypeError: g() takes 2 positional arguments but 3 were given"))  # fmt: skip
    assert not same_failure(
        sig("ImportError: No module named 'a.b'"), sig("ImportError: No module named 'a'")
    )


def test_insertions_are_near() -> None:
    """A qualifier, a hint the normalizer does not know, or an added clause: the same failure."""
    assert same_failure(sig("TypeError: f() takes 2 positional arguments but 3 were given"),
                        sig("TypeError: A.f() takes 2 positional arguments but 3 were given"))  # fmt: skip
    base = "RuntimeError: expected all tensors to be on the same device, but found two devices"
    assert same_failure(sig(base), sig(base + " (check the model)"))


def test_near_has_a_threshold() -> None:
    short = "ValueError: shapes do not align for matmul"  # 7 tokens
    within = short + " in layer dense"  # 10 tokens: 2*7/17 = 0.82
    beyond = short + " in layer dense of the model"  # 14 tokens: 2*7/21 = 0.67
    assert 2 * 7 / 17 >= NEAR_RATIO > 2 * 7 / 21
    assert same_failure(sig(short), sig(within))
    assert not same_failure(sig(short), sig(beyond))


def test_negations_and_replacements_are_not_near() -> None:
    assert not same_failure(sig("AssertionError: the loss is finite at the end of the epoch"),
                            sig("AssertionError: the loss is not finite at the end of the epoch"))  # fmt: skip
    assert not same_failure(sig("FloatingPointError: invalid value encountered in log"),
                            sig("FloatingPointError: divide by zero encountered in log"))  # fmt: skip


def test_an_empty_message_is_not_any_message() -> None:
    """Issue 7: ``exit 1: ImportError:`` matched any ImportError."""
    assert sig("ImportError: ") == "exit 1: ImportError"
    assert not same_failure("exit 1: ImportError", sig("ImportError: cannot import name 'x' from 'y'"))
    assert same_failure("exit 1", "exit 1")
    assert not same_failure("exit 1", sig("ValueError: boom"))


def test_heads() -> None:
    assert not same_failure(sig("ValueError: boom"), sig("ValueError: boom", head="exit 2"))
    assert not same_failure("signal SIGSEGV", "exit 139")
    assert not same_failure("timeout", "signal SIGKILL")
    assert same_failure("signal SIGSEGV", "signal SIGSEGV: Fatal Python error: Segmentation fault")
    assert not same_failure("signal SIGABRT", "signal SIGSEGV: Fatal Python error: Segmentation fault")
    assert not same_failure(None, None) and not same_failure("timeout", None)


def test_a_module_move_is_the_same_type() -> None:
    msg = "ufunc 'add' did not contain a loop with signature matching types"
    assert same_failure(sig(f"numpy.core._exceptions._UFuncNoLoopError: {msg}"),
                        sig(f"numpy._core._exceptions._UFuncNoLoopError: {msg}"))  # fmt: skip
    assert not same_failure(
        sig(f"numpy._core._exceptions._UFuncNoLoopError: {msg}"), sig(f"TypeError: {msg}")
    )


def test_pytest_test_ids_are_identity() -> None:
    a = sig("FAILED tests/test_a.py::test_one[3-cuda] - assert 2 == 3")
    assert a == "exit 1: FAILED tests/test_a.py::test_one[3-cuda] - assert <n> == <n>"
    assert parse_signature(a).kind == "FAILED tests/test_a.py::test_one[3-cuda]"
    assert not same_failure(a, sig("FAILED tests/test_a.py::test_one[4-cuda] - assert 2 == 3"))
    assert not same_failure(a, sig("FAILED tests/test_b.py::test_one[3-cuda] - assert 2 == 3"))


def test_versions_are_replaced_whole() -> None:
    """Issue 7: ``numpy 1.26.4`` became ``numpy <n>.4``."""
    assert normalize_line("numpy 1.26.4 and 2.0.0rc1, v1.2, 2.1a3, torch 2.4.0+cu121") == (
        "numpy <ver> and <ver>, <ver>, <ver>, torch <ver>"
    )
    assert normalize_line("see https://docs.pydantic.dev/2.0.3/migration/#x for details.") == (
        "see <url> for details"
    )
    assert normalize_line("Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; 0 bytes free)") == (
        "Tried to allocate <size> (GPU <n>; <size> total capacity; <size> free)"
    )
    assert same_failure(
        sig("RuntimeError: numpy 2.0 is not supported"), sig("RuntimeError: numpy 2.0.1 is not supported")
    )


def test_long_messages_are_cut_at_a_word() -> None:
    long = "ValueError: " + " ".join(["word"] * 40) + " " + "x" * 40 + " tail"
    out = sig(long)
    assert len(out) < len("exit 1: ValueError: ") + 201
    assert out.endswith("word")


# --- finding the error in the output ------------------------------------------------------------


TB = 'Traceback (most recent call last):\n  File "/a/x.py", line 3, in <module>\n    f()\n    ~^^\n'


def test_the_last_traceback_wins_and_any_type_name() -> None:
    text = TB + "KeyError: 'a'\n\nDuring handling of the above exception, another exception occurred:\n\n"
    text += TB + "StopIteration\n"
    assert error_text(text) == "StopIteration"
    assert error_text(TB + "mylib.Boom: kaput\n") == "mylib.Boom: kaput"


def test_message_on_the_next_line_skips_boilerplate() -> None:
    assert error_text(TB + "ImportError: \n\n`load_boston` has been removed.\n\nMore text.\n") == (
        "ImportError: `load_boston` has been removed."
    )
    cuda = TB + "RuntimeError: \nCUDA kernel errors might be asynchronously reported at some other API call\n"
    cuda += "CUDA error: device-side assert triggered\n"
    assert error_text(cuda) == "RuntimeError: CUDA error: device-side assert triggered"


def test_a_header_line_takes_the_next_line_and_details_stay_out() -> None:
    assert error_text(TB + "ValueError: the following arguments are required:\n  --data\n") == (
        "ValueError: the following arguments are required: --data"
    )
    cpp = (
        TB + "RuntimeError: CUDA error: out of memory\nException raised from c10_cuda_check at x.cpp:43 (most"
    )
    cpp += " recent call first):\nframe #0: c10::Error::Error() + 0x96 (0x7ff in /lib/libc10.so)\n"
    assert error_text(cpp) == "RuntimeError: CUDA error: out of memory"


def test_prefixes_and_colours_are_dropped() -> None:
    assert error_text("[rank3]: Traceback (most recent call last):\n[rank3]:   File \"t.py\", line 1\n"
                      "[rank3]: torch.OutOfMemoryError: CUDA out of memory.\n") == (
        "torch.OutOfMemoryError: CUDA out of memory.")  # fmt: skip
    assert error_text("2026-01-02T03:04:05.678Z ValueError: bad\n") == "ValueError: bad"
    assert error_text("\x1b[31mValueError: bad\x1b[0m\n") == "ValueError: bad"


def test_pytest_summary_first_failing_test_and_cut_lines() -> None:
    out = "FAILED t.py::test_z - ValueError: z\nFAILED t.py::test_a - assert 1 == 2\n===== 2 failed in 0.1s\n"
    assert error_text("Traceback (most recent call last):\nKeyError: 'k'\n", out) == (
        "FAILED t.py::test_a - assert 1 == 2"
    )
    cut = "FAILED t.py::test_a - ValueError: a long message cut by the termin...\n"
    assert error_text(cut) == "FAILED t.py::test_a - ValueError: a long message cut by the"


def test_plain_error_lines() -> None:
    assert error_text("step 1 ok\nSegmentation fault (core dumped)\n") == "Segmentation fault (core dumped)"
    assert error_text("all good\n") is None


def test_a_shell_that_could_not_fork_names_it() -> None:
    """The workload's own fork failing (the process limit): dash, busybox and bash said nothing an
    error line was looked for in, so the signature was a bare ``exit 2``."""
    assert error_text("sh: 1: Cannot fork\n") == "sh: 1: Cannot fork"
    assert error_text("sh: can't fork: Resource temporarily unavailable\n") == (
        "sh: can't fork: Resource temporarily unavailable"
    )
    bash = (
        "bash: fork: retry: Resource temporarily unavailable\nbash: fork: Resource temporarily unavailable\n"
    )
    assert error_text(bash) == "bash: fork: Resource temporarily unavailable"
    assert error_text("forking 4 workers\n") is None


def test_a_warning_is_not_the_error() -> None:
    # torch warns at import without numpy; a rank killed before its own traceback printed only this
    # line, which named the failure of a distributed reduce (and reduced it to one rank)
    warn = (
        "/venv/lib/python3.11/site-packages/torch/_tensor.py:12: UserWarning: Failed to initialize NumPy: "
        "No module named 'numpy' (Triggered internally at ../torch/csrc/utils/tensor_numpy.cpp:84.)\n"
        "  cpu = _conversion_method_template(device=torch.device('cpu'))\n"
    )
    assert error_text(warn) is None
    assert error_text(warn + "all_reduce failed on rank 2\n") == "all_reduce failed on rank 2"
    assert error_text(warn + TB + "RuntimeError: bad sum\n") == "RuntimeError: bad sum"


#: the end of a torchrun launch whose rank died (torch.distributed.elastic's ChildFailedError): the
#: exception's line is empty and a rule of '=' comes before the text that names the failure
TORCHRUN_TAIL = """\
Traceback (most recent call last):
  File "/usr/bin/torchrun", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_10:00:05
  rank      : 1 (local_rank: 1)
  exitcode  : -6 (pid: 1234)
============================================================
"""


def test_a_rule_under_an_empty_message_is_not_the_message() -> None:
    """Every torchrun failure got the signature ``...ChildFailedError: =====...`` (the rule under
    the empty message line), so failures of different scripts read as one."""
    text = error_text(TORCHRUN_TAIL)
    assert text == "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: train.py FAILED"
    other = error_text(TORCHRUN_TAIL.replace("train.py FAILED", "eval.py FAILED"))
    assert not same_failure(make_signature("exit 1", text), make_signature("exit 1", other))
