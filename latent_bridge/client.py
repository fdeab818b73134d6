"""A Python client for a Latent Bridge server: numpy arrays in and out, typed results, problems as exceptions.

    from latent_bridge.client import LatentBridge

    bridge = LatentBridge("http://localhost:8000", api_key=None)
    out = bridge.translate(x, "audio", "image")  # x: (n, d) or (d,) floats; out.vectors: (n, d') float32
    hits = bridge.retrieve(x, "audio", "text", k=5).results[0].hits

Vectors travel as base64 little-endian float32 (a third of JSON's size, and exact). Every error the
server answers as problem+json is raised as ``ProblemError`` carrying its fields. ``AsyncLatentBridge``
has the same methods, awaitable. Needs httpx: ``pip install 'latent-bridge[client]'``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

try:
    import httpx
except ModuleNotFoundError as missing:  # the client's one extra dependency
    raise ModuleNotFoundError("latent_bridge.client needs httpx: pip install 'latent-bridge[client]'",
                              name=missing.name) from missing

from latent_bridge.service.api.schemas import (
    GraphResponse,
    HopInfo,
    ModalitiesResponse,
    Readiness,
    RetrieveResponse,
    RouteResponse,
)

__all__ = ["AsyncLatentBridge", "LatentBridge", "ProblemError", "Translation"]

Matrix = npt.NDArray[np.float32]
Model = TypeVar("Model", bound=BaseModel)
FLOAT32_LE = np.dtype("<f4")
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "request_id")
DEFAULT_TIMEOUT = 60.0


class ProblemError(Exception):
    """An error answer of the server (RFC 9457 problem+json): its fields, and any extra ones in ``extra``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.type: str = str(body.get("type", "about:blank"))
        self.title: str = str(body.get("title", ""))
        self.detail: str = str(body.get("detail", ""))
        self.instance: str | None = body.get("instance")
        self.request_id: str | None = body.get("request_id")
        self.extra: dict[str, Any] = {k: v for k, v in body.items() if k not in PROBLEM_FIELDS}
        super().__init__(f"{status} {self.slug}: {self.detail}")

    @property
    def slug(self) -> str:
        """The short name of the problem, e.g. ``unknown-modality``."""
        return self.type.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Translation:
    """Vectors translated from ``source`` to ``target`` along ``path``."""

    source: str
    target: str
    path: list[str]
    hops: list[HopInfo]
    fidelity: float
    vectors: Matrix
    confidence: Matrix | None = field(default=None)


def encode(x: npt.ArrayLike) -> tuple[str, int]:
    """Base64 of the float32 rows of ``x`` ((n, d) or one (d,) vector) and the row count."""
    rows = np.atleast_2d(np.asarray(x, dtype=FLOAT32_LE))
    if rows.ndim != 2:
        raise ValueError(f"vectors must be one vector or a 2-D batch, got shape {np.shape(x)}")
    return base64.b64encode(np.ascontiguousarray(rows).tobytes()).decode(), len(rows)


def decode(text: str, count: int) -> Matrix:
    flat = np.frombuffer(base64.b64decode(text), dtype=FLOAT32_LE).astype(np.float32)
    return flat.reshape(count, -1) if count else flat.reshape(0, 0)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


def _checked(response: httpx.Response) -> Any:
    """The JSON body of a success; a ``ProblemError`` for anything else."""
    if response.is_success:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("detail", response.text[:500])
    body.setdefault("title", response.reason_phrase)
    raise ProblemError(response.status_code, body)


def _translate_body(
    x: npt.ArrayLike, source: str, target: str, path: list[str] | None, normalize: bool, confidence: bool
) -> dict[str, Any]:
    vectors, _ = encode(x)
    body: dict[str, Any] = {"from": source, "to": target, "vectors": vectors, "encoding": "base64"}
    return body | {"normalize": normalize, "confidence": confidence} | ({"path": path} if path else {})


def _translation(body: dict[str, Any]) -> Translation:
    confidence = body.get("confidence")
    return Translation(
        source=body["from"],
        target=body["to"],
        path=list(body["path"]),
        hops=[HopInfo.model_validate(h) for h in body["hops"]],
        fidelity=float(body["fidelity"]),
        vectors=decode(body["vectors"], int(body["count"])),
        confidence=None if confidence is None else np.asarray(confidence, dtype=np.float32),
    )


def _retrieve_body(x: npt.ArrayLike, source: str, target: str, k: int, path: list[str] | None) -> dict[str, Any]:
    vectors, _ = encode(x)
    body: dict[str, Any] = {"from": source, "to": target, "vectors": vectors, "encoding": "base64", "k": k}
    return body | ({"path": path} if path else {})


class LatentBridge:
    """Synchronous client; use as a context manager, or call ``close()``, to release its connections."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout)

    def __enter__(self) -> LatentBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, model: type[Model], **params: Any) -> Model:
        return model.model_validate(_checked(self.http.get(path, params=params)))

    def translate(
        self,
        x: npt.ArrayLike,
        source: str,
        target: str,
        path: list[str] | None = None,
        normalize: bool = True,
        confidence: bool = False,
    ) -> Translation:
        """Translate vectors of ``source`` into ``target`` along the best route (or the pinned ``path``)."""
        body = _translate_body(x, source, target, path, normalize, confidence)
        return _translation(_checked(self.http.post("/translate", json=body)))

    def retrieve(
        self, x: npt.ArrayLike, source: str, target: str, k: int = 10, path: list[str] | None = None
    ) -> RetrieveResponse:
        """The ``k`` nearest items of ``target``'s gallery for each query vector of ``source``."""
        body = _retrieve_body(x, source, target, k, path)
        return RetrieveResponse.model_validate(_checked(self.http.post("/retrieve", json=body)))

    def retrieve_item(self, item: str, source: str, target: str, k: int = 10) -> RetrieveResponse:
        """The ``k`` nearest items of ``target``'s gallery for the stored item ``item`` of ``source``."""
        return self._get("/retrieve", RetrieveResponse, **{"from": source, "to": target, "id": item, "k": k})

    def route(self, source: str, target: str, alternatives: int = 3) -> RouteResponse:
        return self._get("/route", RouteResponse, **{"from": source, "to": target, "alternatives": alternatives})

    def graph(self) -> GraphResponse:
        return self._get("/graph", GraphResponse)

    def modalities(self) -> ModalitiesResponse:
        return self._get("/modalities", ModalitiesResponse)

    def ready(self) -> Readiness:
        return self._get("/readyz", Readiness)


class AsyncLatentBridge:
    """The same client for asyncio; ``async with`` it, or ``await aclose()``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout)

    async def __aenter__(self) -> AsyncLatentBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, model: type[Model], **params: Any) -> Model:
        return model.model_validate(_checked(await self.http.get(path, params=params)))

    async def translate(
        self,
        x: npt.ArrayLike,
        source: str,
        target: str,
        path: list[str] | None = None,
        normalize: bool = True,
        confidence: bool = False,
    ) -> Translation:
        body = _translate_body(x, source, target, path, normalize, confidence)
        return _translation(_checked(await self.http.post("/translate", json=body)))

    async def retrieve(
        self, x: npt.ArrayLike, source: str, target: str, k: int = 10, path: list[str] | None = None
    ) -> RetrieveResponse:
        body = _retrieve_body(x, source, target, k, path)
        return RetrieveResponse.model_validate(_checked(await self.http.post("/retrieve", json=body)))

    async def retrieve_item(self, item: str, source: str, target: str, k: int = 10) -> RetrieveResponse:
        return await self._get("/retrieve", RetrieveResponse, **{"from": source, "to": target, "id": item, "k": k})

    async def route(self, source: str, target: str, alternatives: int = 3) -> RouteResponse:
        params = {"from": source, "to": target, "alternatives": alternatives}
        return await self._get("/route", RouteResponse, **params)

    async def graph(self) -> GraphResponse:
        return await self._get("/graph", GraphResponse)

    async def modalities(self) -> ModalitiesResponse:
        return await self._get("/modalities", ModalitiesResponse)

    async def ready(self) -> Readiness:
        return await self._get("/readyz", Readiness)
