"""Re-create the signature corpus: run each case for real and keep its output verbatim.

    python tests/data/signatures/collect.py [--only SUBSTRING] [--work /tmp/sig-corpus]

Each case runs in a throwaway uv venv (pyenv's interpreters, exact package pins), in a fresh
temporary directory, with a small fixed environment.  Its stdout/stderr land in ``captured/`` and
its exit status, interpreter, packages and command in ``corpus.json`` (merged: other entries stay).
The corpus test (tests/test_signature_corpus.py) reads only the stored files, never this script.
Not part of the test suite: it needs the package index and several minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
UV = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"

PYTEST_FILE = (
    "def test_one():\n"
    "    assert 1 + 1 == 3\n"
    "\n"
    "def test_two():\n"
    "    raise ValueError('bad value 3 in column x')\n"
)
TRAIN_NAN = (
    "import math, random, sys\n"
    "random.seed(int(sys.argv[1]))\n"
    "w, lr = 1.0, 0.7\n"
    "for step in range(10000):\n"
    "    x = random.uniform(1, 3)\n"
    "    loss = w * w * x * x - 4 * w * x * x + 4 * x * x  # (w - 2)^2 x^2, expanded\n"
    "    w -= lr * 2 * (w - 2) * x * x\n"
    "    if step % 10 == 0 or not math.isfinite(loss):\n"
    "        print(f'step {step} loss {loss:.4g}', flush=True)\n"
    "    if math.isnan(loss):\n"
    "        raise FloatingPointError(f'loss is nan at step {step} (lr={lr})')\n"
)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    python: str
    packages: tuple[str, ...] = ()
    code: str | None = None  # python -c CODE
    argv: tuple[str, ...] = ()  # or a command; {py} is the venv's python
    files: dict[str, str] = field(default_factory=dict)
    find_links: str | None = None


def py(v: str) -> str:
    return {"3.9": "3.9.18", "3.10": "3.10.13", "3.11": "3.11.7", "3.12": "3.12.1", "3.13": "3.13.0"}[v]


FLOAT_ = "import numpy as np; np.float_"
BOSTON = "from sklearn.datasets import load_boston"
SEGV = "import ctypes; ctypes.string_at(0)"
METHOD = "class A:\n    def {f}(self, x):\n        pass\nA().{f}(1, 2)\n"

CASES: list[Case] = [
    # issue 7: numpy 2.0.x appends Python's "Did you mean: 'float16'?", 2.1 does not
    *(
        Case(f"numpy-{v}-py3.11-float_", "numpy-float_-removed", "3.11", (f"numpy=={v}",), FLOAT_)
        for v in ("2.0.0", "2.0.1", "2.0.2", "2.1.0")
    ),
    Case("numpy-2.0.2-py3.10-float_", "numpy-float_-removed", "3.10", ("numpy==2.0.2",), FLOAT_),
    Case("numpy-2.1.3-py3.12-float_", "numpy-float_-removed", "3.12", ("numpy==2.1.3",), FLOAT_),
    Case("numpy-2.2.6-py3.13-float_", "numpy-float_-removed", "3.13", ("numpy==2.2.6",), FLOAT_),
    Case("numpy-2.4.6-py3.12-float_", "numpy-float_-removed", "3.12", ("numpy==2.4.6",), FLOAT_),
    *(
        Case(
            f"numpy-{v}-py3.11-complex_",
            "numpy-complex_-removed",
            "3.11",
            (f"numpy=={v}",),
            "import numpy as np; np.complex_",
        )
        for v in ("2.0.0", "2.1.0")
    ),
    *(
        Case(
            f"numpy-{v}-py3.11-NaN",
            "numpy-NaN-removed",
            "3.11",
            (f"numpy=={v}",),
            "import numpy as np; np.NaN",
        )
        for v in ("2.0.0", "2.1.0")
    ),
    *(
        Case(
            f"numpy-{v}-py{p}-ufunc-no-loop",
            "numpy-ufunc-add-no-loop",
            p,
            (f"numpy=={v}",),
            "import numpy as np; np.add(np.array(['a']), 1)",
        )
        for v, p in (("1.26.4", "3.11"), ("2.0.2", "3.11"), ("2.2.6", "3.13"))
    ),
    *(
        Case(
            f"numpy-{v}-py{p}-fpe-invalid-log",
            "numpy-fpe-invalid-log",
            p,
            (f"numpy=={v}",),
            "import numpy as np; np.seterr(all='raise'); np.log(np.array([-1.0]))",
        )
        for v, p in (("1.26.4", "3.11"), ("2.1.0", "3.12"))
    ),
    *(
        Case(
            f"numpy-{v}-py{p}-fpe-divide-log",
            "numpy-fpe-divide-by-zero-log",
            p,
            (f"numpy=={v}",),
            "import numpy as np; np.seterr(all='raise'); np.log(np.array([0.0]))",
        )
        for v, p in (("1.26.4", "3.11"), ("2.1.0", "3.12"))
    ),
    # issue 7: pydantic 2.0.x puts its own version in the docs link of the message
    *(
        Case(
            f"pydantic-{v}-py{p}-BaseSettings",
            "pydantic-BaseSettings-moved",
            p,
            (f"pydantic=={v}",),
            "from pydantic import BaseSettings",
        )
        for v, p in (
            ("2.0", "3.11"),
            ("2.0.1", "3.11"),
            ("2.0.2", "3.11"),
            ("2.0.3", "3.11"),
            ("2.5.3", "3.12"),
            ("2.14.4", "3.13"),
        )
    ),
    *(
        Case(
            f"pydantic-{v}-py{p}-ConstrainedInt",
            "pydantic-ConstrainedInt-removed",
            p,
            (f"pydantic=={v}",),
            "from pydantic import ConstrainedInt",
        )
        for v, p in (("2.0.3", "3.11"), ("2.14.4", "3.13"))
    ),
    *(
        Case(
            f"pydantic-{v}-py{p}-missing",
            "pydantic-validation-error-for-M",
            p,
            (f"pydantic=={v}",),
            "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM()\n",
        )
        for v, p in (("2.0.3", "3.11"), ("2.14.4", "3.13"))
    ),
    *(
        Case(
            f"pydantic-{v}-py{p}-int-parsing",
            "pydantic-validation-error-for-M",
            p,
            (f"pydantic=={v}",),
            "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x='abc')\n",
        )
        for v, p in (("2.0.3", "3.11"), ("2.14.4", "3.13"))
    ),
    # issue 7: scikit-learn's ImportError message starts on the next line
    *(
        Case(
            f"sklearn-{v}-py{p}-load_boston",
            "sklearn-load_boston-removed",
            p,
            (f"scikit-learn=={v}", *x),
            BOSTON,
        )
        for v, p, x in (
            ("1.2.0", "3.11", ("numpy<2",)),
            ("1.2.2", "3.11", ("numpy<2",)),
            ("1.3.2", "3.12", ("numpy<2",)),
            ("1.5.2", "3.12", ()),
        )
    ),
    *(
        Case(
            f"sklearn-{v}-py{p}-load_nope",
            "sklearn-cannot-import-load_nope",
            p,
            (f"scikit-learn=={v}", *x),
            "from sklearn.datasets import load_nope",
        )
        for v, p, x in (("1.2.2", "3.11", ("numpy<2",)), ("1.5.2", "3.12", ()))
    ),
    # the interpreter's own messages and hints across versions
    *(
        Case(f"python-{p}-no-module-alpha", "python-no-module-alpha", p, (), "import nosuchmod_alpha")
        for p in ("3.9", "3.11", "3.13")
    ),
    Case("python-3.11-no-module-beta", "python-no-module-beta", "3.11", (), "import nosuchmod_beta"),
    *(
        Case(f"python-{p}-name-sys", "python-name-sys-undefined", p, (), "sys.argv")
        for p in ("3.9", "3.11", "3.12", "3.13")
    ),
    *(
        Case(f"python-{p}-math-sine", "python-math-no-sine", p, (), "import math; math.sine")
        for p in ("3.9", "3.10", "3.12")
    ),
    *(
        Case(f"python-{p}-method-args-f", "python-method-f-args", p, (), METHOD.format(f="f"))
        for p in ("3.9", "3.11", "3.13")
    ),
    Case("python-3.11-method-args-g", "python-method-g-args", "3.11", (), METHOD.format(f="g")),
    *(
        Case(f"python-{p}-key-a", "python-keyerror-a", p, (), "d = {'b': 1}; d['a']")
        for p in ("3.11", "3.12")
    ),
    Case("python-3.11-key-b", "python-keyerror-b", "3.11", (), "d = {'a': 1}; d['b']"),
    *(
        Case(f"python-{p}-recursion", "python-recursion", p, (), "def f():\n    f()\nf()\n")
        for p in ("3.9", "3.11", "3.12")
    ),
    *(
        Case(f"python-{p}-syntax-comma", "python-syntax-missing-comma", p, (), "print(1 2)")
        for p in ("3.9", "3.10", "3.13")
    ),
    # pytest: the failing test is the identity; pytest 7 and 9, Python 3.10 to 3.13
    *(
        Case(
            f"pytest-{v}-py{p}-{t}",
            f"pytest-{t}",
            p,
            (f"pytest=={v}",),
            argv=("{py}", "-m", "pytest", "-p", "no:cacheprovider", f"test_corpus.py::{t}"),
            files={"test_corpus.py": PYTEST_FILE},
        )
        for v, p in (("7.4.4", "3.10"), ("8.3.5", "3.11"), ("9.2.0", "3.13"))
        for t in ("test_one", "test_two")
    ),
    # segfaults: bare signal, faulthandler's report, and a shell's report (pid differs per run)
    *(Case(f"segv-py{p}-plain", "segv-signal", p, (), SEGV) for p in ("3.11", "3.12")),
    *(
        Case(
            f"segv-py{p}-faulthandler",
            "segv-signal",
            p,
            (),
            argv=("{py}", "-X", "faulthandler", "-c", SEGV),
        )
        for p in ("3.11", "3.12")
    ),
    *(
        Case(
            f"segv-py3.11-bash-run{i}",
            "segv-bash",
            "3.11",
            (),
            argv=("bash", "-c", f'"{{py}}" -c "{SEGV}"; exit $?'),
        )
        for i in (1, 2)
    ),
    # a training loop whose loss goes to nan at a seed-dependent step
    *(
        Case(
            f"train-nan-py{p}-seed{s}",
            "train-loss-nan",
            p,
            (),
            argv=("{py}", "train.py", str(s)),
            files={"train.py": TRAIN_NAN},
        )
        for p, s in (("3.11", 1), ("3.12", 2))
    ),
    # torch (CPU build from the local wheel): NaN in backward, and CUDA / NCCL asked of a CPU build
    Case(
        "torch-2.13.0-py3.11-anomaly-nan",
        "torch-anomaly-log-nan",
        "3.11",
        ("torch==2.13.0+cpu",),
        "import torch\ntorch.autograd.set_detect_anomaly(True)\n"
        "x = torch.tensor([-1.0, 2.0], requires_grad=True)\ntorch.sqrt(x).sum().backward()\n",
        find_links="/opt/wheels",
    ),
    Case(
        "torch-2.13.0-py3.11-no-cuda",
        "torch-not-compiled-with-cuda",
        "3.11",
        ("torch==2.13.0+cpu",),
        "import torch; torch.zeros(1, device='cuda')",
        find_links="/opt/wheels",
    ),
    Case(
        "torch-2.13.0-py3.11-no-nccl",
        "torch-no-nccl",
        "3.11",
        ("torch==2.13.0+cpu",),
        "import os, torch.distributed as d\nos.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29533')\n"
        "d.init_process_group('nccl', rank=0, world_size=1)\n",
        find_links="/opt/wheels",
    ),
]


def interpreter(version: str) -> Path:
    path = PYENV / py(version) / "bin" / "python"
    if not path.exists():
        raise SystemExit(f"no Python {version} at {path}: install it with pyenv")
    return path


def venv_for(case: Case, work: Path) -> Path:
    key = hashlib.sha256(repr((case.python, case.packages, case.find_links)).encode()).hexdigest()[:12]
    venv = work / "venvs" / f"py{case.python}-{key}"
    if (venv / ".ok").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([UV, "venv", "-q", "--python", str(interpreter(case.python)), str(venv)], check=True)
    if case.packages:
        extra = ["--find-links", case.find_links] if case.find_links else []
        subprocess.run(
            [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *extra, *case.packages],
            check=True,
        )
    (venv / ".ok").write_text("")
    return venv


def run(case: Case, work: Path) -> dict[str, object]:
    venv = venv_for(case, work)
    vpy = str(venv / "bin" / "python")
    argv = [a.replace("{py}", vpy) for a in case.argv] if case.argv else [vpy, "-c", case.code or ""]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    with tempfile.TemporaryDirectory(prefix="case-", dir=work) as tmp:
        for name, text in case.files.items():
            Path(tmp, name).write_text(text)
        proc = subprocess.run(
            argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    for stream, text in (("out", proc.stdout), ("err", proc.stderr)):
        path = HERE / "captured" / f"{case.id}.{stream}"
        if text:
            path.write_text(text)
        else:
            path.unlink(missing_ok=True)
    rc, sig = (
        (None, signal.Signals(-proc.returncode).name) if proc.returncode < 0 else (proc.returncode, None)
    )
    shown = [a.replace(vpy, "python") for a in argv]
    return {
        "id": case.id,
        "group": case.group,
        "python": py(case.python),
        "packages": list(case.packages),
        "argv": shown,
        "files": sorted(case.files),
        "rc": rc,
        "signal": sig,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only cases whose id contains this")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sig-corpus")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    (HERE / "captured").mkdir(exist_ok=True)
    manifest_path = HERE / "corpus.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"captured": []}
    by_id = {c["id"]: c for c in manifest["captured"]}
    for case in CASES:
        if args.only not in case.id:
            continue
        try:
            entry = run(case, args.work)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, SystemExit) as exc:
            print(f"{case.id}: NOT CAPTURED ({exc})", file=sys.stderr)
            continue
        by_id[case.id] = entry
        print(f"{case.id}: rc={entry['rc']} signal={entry['signal']}", file=sys.stderr)
    order = {c.id: i for i, c in enumerate(CASES)}
    manifest["captured"] = sorted(by_id.values(), key=lambda c: order.get(c["id"], len(order)))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
