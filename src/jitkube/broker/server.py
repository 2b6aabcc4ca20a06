"""Run the broker with uvicorn: load config, open (and migrate) the store, serve.

The socket is bound here, before uvicorn starts, so `--port 0` works and the real
address can be announced on stdout (tests and supervisors read that line). Logs go to
stderr as JSON lines (logs.py), uvicorn's own included.

With `workers > 1` this process migrates the database, binds the socket and then only
supervises: uvicorn starts that many worker processes (spawned, not forked), each of which
builds its own app and store on the shared socket (`_WorkerApp`). They share the
database (SQLite in WAL mode works across processes; writes are serialised by a file
lock) and the credential-encryption keys (an ephemeral key is made once, here, and
handed to every worker). Per process, by design: the rate limiter (so a limit is per
worker; a keep-alive client stays on one worker), the JWKS cache and the cluster
directory. Webhook notifications are not: they wait in the database's outbox table, from
which every worker's delivery thread sends (each row once; notify.py). `/metrics` adds
up all workers (prometheus_client's multiprocess mode, in a private directory made here
and removed at exit).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from jitkube.broker.config import load_config
from jitkube.broker.logs import configure_logging
from jitkube.broker.store import Store
from jitkube.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from jitkube.broker.sts import CredentialVault

READY_PREFIX = "jitkube broker listening on "
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
log = logging.getLogger("jitkube.broker")


@dataclass(frozen=True)
class ServeOptions:
    config: Path
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "info"
    workers: int = 1


# prometheus_client reads this when it is imported: worker processes, spawned after the
# supervisor sets it, count in shared files there.
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_WORKERS = 64
_BACKLOG = 2048


def open_store(url: str, *, migrate: bool = True) -> Store:
    """The store, or a ConfigError naming the database (never its password) and why."""
    import sqlalchemy as sa

    try:
        return Store.open(url, migrate=migrate)
    except (sa.exc.OperationalError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        try:
            shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = "storage.url"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise ConfigError(
            f"cannot open the database {shown}: {reason}",
            hint="check storage.url in broker.yaml: a SQLite file's directory must exist "
            "and be writable; a PostgreSQL server must accept the connection",
        ) from None


def _build_app(
    options: ServeOptions, *, vault: CredentialVault | None = None, migrate: bool = True
) -> tuple[FastAPI, Store]:
    """The app of one serving process (the only one, or one worker), clusters looked up."""
    from jitkube.broker.app import create_app
    from jitkube.broker.metrics import BrokerMetrics

    settings = load_config(options.config)
    store = open_store(settings.storage.url, migrate=migrate)
    store.start_checkpointer()
    metrics = BrokerMetrics(multiprocess_dir=os.environ.get(PROMETHEUS_MULTIPROC_ENV))
    app = create_app(settings, store, vault=vault, metrics=metrics)
    # Look clusters up in EKS now, so a typo shows in the log at start. A failure is logged,
    # not fatal: EKS may be briefly unreachable, the other clusters still work, and the
    # lookup is retried on use (where it fails with `eks_unavailable`).
    app.state.clusters.prefetch()
    _freeze_start_up_objects()
    return app, store


def _freeze_start_up_objects() -> None:
    """Take what start-up built (modules, app, clients) out of the collector's sight.

    Those are well over 100,000 objects that live as long as the process, and every full
    (generation 2) collection walks them all: ~100 ms on 2 cores, during which no request
    runs (the collector holds the GIL), three times in a broker's first minute of load.
    Frozen, they are never walked again; a full collection then costs only what serving
    made. Collected first, so start-up garbage is freed rather than kept for good.
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class _WorkerApp:
    """uvicorn's app factory in each worker process (pickled to it, hence no live state)."""

    options: ServeOptions
    vault: CredentialVault
    supervisor: int  # its pid: a worker whose supervisor is gone stops (see _orphan_watch)

    def __call__(self) -> FastAPI:
        configure_logging(self.options.log_level)
        _orphan_watch(self.supervisor)
        # The supervisor migrated already; the store lives as long as the worker process.
        app, _ = _build_app(self.options, vault=self.vault, migrate=False)
        return app


def _orphan_watch(supervisor: int, every: float = 1.0) -> None:
    """Stop this worker (SIGTERM: uvicorn's graceful shutdown) once its supervisor is
    gone. Killed with SIGKILL, the supervisor cannot stop its workers, which would keep
    serving on the inherited socket — and keep the port from a restarted broker."""
    import signal
    import threading

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(every)
        log.warning("the broker's supervisor process is gone; this worker stops")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="jitkube-orphan-watch", daemon=True).start()


def serve(options: ServeOptions, announce: TextIO = sys.stdout) -> None:
    """Serve until interrupted. Raises ConfigError before binding on any config problem."""
    import uvicorn

    settings = load_config(options.config)
    if options.log_level.lower() not in LOG_LEVELS:
        # Not uvicorn's `trace` either: it logs every ASGI message, headers included.
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if not 1 <= options.workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS}")
    if options.tls_cert is not None and options.tls_key is not None:
        # Fail early and clearly on unreadable or mismatched files.
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                options.tls_cert, options.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate/key: {exc}") from None
    configure_logging(options.log_level)  # before the store: it may log (migrations, keys)
    store: Store | None = None
    multiproc_dir: str | None = None
    if options.workers == 1:
        app, store = _build_app(options)
        target: Any = app
    else:
        from jitkube.broker.sts import CredentialVault

        open_store(settings.storage.url).close()  # migrate once, before any worker starts
        # Made here so that all workers share one key, even an ephemeral one.
        target = _WorkerApp(
            options, CredentialVault.from_settings(settings.storage), supervisor=os.getpid()
        )
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP; without it every keep-alive response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        if store is not None:
            store.close()
        raise ConfigError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror}"
        ) from None
    # Listening before the announcement: early connections wait in the backlog.
    sock.listen(_BACKLOG)
    if options.workers > 1:
        multiproc_dir = tempfile.mkdtemp(prefix="jitkube-broker-metrics-")
        os.environ[PROMETHEUS_MULTIPROC_ENV] = multiproc_dir
    host, port = sock.getsockname()[:2]
    scheme = "https" if options.tls_cert else "http"
    config = uvicorn.Config(
        target,
        factory=options.workers > 1,
        workers=options.workers,
        backlog=_BACKLOG,
        log_level=options.log_level.lower(),
        ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if options.tls_key else None,
        proxy_headers=False,  # client IPs (rate limits) are not taken from headers by default
        server_header=False,
        access_log=False,  # the request log (logs.py) replaces it, without query strings
        log_config=None,  # keep configure_logging's JSON handler
    )
    log.info(
        "broker listening",
        extra={
            "url": f"{scheme}://{host}:{port}",
            "clusters": sorted(settings.clusters),
            "workers": options.workers,
        },
    )
    announce.write(f"{READY_PREFIX}{scheme}://{host}:{port}\n")
    announce.flush()
    try:
        if options.workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        if store is not None:
            store.close()
        if multiproc_dir is not None:
            os.environ.pop(PROMETHEUS_MULTIPROC_ENV, None)
            shutil.rmtree(multiproc_dir, ignore_errors=True)
