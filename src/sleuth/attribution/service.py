"""The HTTP attribution service (FastAPI): accept logs from many nodes, analyse in the background.

This module owns the routes, the request models and the reading of logs by path; the analysis
threads are :mod:`._worker`'s, the body's size and time limits :mod:`._bodylimit`'s, the records
:mod:`.store`'s.

* ``POST /v1/attributions`` ``{job_id, cycle_id, logs: [{name, text}] | paths: [...], progress, node,
  nodes, job_start}`` answers 202 once the request is committed to SQLite; the same (job_id,
  cycle_id) posted again returns the existing record (a node that already posted is not stored
  twice).  The analysis starts when ``nodes`` distinct nodes have posted or ``gather_s`` after the
  first post; it leaves out findings timed before the earliest ``job_start`` posted (the cycle's
  start: an earlier cycle's lines in a kernel log), else before a start read from the logs.
* ``GET /v1/attributions/{job_id}/{cycle_id}?wait=S``: the record (``status`` pending, running,
  done or error, with the report when done, its ``notes`` included) after waiting at most S
  seconds for it to finish.
* ``PUT/GET /v1/attributions/{job_id}/{cycle_id}/outcome``: the leader's recorded outcome (written
  once; a different second write is 409).
* A waiting request reads its record again only when the store's change counter for it moved
  (:meth:`Store.version`, memory read on the event loop): waiting clients hold no thread-pool
  worker and make no database read while nothing changes.
* ``GET /healthz``; OpenAPI at ``/openapi.json``.

Limits: a body over ``max_body`` bytes is 413, a body not received within ``body_timeout_s`` 408 (a
client that stalls mid-body: :mod:`._bodylimit`; the headers' time is bounded by :mod:`._headers`),
more than ``max_logs`` logs is 422, one log over ``max_log_bytes`` is 413, a malformed body 422,
each with a message.  ``paths`` are read only under the ``log_roots`` the service was started with
(422 otherwise).  A database error that may pass (SQLite locked, a dropped connection) is tried again
with a bounded backoff (:mod:`._dbretry`): 503 to a request, an ``error`` record for an analysis,
once the tries are spent.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sleuth.attribution._bodylimit import BodyLimit
from sleuth.attribution._dbretry import Backoff, DatabaseUnavailable, call_with_retry
from sleuth.attribution._worker import Worker
from sleuth.attribution.analyze import Attributor
from sleuth.attribution.logs import LogInput
from sleuth.attribution.store import DONE, ERROR, PENDING, Store
from sleuth.errors import SleuthError
from sleuth.secrets import scrub_text

__all__ = ["DbLock", "ServiceConfig", "build_app", "hold_db", "wrap_limits"]


@dataclass(frozen=True, slots=True)
class DbLock:
    """This process's hold on a database (see :func:`hold_db`)."""

    fh: IO[str]
    path: Path
    made: bool

    def drop(self) -> None:
        """Let go; the lock file goes too when this process made it (a bad --db leaves nothing)."""
        self.fh.close()
        if self.made:
            self.path.unlink(missing_ok=True)


def hold_db(db: Path) -> DbLock:
    """One ``sleuth serve`` per database, for the life of this process (a lock on ``<db>.lock``,
    gone with the process).  What a killed server's command and MCP sources left running is
    stopped, and this server's are marked the same way (the runner's ``SLEUTH_TRIAL_DIR``)."""
    from sleuth.lockfile import lock_file
    from sleuth.model import DEFAULT_KILL_GRACE_S
    from sleuth.runner import reap_orphans

    path = db.with_name(db.name + ".lock")
    made = not path.exists()
    busy, hint = "in use by another sleuth serve", "stop it first, or give another --db"
    fh = lock_file(path, f"--db {db}", busy, hint)
    sources = Path(os.path.abspath(db) + ".sources")
    reap_orphans(sources, DEFAULT_KILL_GRACE_S)
    os.environ["SLEUTH_TRIAL_DIR"] = str(sources / "serve")  # inherited by every source it starts
    return DbLock(fh, path, made)


T = TypeVar("T")
_KEY = r"^[A-Za-z0-9_.:-]{1,128}$"
_UNPARSED = "There was an error parsing the body"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """Limits and behaviour of one service."""

    db: Path
    max_body: int = 32 * 1024 * 1024
    #: seconds a request's body may take to arrive (408 after)
    body_timeout_s: float = 60.0
    max_logs: int = 64
    max_log_bytes: int = 16 * 1024 * 1024
    max_wait_s: float = 120.0
    gather_s: float = 2.0
    workers: int = 2
    log_roots: tuple[Path, ...] = ()
    #: seconds SQLite waits for a lock before a call fails (then retried with ``backoff``)
    db_timeout_s: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)


class LogText(BaseModel):
    """One log sent inline."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    text: str

    @field_validator("text")
    @classmethod
    def _no_lone_surrogates(cls, v: str) -> str:
        # JSON may escape half a surrogate pair ("\ud800": a client that read bytes with
        # surrogateescape); SQLite cannot store it (it was a 500): replaced, as a bad byte is
        return _SURROGATE.sub("\ufffd", v)


class AttributionRequest(BaseModel):
    """``POST /v1/attributions``."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=_KEY)
    cycle_id: str = Field(pattern=_KEY)
    logs: list[LogText] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    progress: bool | None = None
    node: str = Field(default="0", pattern=_KEY)
    nodes: int = Field(default=1, ge=1, le=100_000)
    #: when the cycle started on this node (seconds since the epoch): lines timed before it (an
    #: earlier cycle's, in a kernel log or a log appended across restarts) are left out
    job_start: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("cycle_id", mode="before")
    @classmethod
    def _cycle_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class OutcomeRequest(BaseModel):
    """``PUT .../outcome``: what the leader decided for the cycle."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["RESTART", "STOP"]
    decided_by: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=2000)
    node: str = Field(default="0", pattern=_KEY)


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    result = rec.get("result") or {}
    return {
        "job_id": rec["job_id"],
        "cycle_id": rec["cycle_id"],
        "status": rec["status"],
        "nodes": rec["nodes"],
        "posted_nodes": rec["posted_nodes"],
        "late_nodes": rec["late_nodes"],
        "progress": rec["progress"],
        "created": rec["created"],
        "job_start": rec.get("job_start"),
        "error": rec.get("error"),
        "outcome": rec.get("outcome"),
        **{k: result.get(k) for k in ("decision", "root", "findings", "sources", "scan", "notes")},
    }


def _read_paths(
    paths: list[str], roots: tuple[Path, ...], max_bytes: int
) -> list[tuple[str, str, int | None]]:
    if not roots:
        raise HTTPException(
            422, "paths are not accepted by this service (start it with --log-root DIR); send logs"
        )
    out = []
    for p in paths:
        try:
            path = Path(p).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
            raise HTTPException(422, f"path {p!r}: cannot be resolved ({exc})") from None
        if not any(path.is_relative_to(r.resolve()) for r in roots):
            raise HTTPException(422, f"path {p} is outside the service's log roots")
        if not path.is_file():
            raise HTTPException(422, f"path {p}: not a file")
        if path.stat().st_size > max_bytes:
            raise HTTPException(413, f"path {p}: larger than {max_bytes} bytes")
        try:
            LogInput.file(path).check()
        except SleuthError as exc:
            raise HTTPException(422, str(exc)) from None
        out.append(_read_log(path, p, max_bytes))
    return out


def _read_log(path: Path, given: str, max_bytes: int) -> tuple[str, str, int | None]:
    """``(name, text, cut)`` of a log under the roots, gzip decompressed (bounded by ``max_bytes`` of
    text: a small .gz may hold gigabytes); a .gz cut short is read up to the cut, ``cut`` the byte
    where it ends (the report's ``notes`` say so, as ``sleuth attribute``'s do)."""
    cut: list[int] = []
    data = bytearray()
    try:
        for block in LogInput.file(path).chunks(cut.append):
            data += block
            if len(data) > max_bytes:
                raise HTTPException(413, f"path {given}: more than {max_bytes} bytes once decompressed")
    except SleuthError as exc:  # corrupt past the head that check() read
        raise HTTPException(422, f"path {given}: cannot be read ({exc})") from None
    return path.name, data.decode("utf-8", "replace"), cut[0] if cut else None


def build_app(config: ServiceConfig, attributor: Attributor) -> FastAPI:
    """The FastAPI application with its store and workers (started and stopped with the app)."""
    store = Store(config.db, busy_timeout_s=config.db_timeout_s)
    worker = Worker(
        store, attributor, workers=config.workers, gather_s=config.gather_s, backoff=config.backoff
    )
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        worker.start()
        yield
        worker.stop()
        store.close()

    app = FastAPI(title="sleuth attribution service", version="1", lifespan=lifespan)
    app.state.store = store

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer echoes each rejected "input": a log's text, secrets included
        detail = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))

    # FastAPI raises Starlette's HTTPException (the base of its own) for an undecodable body
    @app.exception_handler(HTTPException.__mro__[1])
    async def http_error(request: Any, exc: HTTPException) -> Any:
        if exc.status_code == 400 and exc.detail == _UNPARSED:  # FastAPI's words for any undecodable body
            return JSONResponse(
                status_code=422,
                content={"detail": "the body is not JSON: send UTF-8 JSON text, nested less than 1000 deep"},
            )
        return await http_exception_handler(request, exc)

    async def db(fn: Callable[..., T], *args: Any, what: str) -> T:
        return await call_with_retry(fn, *args, backoff=config.backoff, what=what)

    @app.exception_handler(DatabaseUnavailable)
    async def unavailable(_request: Any, exc: DatabaseUnavailable) -> JSONResponse:
        wait = str(max(1, round(config.backoff.max_s)))
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": wait})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        counts = await db(store.counts, what="healthz")
        return {"status": "ok", "records": counts, "signatures": len(attributor.catalog)}

    def prepare(req: AttributionRequest) -> list[tuple[str, str, int | None]]:
        """The request's logs checked, read and scrubbed (in the thread pool: big texts, files)."""
        if not req.logs and not req.paths:
            raise HTTPException(422, "give logs: [{name, text}] or paths: [...]")
        if len(req.logs) + len(req.paths) > config.max_logs:
            raise HTTPException(
                422, f"{len(req.logs) + len(req.paths)} logs: at most {config.max_logs} per request"
            )
        for item in req.logs:
            if len(item.text.encode("utf-8", "replace")) > config.max_log_bytes:
                raise HTTPException(413, f"log {item.name}: larger than {config.max_log_bytes} bytes")
            if "\x00" in item.text[:65536]:
                raise HTTPException(422, f"log {item.name}: contains NUL bytes (binary?)")
        texts: list[tuple[str, str, int | None]] = [
            (scrub_text(i.name), scrub_text(i.text), None) for i in req.logs
        ]
        texts += (
            [
                (scrub_text(n), scrub_text(t), cut)
                for n, t, cut in _read_paths(req.paths, config.log_roots, config.max_log_bytes)
            ]
            if (req.paths)
            else []
        )
        return texts

    @app.post("/v1/attributions", status_code=202)
    async def submit(req: AttributionRequest) -> dict[str, Any]:
        texts = await run_in_threadpool(prepare, req)
        put = functools.partial(
            store.submit,
            req.job_id,
            req.cycle_id,
            node=req.node,
            nodes=req.nodes,
            progress=req.progress,
            job_start=req.job_start,
        )
        rec, created = await db(lambda: put(texts=texts), what=f"job {req.job_id} cycle {req.cycle_id}")
        if created or rec["status"] == PENDING:
            worker.gave_up.pop((req.job_id, req.cycle_id), None)  # posted again: tried afresh
            worker.queue.put((req.job_id, req.cycle_id))
        return {**_public(rec), "deduplicated": not created}

    async def _wait_for(
        job_id: str, cycle_id: str, wait: float, ready: Callable[[dict[str, Any]], bool]
    ) -> Any:
        """The record once ``ready`` (else at the deadline).  It is read again only when its
        change counter moved (a write committed): the counter is memory, read on the event loop,
        so a waiting client takes a thread-pool worker and a database read only when something
        changed.  Reading the record every 50 ms took a worker 20 times a second per client, and
        every other request queued behind the waiters for the pool's 40 workers."""
        deadline = time.monotonic() + min(max(wait, 0.0), config.max_wait_s)
        seen: int | None = None
        rec: dict[str, Any] = {}
        while True:
            version = store.version(job_id, cycle_id)  # before the read: a write after it is seen
            if version != seen:
                got = await db(store.get, job_id, cycle_id, what=f"job {job_id} cycle {cycle_id}")
                if got is None:
                    raise HTTPException(404, f"no attribution for job {job_id} cycle {cycle_id}")
                seen, rec = version, got
            now = rec
            if (gave_up := worker.gave_up.get((job_id, cycle_id))) and rec["status"] not in (DONE, ERROR):
                now = {**rec, "status": ERROR, "error": gave_up}  # it could not even be written
            if ready(now) or time.monotonic() >= deadline:
                return now
            await asyncio.sleep(0.05)

    @app.get("/v1/attributions/{job_id}/{cycle_id}")
    async def read(job_id: str, cycle_id: str, wait: float = Query(0.0, ge=0, le=3600)) -> dict[str, Any]:
        rec = await _wait_for(job_id, cycle_id, wait, lambda r: r["status"] in (DONE, ERROR))
        return _public(rec)

    @app.put("/v1/attributions/{job_id}/{cycle_id}/outcome")
    async def put_outcome(job_id: str, cycle_id: str, req: OutcomeRequest) -> Any:
        outcome = {k: scrub_text(v) if isinstance(v, str) else v for k, v in req.model_dump().items()}
        value = {**outcome, "t": time.time()}
        stored, now = await db(
            store.set_outcome, job_id, cycle_id, value, what=f"job {job_id} cycle {cycle_id}"
        )
        if stored is None:
            raise HTTPException(404, f"no attribution for job {job_id} cycle {cycle_id}")
        if not now and stored.get("action") != req.action:
            return JSONResponse(
                status_code=409, content={"detail": "outcome already recorded", "outcome": stored}
            )
        return {"outcome": stored, "recorded": now}

    @app.get("/v1/attributions/{job_id}/{cycle_id}/outcome")
    async def get_outcome(
        job_id: str, cycle_id: str, wait: float = Query(0.0, ge=0, le=3600)
    ) -> dict[str, Any]:
        rec = await _wait_for(job_id, cycle_id, wait, lambda r: r["outcome"] is not None)
        return {"outcome": rec["outcome"]}

    return app


def wrap_limits(app: FastAPI, config: ServiceConfig) -> Any:
    """The ASGI app with the body's size and time limits in front."""
    return BodyLimit(app, config.max_body, config.body_timeout_s)
