"""Parsing the flags of ``sleuth bisect`` that are specific to it (several repositories, performance mode).

Pure functions: they turn raw flag values into sources, specs and options, or raise a
``UsageError`` that names the flag; the CLI module only wires them to click (the shared workload
and oracle flags are parsed by ``sleuth.cli._options``).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING, Any

from sleuth.backends.choice import check_backend
from sleuth.bisect.git import GitSource
from sleuth.bisect.multigit import MultiGitSource, RepoSpec
from sleuth.cli._options import (
    check_cwd,
    oracle_from_flags,
    parse_backend,
    parse_env,
    parse_gpus,
    parse_metrics,
    parse_timeout,
)
from sleuth.errors import UsageError

if TYPE_CHECKING:  # statistics (through perf) only with --metric
    from sleuth.bisect.perf import PerfSpec

__all__ = [
    "JOBS_MAX",
    "chain_source",
    "check_program",
    "git_source",
    "image_source",
    "perf_spec",
    "resolve_skip",
    "spec_and_options",
]


#: the most tests one bisection may run at once (each is a process, a checkout, maybe a venv)
JOBS_MAX = 1024


def git_source(repos: tuple[str, ...], goods: tuple[str, ...], bads: tuple[str, ...], *, build: str | None,
               first_parent: bool, paths: tuple[str, ...] = (), find_fix: bool = False,
               skip: tuple[str, ...] = ()) -> GitSource | MultiGitSource:  # fmt: skip
    """One ``--repo PATH`` (plain refs) or several ``--repo NAME=PATH`` (``NAME=REF`` refs)."""
    if build is not None and not build.strip():
        raise UsageError("--build '': an empty command", hint="give a shell command, e.g. --build 'make -j8'")
    for p in paths:
        if not p.strip() or "\0" in p:
            raise UsageError(f"--path {p!r}: not a path", hint="e.g. --path src/kernels")
    if len(repos) == 1 and "=" not in repos[0]:
        for flag, vals in (("--good", goods), ("--bad", bads)):
            if len(vals) != 1:
                raise UsageError(f"{flag} {' '.join(vals)}: give exactly one REF with a single --repo PATH")
        if not repos[0].strip() or not os.path.isdir(repos[0]):
            raise UsageError(f"--repo {repos[0]!r}: no such directory")
        src: GitSource | MultiGitSource = GitSource(
            os.path.abspath(repos[0]), goods[0], bads[0], build=build, first_parent=first_parent,
            paths=paths, find_fix=find_fix,
        )  # fmt: skip
    else:
        for flag, used in (("--path", bool(paths)), ("--find-fix", find_fix), ("--skip", bool(skip))):
            if used:
                raise UsageError(f"{flag} works with a single --repo PATH",
                                 hint="bisect the repository that changed on its own")  # fmt: skip
        src = MultiGitSource(_repo_specs(repos, goods, bads), build=build, first_parent=first_parent)
    return src


def _check_runtime(runtime: str) -> None:
    """``--runtime``'s program is installed: a usage error before any run dir (it was an
    infrastructure error in the first test, exit 4, or 'cannot list the tags')."""
    from sleuth.environments.runtimes import Runtime

    exe = Runtime.parse(runtime).executable
    if shutil.which(exe) is None:
        where = "run it where Slurm's srun (with pyxis) is" if runtime == "pyxis" else f"install {exe}"
        raise UsageError(f"--runtime {runtime}: {exe} is not on PATH",
                         hint=f"{where}, or choose another --runtime")  # fmt: skip


def _env_names(kw: dict[str, Any]) -> tuple[str, ...]:
    """The names of ``--env K=V``: they reach every container (values travel in the client's env)."""
    return tuple(parse_env(kw.get("env") or ()))


def image_source(
    kw: dict[str, Any],
    *,
    template: str,
    end_date: str | None,
    start_date: str | None,
    runtime: str,
    mounts: tuple[str, ...],
    date_format: str,
    threshold_days: int,
    step_back: bool,
    list_tags: bool,
    sources: tuple[str, ...],
    build: str | None,
    cache_mount: str | None,
) -> Any:
    """``sleuth bisect images``'s flags as an ImageSource; ``--end-date`` defaults to the newest tag."""
    from sleuth.bisect.candidates import parse_date
    from sleuth.bisect.chain import host_mounts, parse_sources
    from sleuth.bisect.imagesource import ImageSource

    if end_date:
        parse_date(end_date, "--end-date")
    if start_date:
        parse_date(start_date, "--start-date")
    mounts = host_mounts(mounts, must_exist=runtime != "pyxis")
    if cache_mount is not None:  # made at the first build when it does not exist
        (cache_mount,) = host_mounts((cache_mount,), "--cache-mount", must_exist=False)
    parse_sources(sources)
    for flag, used in (("--build", build is not None), ("--cache-mount", cache_mount is not None)):
        if used and not sources:
            raise UsageError(f"{flag} needs --source NAME=PATH (the commits stage inside the image)")
    if build is not None and not build.strip():
        raise UsageError("--build '': an empty command", hint="e.g. --build 'pip install -e /opt/lib'")
    if not end_date and not list_tags:
        raise UsageError(
            "--no-tag-listing needs --end-date YYYY-MM-DD", hint="its default is the newest listed tag"
        )
    if step_back and not start_date:
        raise UsageError("--step-back needs --start-date", hint="without it, sleuth steps back from the end")
    if not start_date and any("=" not in m for m in kw["metric"]):
        raise UsageError("--metric NAME (performance mode) needs --start-date with sleuth bisect images")
    if not start_date and kw["find_fix"]:
        raise UsageError("--find-fix needs --start-date with sleuth bisect images (a date whose image fails)")
    if step_back and kw["find_fix"]:
        raise UsageError("--step-back does not combine with --find-fix")
    src = ImageSource(
        template,
        start_date or "",
        end_date or "",
        runtime=runtime,
        mounts=mounts,
        date_format=date_format,
        env_names=_env_names(kw),
        threshold_days=threshold_days,
        step_back=step_back,
        list_tags=list_tags,
        sources=sources,
        build=build,
        cache_mount=cache_mount,
    )
    _check_runtime(runtime)  # after the flags ImageSource checks, before anything is listed
    if end_date and not start_date:
        src.step_end()  # the gallop starts from an image that exists
    if not end_date:
        newest = src.newest()
        if newest is None and src.available() is not None:
            raise UsageError(
                f"--end-date: {runtime} lists no tag of {template} (with --date-format {date_format})",
                hint="check --template and --date-format, or give --end-date YYYY-MM-DD",
            )
        if newest is None:
            raise UsageError(
                f"--end-date: cannot list the tags of {template} with {runtime}",
                hint="give --end-date YYYY-MM-DD",
            )
        src.end = newest
    return src


def chain_source(
    kw: dict[str, Any],
    *,
    passing: str,
    failing: str,
    sources: tuple[str, ...],
    runtime: str,
    mounts: tuple[str, ...],
    build: str | None,
    cache_mount: str | None,
) -> Any:
    """``sleuth bisect image-commits``'s flags as a ChainSource (reads both images' commits)."""
    from sleuth.bisect.chain import ChainSource, host_mounts

    for flag in ("find_fix", "skip"):
        if kw.get(flag):
            raise UsageError(f"--{flag.replace('_', '-')} does not work with sleuth bisect image-commits")
    if passing == failing:
        raise UsageError(f"--passing and --failing are the same image ({passing})")
    host_mounts(mounts, must_exist=runtime != "pyxis")  # the flags first, then the runtime
    _check_runtime(runtime)
    return ChainSource.open(
        passing=passing,
        failing=failing,
        sources=sources,
        runtime=runtime,
        mounts=mounts,
        build=build,
        cache_mount=cache_mount,
        env_names=_env_names(kw),
    )


def resolve_skip(source: Any, labels: list[str] | None, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--skip`` values as candidate labels (full SHAs, versions, tags, lines) inside the range."""
    if not values:
        return ()
    if labels is None:
        raise UsageError(
            "--skip needs --start-date with sleuth bisect images", hint="the range is known only then"
        )
    resolved: tuple[str, ...] = source.resolve_skip(tuple(values), labels)
    return resolved


def _pairs(flag: str, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        name, sep, rest = v.partition("=")
        if not sep or not rest or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UsageError(
                f"{flag} {v!r}: expected NAME=VALUE with several repositories, e.g. {flag} xla=HEAD~9"
            )
        if name in out:
            raise UsageError(f"{flag} {v!r}: {name} given twice")
        out[name] = rest
    return out


def _repo_specs(
    repos: tuple[str, ...], goods: tuple[str, ...], bads: tuple[str, ...]
) -> tuple[RepoSpec, ...]:
    paths, good, bad = _pairs("--repo", repos), _pairs("--good", goods), _pairs("--bad", bads)
    for flag, refs in (("--good", good), ("--bad", bad)):
        if set(refs) != set(paths):
            missing = sorted(set(paths) - set(refs)) or sorted(set(refs) - set(paths))
            raise UsageError(
                f"{flag}: needs NAME=REF for each --repo NAME (not matching: {', '.join(missing)})"
            )
    for name, path in paths.items():
        if not os.path.isdir(path):
            raise UsageError(f"--repo {name}={path}: no such directory")
    return tuple(RepoSpec(n, os.path.abspath(p), good[n], bad[n]) for n, p in paths.items())


def perf_spec(kw: dict[str, Any]) -> PerfSpec | None:
    """``--metric NAME`` (no ``=``) with ``--direction`` / ``--threshold``: the performance mode."""
    names = [m for m in kw["metric"] if "=" not in m]
    if len(names) > 1:
        raise UsageError(f"--metric {names[1]}: only one performance metric per bisection")
    if not names:
        for flag in ("direction", "threshold"):
            if kw.get(flag) is not None:
                raise UsageError(f"--{flag} needs a performance metric: add --metric NAME")
        return None
    name = names[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise UsageError(f"--metric {name!r}: not a metric name")
    threshold = 5.0 if kw.get("threshold") is None else kw["threshold"]
    if not 0 <= threshold < 1000:
        raise UsageError(f"--threshold {threshold}: must be a percentage in [0, 1000), e.g. 5")
    from sleuth.bisect.perf import Direction, PerfSpec

    return PerfSpec(name=name, direction=Direction(kw.get("direction") or "lower"), threshold=threshold)


def spec_and_options(kw: dict[str, Any], default_skip: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """The workload spec, the oracle and the search options from the CLI's keyword arguments."""
    from sleuth.bisect.driver import Options
    from sleuth.bisect.policy import parse_flaky
    from sleuth.model import MAX_TRIALS, TrialSpec
    from sleuth.oracle import build_oracle

    gpus = parse_gpus(kw.get("gpus"))  # a run dir journaled before --gpus existed has no "gpus"
    jobs = kw["jobs"] if kw["jobs"] is not None else max(1, len(gpus))
    backend = parse_backend(kw.get("backend"), kw.get("backend_opt") or ())  # absent before backends
    check_backend(backend, jobs, gpus)
    if jobs > JOBS_MAX:
        raise UsageError(f"--jobs {jobs}: at most {JOBS_MAX} tests at once", hint="e.g. --jobs 4")
    if not 0.5 <= kw["confidence"] < 1:
        raise UsageError(f"--confidence {kw['confidence']}: must be in [0.5, 1), e.g. 0.95")
    if kw["max_tests"] is not None and not 1 <= kw["max_tests"] <= MAX_TRIALS:
        raise UsageError(f"--max-tests {kw['max_tests']}: must be in 1..{MAX_TRIALS}")
    if kw.get("name") is not None:
        from sleuth.model import NAME_MAX, check_name

        name = kw["name"]
        if not check_name(name):
            shown = repr(name[:40]) + ("..." if len(name) > 40 else "")
            hint = f"letters, digits, '_', '.', '-', at most {NAME_MAX} characters"
            raise UsageError(f"--name {shown}: not a run name ({len(name)} characters)", hint=hint)
    timeout, grace = parse_timeout(kw["timeout"], kw["kill_grace"])
    cfg = oracle_from_flags(kw, default_skip=default_skip)
    cwd = check_cwd(kw["cwd"])
    spec = TrialSpec(
        argv=tuple(kw["cmd"]),
        env={**os.environ, **parse_env(kw["env"])},
        cwd=cwd,
        timeout_s=timeout,
        kill_grace_s=grace,
        metrics=parse_metrics([m for m in kw["metric"] if "=" in m], kw["metric_series"]),
    )
    opts = Options(
        jobs=jobs,
        gpus=gpus,
        flaky=parse_flaky(kw["flaky"]),
        confidence=kw["confidence"],
        any_failure=kw["any_failure"],
        check_ends=not kw["skip_precondition_checks"],
        max_tests=kw["max_tests"],
        perf=perf_spec(kw),
        find_fix=bool(kw.get("find_fix")),
        skip=tuple(kw.get("skip") or ()),
        backend=backend,
    )
    return spec, build_oracle(cfg), opts


def check_program(source: Any, kw: dict[str, Any]) -> None:
    """A test command that no candidate can run is a usage error before a run dir exists.

    Checked where nothing a candidate brings can provide it: ``list``, and ``git`` without
    ``--build``, for a program named without a slash and not on the test's ``PATH`` (``--env PATH``
    included); a ``pypi`` venv, a build or a container may bring it, and a path with a slash may be
    a file of some commits only.
    """
    import shutil

    program = str(kw["cmd"][0])
    if source.kind not in ("list", "git") or getattr(source, "build", None) or os.sep in program:
        return
    path = {**os.environ, **parse_env(kw.get("env") or ())}.get("PATH", os.defpath)
    if any(not os.path.isabs(d) for d in path.split(os.pathsep)):  # found from each test's own folder
        return
    if shutil.which(program, path=path) is None:
        raise UsageError(f"the test command {program!r}: not found on PATH",
                         hint="install it, fix the spelling, or give its path")  # fmt: skip
