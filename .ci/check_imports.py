#!/usr/bin/env python3
"""Every module sleuth's code imports, even lazily inside a function, imports in THIS interpreter.

    /path/to/clean-venv/bin/python .ci/check_imports.py

Run by ``.ci/smoke`` with the clean venv's python (``pip install .``, no extras).  Importing each
sleuth module is not enough: third-party imports are often deferred into functions (start-up
time), so a forgotten dependency only fails when that code path runs (``bisect pypi`` and
``packaging``).  This parses the installed package's sources instead and imports every
top-level name they import.  Skipped: the standard library, sleuth itself, relative imports,
``if TYPE_CHECKING:`` blocks and imports guarded by ``try: ... except ImportError`` (or a broader
handler): those are optional probes (torch, jax).  Exit 1 listing each missing module with
the file and line that needs it.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _guarded(handlers: list[ast.ExceptHandler]) -> bool:
    for h in handlers:
        if h.type is None:
            return True
        names = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        if any(isinstance(n, ast.Name) and n.id in _GUARDS for n in names):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, skip: bool = False) -> list[tuple[str, int, bool]]:
    """``(top-level module, line, optional)`` for every absolute import under ``tree``."""
    found: list[tuple[str, int, bool]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno, skip) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno, skip))
        elif isinstance(node, ast.Try):
            guarded = skip or _guarded(node.handlers)
            for part in node.body:
                found += _imports(ast.Module(body=[part], type_ignores=[]), guarded)
            for handler in node.handlers:
                found += _imports(handler, skip)
            found += _imports(ast.Module(body=[*node.orelse, *node.finalbody], type_ignores=[]), skip)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            found += _imports(ast.Module(body=node.body, type_ignores=[]), True)
            found += _imports(ast.Module(body=node.orelse, type_ignores=[]), skip)
        else:
            found += _imports(node, skip)
    return found


def main() -> int:
    import sleuth

    root = Path(sleuth.__file__).parent
    needed: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line, optional in _imports(tree):
            if optional or name in sys.stdlib_module_names or name in ("sleuth", "__future__"):
                continue
            needed.setdefault(name, []).append(f"{path.relative_to(root.parent)}:{line}")
    missing = []
    for name in sorted(needed):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc}), needed at {', '.join(needed[name][:3])}")
    if missing:
        print("modules sleuth imports that this install lacks (declare them in pyproject.toml):")
        print("\n".join(f"  {m}" for m in missing))
        return 1
    print(f"{len(needed)} third-party modules, all importable: {', '.join(sorted(needed))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
