"""``sleuth serve [--host 127.0.0.1] [--port 8642] [--db PATH]``: the HTTP attribution service."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import click

from sleuth.cli._attribution_flags import attribution_options, settings_from_flags
from sleuth.errors import UsageError

__all__ = ["command"]

#: seconds a stopping server (SIGTERM, Ctrl-C) waits for open requests before cancelling them
_SHUTDOWN_GRACE_S = 5


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen: {exc.strerror or exc}") from None
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default)."
)
@click.option("--port", type=int, default=8642, show_default=True, help="Port (0: any free port).")
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path("sleuth-attribution.db"),
    show_default=True,
    help="SQLite file that keeps every accepted request.",
)
@click.option(
    "--port-file", type=click.Path(path_type=Path), help="Write the bound port here once listening."
)
@click.option("--max-body-mb", type=float, default=32.0, show_default=True, help="Largest request body.")
@click.option(
    "--body-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds a request's body may take to arrive (408 after: a stalled or trickling client).",
)
@click.option(
    "--header-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a request's headers may take to arrive (the connection is closed after: a slowloris).",
)
@click.option(
    "--db-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a database call waits for SQLite's lock before it is retried (with backoff; 503 at last).",
)
@click.option("--max-logs", type=int, default=64, show_default=True, help="Most logs per request.")
@click.option("--max-log-mb", type=float, default=16.0, show_default=True, help="Largest single log.")
@click.option(
    "--gather", type=float, default=2.0, show_default=True, help="Seconds to wait for other nodes' logs."
)
@click.option("--workers", type=int, default=2, show_default=True, help="Analyses at a time.")
@click.option(
    "--log-root", "log_roots", multiple=True, type=click.Path(path_type=Path), help="Allow `paths` under DIR."
)
@attribution_options(mode_default_help="shadow")
def command(**kw: Any) -> int:
    """Serve attributions over HTTP: POST /v1/attributions, GET /v1/attributions/{job}/{cycle}?wait=S."""
    import uvicorn

    from sleuth.attribution._headers import header_timeout_protocol
    from sleuth.attribution.analyze import Attributor
    from sleuth.attribution.service import ServiceConfig, build_app, hold_db, wrap_limits
    from sleuth.journal import atomic_write_text

    if not 0 <= kw["port"] <= 65535:
        raise UsageError(f"--port {kw['port']}: must be between 0 and 65535")
    for flag in ("max_body_mb", "max_log_mb"):
        if not 0 < kw[flag] <= 4096:
            raise UsageError(f"--{flag.replace('_', '-')} {kw[flag]:g}: must be > 0 and <= 4096")
    if not 0 < kw["body_timeout"] <= 3600:
        raise UsageError(f"--body-timeout {kw['body_timeout']:g}: must be > 0 and <= 3600 seconds")
    if not 0 < kw["header_timeout"] <= 3600:
        raise UsageError(f"--header-timeout {kw['header_timeout']:g}: must be > 0 and <= 3600 seconds")
    if not 0 < kw["db_timeout"] <= 600:
        raise UsageError(f"--db-timeout {kw['db_timeout']:g}: must be > 0 and <= 600 seconds")
    if not 1 <= kw["max_logs"] <= 10_000:
        raise UsageError(f"--max-logs {kw['max_logs']}: must be between 1 and 10000")
    if not 1 <= kw["workers"] <= 64:
        raise UsageError(f"--workers {kw['workers']}: must be between 1 and 64")
    if not 0 <= kw["gather"] <= 600:
        raise UsageError(f"--gather {kw['gather']:g}: must be between 0 and 600 seconds")
    for root in kw["log_roots"]:
        if not root.is_dir():
            raise UsageError(f"--log-root {root}: not a directory")
    db: Path = kw["db"]
    if db.is_dir():
        raise UsageError(f"--db {db}: is a directory; give a file path")
    if not db.parent.is_dir():
        raise UsageError(f"--db {db}: folder {db.parent} does not exist")
    settings = settings_from_flags(kw)
    attributor = Attributor(settings)
    config = ServiceConfig(
        db=db,
        max_body=int(kw["max_body_mb"] * 1024 * 1024),
        body_timeout_s=kw["body_timeout"],
        db_timeout_s=kw["db_timeout"],
        max_logs=kw["max_logs"],
        max_log_bytes=int(kw["max_log_mb"] * 1024 * 1024),
        gather_s=kw["gather"],
        workers=kw["workers"],
        log_roots=tuple(kw["log_roots"]),
    )
    host = kw["host"]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    pf: Path | None = kw["port_file"]
    if pf is not None and pf.is_dir():
        raise UsageError(f"--port-file {pf}: is a directory; give a file path")
    if pf is not None and not pf.parent.is_dir():
        raise UsageError(f"--port-file {pf}: folder {pf.parent} does not exist")
    from sqlalchemy.exc import DatabaseError

    from sleuth.errors import SleuthError

    held = hold_db(db)  # for as long as this process serves
    try:
        built = build_app(config, attributor)  # opens (or creates) the database
    except SleuthError:  # a database another program made
        held.drop()
        raise
    except DatabaseError as exc:
        held.drop()
        raise UsageError(
            f"--db {db}: not a SQLite database ({getattr(exc, 'orig', exc)})",
            hint="give a new path or a database sleuth serve wrote",
        ) from None
    sock = _bind(host, kw["port"])
    port = sock.getsockname()[1]
    app = wrap_limits(built, config)
    click.echo(
        f"sleuth serve: listening on http://{host}:{port} (db {db}, mode {settings.mode.value}, "
        f"{len(attributor.catalog)} signatures)"
        + ("" if loopback else " -- NOT loopback: reachable from the network"),
        err=True,
    )
    if kw["port_file"]:
        atomic_write_text(kw["port_file"], f"{port}\n")
    # a client that never finishes its request (a node that hung mid-POST) once kept a SIGTERM'd
    # server up for ever: what is still open after the grace is cancelled (accepted work is in
    # the database; a request cut before its commit was never answered 202)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=header_timeout_protocol(kw["header_timeout"]),  # uvicorn bounds headers' size only
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
        )
    )
    server.run(sockets=[sock])
    return 0
