"""Hot reload: load a bundle beside the one serving, check it fully, warm it up, then swap it in.

Every request reads ``app.state.bundle`` once and keeps that ``Bundle`` to its end, so the swap is one
assignment: requests in flight finish on the old bundle, later ones see the new, none sees a mix. A
bundle that fails validation raises ``BundleRefused`` (the file and the reason) and the old one serves on.
Reloads run one at a time. ``POST /admin/reload`` and SIGHUP both end here.

SIGHUP is caught with ``loop.add_signal_handler`` in the lifespan, which works in a single uvicorn
process. With ``--workers N`` the uvicorn supervisor owns SIGHUP and answers it by restarting the
workers one by one, each loading the bundle from the environment as it starts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from latent_bridge.service.api.memory import release_memory
from latent_bridge.service.api.metrics import ServiceMetrics
from latent_bridge.service.bundle.loader import Bundle, load_bundle, load_limits
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.errors import BundleRefused
from latent_bridge.service.settings import Settings

log = logging.getLogger(__name__)


class Reloader:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    def target(self, path: Path | None) -> Path:
        """The bundle to load: the one named (it must lie under the models folder), else the configured
        one, else the one serving. A named path outside the folder is refused with the same words whether
        it exists or not, so reload cannot be used to probe the server's files."""
        if path is not None:
            return self.under_models(path)
        if self.settings.bundle is not None:
            return self.settings.bundle
        current: Bundle | None = self.app.state.bundle
        if current is None:
            raise BundleRefused("no bundle named and none configured (LATENT_BRIDGE_BUNDLE)")
        return current.path

    def under_models(self, path: Path) -> Path:
        root = self.settings.reload_root()
        if root is None:
            raise BundleRefused(
                "reload can name no bundle: set LATENT_BRIDGE_MODELS_DIR (or LATENT_BRIDGE_BUNDLE, whose "
                "folder is the default)"
            )
        refused = BundleRefused(
            f"{str(path)[:200]}: not a bundle folder under the models folder; name one as a path relative "
            "to it",
            models_dir=str(root),
        )
        try:
            resolved = (root / path).resolve()
            inside = resolved.is_relative_to(root.resolve()) and resolved != root.resolve()
        except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop, a NUL byte
            raise refused from None
        if not inside:
            raise refused
        return root / path

    async def reload(self, path: Path | None = None) -> tuple[Bundle, tuple[str, str] | None]:
        """Swap in the bundle at ``path`` (see ``target``); return it and the old one's (name, fingerprint).
        Raises ``BundleRefused``."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        metrics: ServiceMetrics = self.app.state.metrics
        settings = self.settings
        try:
            target = self.target(path)
        except BundleRefused:
            metrics.reloads.labels("refused").inc()
            raise
        async with self._lock:
            refused = None
            try:
                new = await anyio.to_thread.run_sync(
                    load_bundle,
                    target,
                    settings.fidelity,
                    settings.ort_threads,
                    settings.faiss_threads,
                    load_limits(settings),
                )
            except BundleError as exc:
                refused = str(exc)  # only the words: the exception's frames hold the half-loaded bundle
            if refused is not None:
                metrics.reloads.labels("refused").inc()
                log.warning("reload refused, still serving the old bundle: %s", refused)
                await anyio.to_thread.run_sync(release_memory)  # what the refused bundle allocated
                raise BundleRefused(refused, bundle=str(target))
            old: Bundle | None = self.app.state.bundle
            self.app.state.bundle = new
            metrics.set_bundle(new)
            metrics.reloads.labels("ok").inc()
            previous = None if old is None else (old.name, old.fingerprint)
            if old is not None:  # its batchers finish their queued jobs and stop; requests in flight on it
                await anyio.to_thread.run_sync(old.close)  # run its encoders unbatched from now on
            del old  # requests in flight may still hold it; it goes when the last of them ends
            await anyio.to_thread.run_sync(release_memory)
        log.info(
            "reloaded: now serving %s (%s), was %s",
            new.name,
            new.fingerprint[:12],
            "nothing" if previous is None else f"{previous[0]} ({previous[1][:12]})",
        )
        return new, previous

    async def _reload_logged(self) -> None:
        try:
            await self.reload(None)
        except BundleRefused:
            pass  # logged by reload
        except Exception:
            log.exception("reload on SIGHUP failed")

    def on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_sighup(self) -> bool:
        """Reload on SIGHUP; False where the loop cannot take signals (not the main thread, not Unix)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.on_sighup)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):
            return False
        return True

    def remove_sighup(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):
            pass
