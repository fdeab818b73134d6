"""``latent-bridge serve``: check the bundle, then run uvicorn.

The bundle is validated before the server starts, so a bad one stops the command with one line naming
the file and the reason (exit code 1) instead of a lifespan traceback. With one worker the checked bundle
is served as loaded; with several, each worker process builds its app from the environment.
SIGTERM drains: the server stops accepting, lets requests in flight finish (up to
``LATENT_BRIDGE_DRAIN_SECONDS``), then exits. SIGHUP reloads the bundle (``latent_bridge.service.api.reload``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import uvicorn
from latent_bridge.service.api.accesslog import configure_access_log
from latent_bridge.service.api.app import create_app, open_bundle
from latent_bridge.service.api.protocol import PROTOCOL
from latent_bridge.service.api.protocol import configure as configure_protocol
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.settings import Settings
from pydantic import ValidationError

PROG = "latent-bridge"


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _settings(overrides: dict[str, object]) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        _fail(f"invalid setting {where} (LATENT_BRIDGE_{where.upper()}): {first['msg']}")


def serve(
    bundle: Path | None = None, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve ``bundle`` (default ``$LATENT_BRIDGE_BUNDLE``); unset options come from the environment."""
    given: dict[str, object] = {"bundle": bundle, "host": host, "port": port, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    settings = _settings(overrides)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        loaded = open_bundle(settings)
    except BundleError as exc:
        _fail(f"bundle refused: {exc}")
    if settings.access_log:
        configure_access_log()
    common: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # ours is JSON with the request id (latent_bridge.service.api.accesslog)
        "server_header": False,
        "timeout_graceful_shutdown": settings.drain_seconds,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "http": PROTOCOL,  # header deadline and size, connection cap (protocol.py)
    }
    configure_protocol(settings)
    if settings.workers == 1:
        app = create_app(settings, bundle=loaded)
        del loaded  # the app holds it until a reload replaces it
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    for key, value in overrides.items():  # worker processes read their settings from the environment
        os.environ[f"LATENT_BRIDGE_{key.upper()}"] = str(value)
    del loaded
    uvicorn.run("latent_bridge.service.api.app:app_from_env", factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]
