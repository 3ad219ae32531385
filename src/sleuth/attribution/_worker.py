"""The service's background analysis: a queue of (job, cycle) keys and a few threads.

A record is analysed once every node it waits for has posted, or ``gather_s`` after its first post
(until then it goes back in the queue); records accepted before a crash are queued at start.  The
analysis reads the job's earlier cycles as its history and stores the report, or the error that
stopped it (one bad record never stops a thread).  A database failure that may pass is tried again
after a backoff (a timer: the thread goes on with other records); its tries spent, the record is
given up as an ``error`` (``gave_up`` says so to a waiting client when even that cannot be written).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from sleuth.attribution._dbretry import Backoff, describe, is_transient
from sleuth.attribution.analyze import Attributor
from sleuth.attribution.decide import CycleRecord
from sleuth.attribution.logs import LogInput
from sleuth.attribution.model import Action
from sleuth.attribution.store import PENDING, Store
from sleuth.errors import SleuthError

__all__ = ["Worker"]

log = logging.getLogger("sleuth.serve")


class Worker:
    """Background analysis: a queue of (job, cycle) keys and a few threads."""

    def __init__(
        self, store: Store, attributor: Attributor, *, workers: int, gather_s: float, backoff: Backoff
    ) -> None:
        self.store, self.attributor = store, attributor
        self.gather_s, self.backoff = gather_s, backoff
        self.queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        #: database failures in a row, by record; records given up, with what to tell a client
        self.failures: dict[tuple[str, str], int] = {}
        self.gave_up: dict[tuple[str, str], str] = {}
        self.threads = [
            threading.Thread(target=self._loop, name=f"sleuth-serve-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for key in self.store.unfinished():  # accepted before a crash: analyse them now
            self.queue.put(key)
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        for _ in self.threads:
            self.queue.put(None)

    def _ready(self, rec: dict[str, Any]) -> float:
        """Seconds until the record may be analysed (0: now)."""
        if len(rec["posted_nodes"]) >= rec["nodes"]:
            return 0.0
        created: float = rec["created"]
        return max(0.0, created + self.gather_s - time.time())

    def _loop(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self._step(key)
                self.failures.pop(key, None)
            except Exception as exc:  # the database failed (locked past its timeout, a disk error)
                # the thread died with it and the record stayed pending for ever: keep both going
                self._failed(key, exc)

    def _failed(self, key: tuple[str, str], exc: Exception) -> None:
        """Try ``key`` again after a backoff (a timer: this thread goes on with other records), or,
        its tries spent or the error not one that passes, give it up as an ``error`` record."""
        n = self.failures[key] = self.failures.get(key, 0) + 1
        backoff = self.backoff
        if is_transient(exc) and n < backoff.tries:
            log.warning("attribution of %s/%s: database error (%s); try %d of %d", *key, describe(exc), n,
                        backoff.tries)  # fmt: skip
            timer = threading.Timer(backoff.delay(n), self.queue.put, args=(key,))
            timer.daemon = True
            timer.start()
            return
        log.error(
            "attribution of %s/%s: database error (%s); giving up after %d tries", *key, describe(exc), n
        )
        message = f"the database failed ({describe(exc)}) after {n} tries; post the logs again"
        self.failures.pop(key, None)
        self.gave_up[key] = message
        with contextlib.suppress(Exception):  # it may not be written either: gave_up answers then
            self.store.finish(*key, None, message)

    def _step(self, key: tuple[str, str]) -> None:
        """Analyse ``key`` when it is ready, else put it back in the queue."""
        rec = self.store.get(*key)
        if rec is None or rec["status"] not in (PENDING, "running"):
            return
        wait = self._ready(rec)
        if wait > 0:
            time.sleep(min(wait, 0.2))
            self.queue.put(key)
            return
        self._analyse(key, rec)

    def _analyse(self, key: tuple[str, str], rec: dict[str, Any]) -> None:
        texts = self.store.claim(*key)
        if texts is None:
            return
        try:
            history = [
                CycleRecord(
                    cycle=i,
                    root=(h["result"] or {}).get("root", {}).get("signature")
                    if (h["result"] or {}).get("root")
                    else None,
                    progress=h["progress"],
                    action=Action((h["result"] or {}).get("decision", {}).get("action", "UNKNOWN")),
                )
                for i, h in enumerate(self.store.history(key[0], rec["created"]))
            ]
            logs = [LogInput.memory(f"{node}/{name}", text, cut_at=cut) for node, name, text, cut in texts]
            report = self.attributor.attribute(
                logs, history=history, progress=rec["progress"], job_start=rec["job_start"]
            )
            self.store.finish(*key, report.to_json(), None)
        except SleuthError as exc:
            self.store.finish(*key, None, str(exc))
        except (OperationalError, InterfaceError):  # the database's, tried again by the loop
            raise
        except Exception as exc:  # one bad record must not stop the worker; it is stored as an error
            log.exception("attribution of %s/%s failed", *key)
            self.store.finish(*key, None, f"{type(exc).__name__}: {exc}")
