"""Run the broker with uvicorn: load config, open (and migrate) the store, serve.

The socket is bound here, before uvicorn starts, so `--port 0` works and the real
address can be announced on stdout (tests and supervisors read that line). Logs go to
stderr as JSON lines (logs.py), uvicorn's own included.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from jitkube.broker.config import load_config
from jitkube.broker.logs import configure_logging
from jitkube.broker.store import Store
from jitkube.errors import ConfigError

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


def serve(options: ServeOptions, announce: TextIO = sys.stdout) -> None:
    """Serve until interrupted. Raises ConfigError before binding on any config problem."""
    import uvicorn

    from jitkube.broker.app import create_app

    settings = load_config(options.config)
    if options.log_level.lower() not in LOG_LEVELS:
        # Not uvicorn's `trace` either: it logs every ASGI message, headers included.
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if options.tls_cert is not None and options.tls_key is not None:
        # Fail early and clearly on unreadable or mismatched files.
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                options.tls_cert, options.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate/key: {exc}") from None
    configure_logging(options.log_level)  # before the store: it may log (migrations, keys)
    store = Store.open(settings.storage.url)
    app = create_app(settings, store)
    # Look clusters up in EKS now, so a typo shows in the log at start. A failure is logged,
    # not fatal: EKS may be briefly unreachable, the other clusters still work, and the
    # lookup is retried on use (where it fails with `eks_unavailable`).
    app.state.clusters.prefetch()
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
        raise ConfigError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror}"
        ) from None
    host, port = sock.getsockname()[:2]
    scheme = "https" if options.tls_cert else "http"
    config = uvicorn.Config(
        app,
        log_level=options.log_level.lower(),
        ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if options.tls_key else None,
        proxy_headers=False,  # client IPs (rate limits) are not taken from headers by default
        server_header=False,
        access_log=False,  # the request log (logs.py) replaces it, without query strings
        log_config=None,  # keep configure_logging's JSON handler
    )
    server = uvicorn.Server(config)
    log.info(
        "broker listening",
        extra={"url": f"{scheme}://{host}:{port}", "clusters": sorted(settings.clusters)},
    )
    announce.write(f"{READY_PREFIX}{scheme}://{host}:{port}\n")
    announce.flush()
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
