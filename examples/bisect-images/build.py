"""The build step of the demo images: "compile" each source's ``src/`` into ``build/``.

Each module costs ``$BUILD_DELAY`` seconds (0.4 by default: a compiler's work) unless the build
cache ``$BUILD_CACHE`` (a directory, e.g. a ``--cache-mount``) already holds its output, keyed by
the content's hash, as a Bazel disk cache or ccache would.  Run in the image as ``python3 /opt/build.py``.
"""

import hashlib
import os
import pathlib
import shutil
import time

SOURCES = [pathlib.Path(p) for p in os.environ.get("SOURCES", "/opt/dep:/opt/lib").split(":")]
CACHE = pathlib.Path(os.environ["BUILD_CACHE"]) if os.environ.get("BUILD_CACHE") else None
DELAY = float(os.environ.get("BUILD_DELAY", "0.4"))

hits = misses = 0
for root in SOURCES:
    out = root / "build"
    shutil.rmtree(out, ignore_errors=True)
    for src in sorted((root / "src").rglob("*.py")):
        dest = out / src.relative_to(root / "src")
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_bytes()
        key = hashlib.sha256(text).hexdigest()
        cached = CACHE / key if CACHE is not None else None
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, dest)
            hits += 1
            continue
        time.sleep(DELAY)  # the compiler at work
        dest.write_bytes(text)
        misses += 1
        if cached is not None:
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(text)
            tmp.replace(cached)
print(f"built {hits + misses} modules ({hits} from the cache)")
