"""The commits stage: inside the failing image, bisect the commits of the sources baked into it.

``sleuth bisect images ... --source NAME=PATH`` continues here once the date stage has a last good
image L and a first bad image F; ``sleuth bisect image-commits --passing L --failing F --source
NAME=PATH`` runs this stage alone.  PATH is a git repository inside the images (``/opt/jax``).

* Each source's repository is copied out of F once (``create`` + ``cp``, cached under
  ``<cache>/image-sources/<image id>/``; nothing runs), and L's commit is read from L's ``HEAD``
  (:mod:`sleuth.bisect.imagegit`).
  F's repository must hold L's commit (the history is in the failing image, as jax-toolbox-triage
  assumes).
* The candidates and the blame are :class:`~sleuth.bisect.multigit.MultiGitSource`'s: the first source
  that changed is the primary, the others are aligned by commit time, and a found stage is settled
  by the driver's blame probe, so the answer blames one source's commit and gives the reference
  commits of the others.
* Every test runs in F with each source's candidate commit checked out in the cache (a worktree of
  a clone that borrows the copied objects) and mounted over PATH; the clone and the copy are
  mounted at their own paths so that git works inside.  ``--build CMD`` runs in the same container
  first (log in the test's ``build.log``, time in ``build.json``); a failed build exits 125, a
  SKIP.  With ``--build`` each commit keeps its own checkout, so a revisit rebuilds incrementally,
  and ``--cache-mount HOST:CONTAINER`` keeps a build cache (Bazel's disk cache, ccache) across all
  of them.  The build time of every test is journaled (``build`` events) and in the summary.

:func:`continue_chain` runs the stage in ``<run dir>/commits/`` (its own journal, summary, report
and ``first-bad``/``last-good``); a resume of the run continues it there.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.bisect.candidates import Candidate, Prepared, with_candidate
from sleuth.bisect.git import env_name
from sleuth.bisect.imagegit import copied_git, has_commit, head_commit
from sleuth.bisect.multigit import MultiGitSource, RepoSpec, decode
from sleuth.errors import InfrastructureError, SleuthError, UsageError
from sleuth.model import TrialSpec

if TYPE_CHECKING:
    from sleuth.bisect.driver import Driver
    from sleuth.bisect.strategies import SearchResult

__all__ = ["ChainSource", "continue_chain", "host_mounts", "parse_sources"]

log = logging.getLogger(__name__)

#: runs the build (if any) and then the test, in one container: what the build installs is there
_SCRIPT = r"""
if [ -n "${SLEUTH_BUILD:-}" ]; then
  read t0 _ < /proc/uptime
  sh -c "$SLEUTH_BUILD" > "$SLEUTH_OUTPUT_DIR/build.log" 2>&1
  rc=$?
  read t1 _ < /proc/uptime
  printf '{"rc": %d, "start": %s, "end": %s}\n' "$rc" "$t0" "$t1" > "$SLEUTH_OUTPUT_DIR/build.json"
  if [ "$rc" -ne 0 ]; then
    echo "sleuth: the build failed (exit $rc); its log is build.log" >&2
    exit 125
  fi
fi
exec "$@"
"""


def parse_sources(values: tuple[str, ...] | list[str], flag: str = "--source") -> dict[str, str]:
    """``NAME=PATH`` pairs (PATH absolute, inside the image) in the order given."""
    out: dict[str, str] = {}
    for v in values:
        name, sep, path = str(v).partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path.startswith("/"):
            raise UsageError(
                f"{flag} {v!r}: expected NAME=PATH with an absolute path inside the image",
                hint=f"e.g. {flag} jax=/opt/jax-source",
            )
        if name in out:
            raise UsageError(f"{flag} {v!r}: {name} given twice")
        out[name] = path.rstrip("/") or "/"
    return out


def host_mounts(
    values: tuple[str, ...] | list[str], flag: str = "--mount", *, must_exist: bool = True
) -> tuple[str, ...]:
    """``SRC:DST[:ro]`` values with SRC made absolute (a resume from another directory mounts the
    same paths); with ``must_exist`` (docker, podman: not pyxis, whose paths are the compute
    node's) a SRC that is not on this host is a usage error naming the flag (the runtime would only
    say so in every test, after the run dir exists)."""
    from sleuth.environments.container import Mount

    out: list[str] = []
    for v in values:
        m = Mount.parse(str(v), flag)
        if must_exist and not os.path.exists(m.src):
            raise UsageError(f"{flag} {v!r}: {m.src} does not exist on this host",
                             hint="create it, or fix the path before the ':'")  # fmt: skip
        out.append(m.spec())
    return tuple(out)


@dataclass(slots=True)
class ChainSource(MultiGitSource):
    """The commits of ``sources`` between the passing and the failing image, tested in the failing one."""

    passing: str = ""
    failing: str = ""
    #: ``NAME=PATH`` (PATH inside the images), in the order given
    sources: tuple[str, ...] = ()
    runtime: str = "podman"
    mounts: tuple[str, ...] = ()
    cache_mount: str | None = None
    env_names: tuple[str, ...] = ()
    kind: str = "image-commits"
    #: which sources did not change between the images (kept at their commit)
    unchanged: tuple[str, ...] = ()
    _prepared: Any = field(default=None, init=False, repr=False)

    @classmethod
    def open(
        cls,
        *,
        passing: str,
        failing: str,
        sources: tuple[str, ...] | list[str],
        runtime: str = "podman",
        mounts: tuple[str, ...] | list[str] = (),
        build: str | None = None,
        cache_mount: str | None = None,
        env_names: tuple[str, ...] | list[str] = (),
    ) -> ChainSource:
        """Read each source's commit in both images (copying the failing image's repositories)."""
        mounts = host_mounts(tuple(mounts), must_exist=runtime != "pyxis")
        if cache_mount is not None:  # made at the first test when it does not exist
            (cache_mount,) = host_mounts((cache_mount,), "--cache-mount", must_exist=False)
        if build is not None and not build.strip():
            raise UsageError("--build '': an empty command", hint="e.g. --build 'pip install -e /opt/lib'")
        paths = parse_sources(tuple(sources))
        if not paths:
            raise UsageError(
                "--source NAME=PATH: give at least one", hint="e.g. --source jax=/opt/jax-source"
            )
        changed: list[RepoSpec] = []
        same: list[RepoSpec] = []
        for name, path in paths.items():
            repo = copied_git(runtime, failing, path, name, whole=True)
            bad = head_commit(repo)
            good = head_commit(copied_git(runtime, passing, path, name, whole=False))
            if bad is None or good is None:
                which = passing if good is None else failing
                raise UsageError(f"--source {name}={path}: cannot read HEAD of the repository in {which}")
            if good != bad and not has_commit(repo, good):
                raise UsageError(
                    f"--source {name}={path}: {passing}'s commit {good[:12]} is not in the repository "
                    f"of {failing}",
                    hint="the failing image needs the history (not a shallow clone)",
                )
            (changed if good != bad else same).append(RepoSpec(name, str(repo), good, bad))
        if not changed:
            raise UsageError(
                f"no --source changed between {passing} and {failing}",
                hint="the change is elsewhere in the image (add the source that changed)",
            )
        return cls(
            repos=(*changed, *same),
            build=build,
            passing=passing,
            failing=failing,
            sources=tuple(f"{n}={p}" for n, p in paths.items()),
            runtime=runtime,
            mounts=mounts,
            cache_mount=cache_mount,
            env_names=tuple(env_names),
            unchanged=tuple(r.name for r in same),
        )

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ChainSource:
        """Rebuild it on resume (the copies are cached)."""
        keys = ("passing", "failing", "sources", "runtime", "mounts", "build", "cache_mount", "env_names")
        return cls.open(**{k: cfg[k] for k in keys if k in cfg})

    def paths(self) -> dict[str, str]:
        """``{name: path inside the image}``."""
        return parse_sources(self.sources)

    def _environment(self) -> Any:
        from sleuth.environments.container import ContainerEnvironment, Mount, Runtime

        if self._prepared is None:
            env = ContainerEnvironment(
                image=self.failing,
                runtime=Runtime.parse(self.runtime),
                gpus=None,
                rocm=None,
                mounts=tuple(Mount.parse(m) for m in self.mounts),
            )
            self._prepared = env.prepare()
        return self._prepared

    def prepare(self, cand: Candidate, spec: TrialSpec, cand_dir: Path) -> Prepared:
        """Check every source's commit out, mount them over the image's paths, build and test in it."""
        from sleuth.environments.container import Mount, PreparedContainer

        base: PreparedContainer = self._environment()
        vec = decode(cand.label)
        where = self.paths()
        mounts = list(base.env.mounts)
        extra = {"SLEUTH_CANDIDATE": cand.label}
        for r in self.repos:
            co = self._checkouts_of(r)
            tree = co.cached(vec[r.name]) if self.build else co.checkout(vec[r.name])
            # the worktree's .git names the clone, whose alternates name the copy: both at their own paths
            mounts += [
                Mount(str(tree), where[r.name]),
                Mount(str(co.dir), str(co.dir)),
                Mount(r.path, r.path, readonly=True),
            ]
            extra[env_name(r.name)] = where[r.name]
        if self.cache_mount:
            cache = Mount.parse(self.cache_mount, "--cache-mount")
            Path(cache.src).mkdir(parents=True, exist_ok=True)
            mounts.append(cache)
        if self.build:
            extra["SLEUTH_BUILD"] = self.build
        forward = {k: spec.env[k] for k in self.env_names if k in spec.env}
        prepared = replace(base, env=replace(base.env, mounts=tuple(mounts), forward_env=forward))
        inner = with_candidate(spec, cand)
        if self.build:
            inner = inner.with_argv(("sh", "-c", _SCRIPT, "sleuth-build", *spec.argv))
        return Prepared(prepared.wrap(inner, extra_env=extra))

    def builds(self, driver: Driver) -> list[dict[str, Any]]:
        """``[{label, trial_dir, seconds, rc}]`` of every test that built; journals the new ones
        (``build`` events, once per test)."""
        done = {e.get("trial_dir") for e in driver.run_dir.events() if e.get("event") == "build"}
        out = []
        for ev in sorted(driver.events, key=lambda e: e.seq):
            path = driver.run_dir.path / ev.trial_dir / "build.json"
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                row = {
                    "label": ev.label,
                    "trial_dir": ev.trial_dir,
                    "rc": int(rec["rc"]),
                    "seconds": round(float(rec["end"]) - float(rec["start"]), 2),
                }
            except (OSError, ValueError, KeyError, TypeError):
                continue
            out.append(row)
            if ev.trial_dir not in done:
                driver.run_dir.journal.append("build", **row)
        return out

    def summary_extra(self, driver: Driver) -> dict[str, Any]:
        """What the summary adds for this stage: the images, the sources, the builds."""
        return {
            "images": {"passing": self.passing, "failing": self.failing},
            "sources": self.paths(),
            "unchanged_sources": list(self.unchanged),
            "builds": self.builds(driver),
        }

    def config(self) -> dict[str, Any]:
        """The flags that rebuild it."""
        return {
            "kind": self.kind,
            "passing": self.passing,
            "failing": self.failing,
            "sources": list(self.sources),
            "runtime": self.runtime,
            "mounts": list(self.mounts),
            "build": self.build,
            "cache_mount": self.cache_mount,
            "env_names": list(self.env_names),
        }


def continue_chain(driver: Driver, res: SearchResult) -> dict[str, Any]:
    """After the date stage: the commits stage in ``<run dir>/commits/``, its summary (also written there)."""
    from sleuth.bisect.report import summarize, write_outputs
    from sleuth.bisect.strategies import SearchStatus
    from sleuth.journal import RunDir, read_journal

    src = driver.source
    if res.status is not SearchStatus.FOUND or res.first_bad is None or res.last_good is None:
        return {"status": "not_run", "note": "the date stage found no first bad image"}
    passing, failing = driver.labels[res.last_good], driver.labels[res.first_bad]
    sub = driver.run_dir.path / "commits"
    journal = sub / "journal.jsonl"
    if journal.is_file():
        end = next((e for e in reversed(read_journal(journal)) if e["event"] == "end"), None)
        if end is not None and isinstance(end.get("summary"), dict):
            return dict(end["summary"])  # finished before a resume: nothing to do
    try:
        chain = ChainSource.open(
            passing=passing,
            failing=failing,
            sources=getattr(src, "sources", ()),
            runtime=getattr(src, "runtime", "podman"),
            mounts=getattr(src, "mounts", ()),
            build=getattr(src, "build", None),
            cache_mount=getattr(src, "cache_mount", None),
            env_names=getattr(src, "env_names", ()),
        )
    except (UsageError, InfrastructureError) as exc:
        driver.run_dir.journal.append("commits stage", error=str(exc))
        return {"status": "not_found", "note": str(exc), "images": {"passing": passing, "failing": failing}}
    sub.mkdir(exist_ok=True)
    rd = RunDir(sub)
    if driver.run_dir.scrub is not None:
        rd.hide(driver.run_dir.scrub)
    events = rd.events()
    if not any(e["event"] == "start" for e in events):
        rd.journal.append("start", source=chain.config(), stage="commits", images=[passing, failing])
    labels = next((e["labels"] for e in events if e["event"] == "candidates"), None)
    if labels is None:
        labels = chain.resolve()
        rd.journal.append("candidates", labels=labels, source=chain.config())
    tests = [e for e in events if e["event"] == "test"]
    names = ", ".join(r.name for r in chain.repos)
    header = (f"commits stage: {names} between {passing} and {failing}, tested in {failing} "
              f"({len(labels)} candidates) -> {sub}")  # fmt: skip
    log.info("%s", header)
    if driver.on_stage is not None:
        driver.on_stage(header)  # fmt: skip
    from sleuth.bisect.driver import Driver as _Driver

    opts = replace(driver.opt, skip=(), find_fix=False)
    try:
        stage = _Driver(
            chain,
            driver.spec,
            driver.oracle,
            rd,
            opts,
            replay=tests if events else None,
            on_test=driver.on_test,
            labels=labels,
        )
        result, _ = stage.run()
    except SleuthError:
        rd.close()
        raise
    finally:
        chain.close()
    summary = summarize(stage, result)
    summary.update(chain.summary_extra(stage))
    write_outputs(stage, summary)
    rd.close()
    return summary
