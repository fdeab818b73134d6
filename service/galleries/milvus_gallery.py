"""A modality's gallery in a Milvus collection (``GalleryBackend``), for galleries larger than one machine.

``latent-bridge index --backend milvus`` pushed the rows with the FAISS gallery's centring: the vector field
holds centred unit rows and is searched by inner product, so scores are the same centred cosines as FAISS;
``raw`` keeps the embedding as given (query by id), ``payload`` the payload columns as JSON. Writes go to
the collection itself (Milvus makes them durable before it acknowledges; reads are strongly consistent).

Milvus is another process on the network: every call runs through one ``MilvusLink``, which bounds it by
``milvus_timeout`` (retries included), retries transient failures with backoff, and after a failure closes
the connection and makes a fresh one on the next call (never more than one open), so the server recovers
on its own once Milvus is back. What fails is answered 503 ``gallery-unavailable`` with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from latent_bridge.service.bundle.manifest import GallerySpec
from latent_bridge.service.errors import (
    GalleryUnavailable,
    InvalidWrite,
    ServiceError,
    UnknownItem,
    UnknownPayloadColumn,
    echo,
)
from latent_bridge.service.galleries.backend import (
    FILTERED_EF_MAX,
    GalleryBackend,
    Hit,
    Matrix,
    SearchOptions,
    WriteResult,
    centred_units,
    check_where_values,
    payload_per_id,
    search_effort,
    unknown_column,
)
from latent_bridge.service.galleries.table import Where, WhereValue, jsonable

log = logging.getLogger(__name__)
T = TypeVar("T")
ATTEMPTS = 3
FIRST_BACKOFF = 0.05  # seconds; then ×4 per retry, within the call's deadline
RECONNECT_PAUSE = 1.0  # after a failed connect, calls fail fast with its reason for this long
FIELDS = ["id", "sample", "payload"]
MAX_ID_LENGTH = 512
SEARCH_PARAMETER = {"efSearch": "ef", "nprobe": "nprobe"}
# pymilvus pings idle connections every 10 s; gRPC servers allow one ping per 5 minutes by default and answer
# more with GOAWAY "too many pings", which dropped milvus-lite connections mid-test. Ping as servers allow.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}


def _client_class() -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # the milvus extra is optional
        raise GalleryUnavailable(
            "the Milvus backend needs pymilvus: pip install 'latent-bridge[milvus]'", reason="pymilvus missing"
        ) from exc
    return MilvusClient


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class MilvusLink:
    """One connection to Milvus, shared by a bundle's galleries: made on demand, bounded, replaced on failure."""

    def __init__(self, uri: str, token: str | None, timeout: float) -> None:
        self.uri, self.token, self.timeout = uri, token, timeout
        self._client: Any = None
        self._lock = threading.Lock()
        self._failed: tuple[float, str] | None = None  # when the last connect failed, and why

    def _connect(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            if self._failed is not None and time.monotonic() - self._failed[0] < RECONNECT_PAUSE:
                raise self._unavailable(self._failed[1])
            try:
                self._client = _client_class()(
                    uri=self.uri, token=self.token or "", timeout=self.timeout, grpc_options=GRPC_OPTIONS
                )
            except ServiceError:
                raise
            except Exception as exc:
                self._failed = (time.monotonic(), _reason(exc))
                raise self._unavailable(self._failed[1]) from None
            self._failed = None
            return self._client

    def _drop(self, client: Any) -> None:
        """Close ``client`` (its channel and threads) if it is still the current one."""
        with self._lock:
            if self._client is not client:
                return
            self._client = None
        try:
            client.close()
        except Exception:  # closing a broken channel may fail too; it is gone either way
            log.debug("closing the Milvus client failed", exc_info=True)

    def _unavailable(self, reason: str) -> GalleryUnavailable:
        return GalleryUnavailable(f"Milvus at {self.uri} is unavailable: {reason}", reason=reason)

    def call(self, fn: Callable[[Any, float], T]) -> T:
        """``fn(client, seconds_left)``, retried with backoff on failure until the deadline; 503 after."""
        deadline = time.monotonic() + self.timeout
        delay, reason = FIRST_BACKOFF, "no attempt"
        for _ in range(ATTEMPTS):
            client = self._connect()
            try:
                return fn(client, max(deadline - time.monotonic(), 0.01))
            except ServiceError:
                raise
            except Exception as exc:
                reason = _reason(exc)
                log.warning("Milvus call failed: %s", reason)
                self._drop(client)
            if time.monotonic() + delay >= deadline:
                break
            time.sleep(delay)
            delay *= 4
        raise self._unavailable(reason)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


_links: dict[tuple[str, str | None, float], MilvusLink] = {}
_links_lock = threading.Lock()


def shared_link(uri: str, token: str | None, timeout: float) -> MilvusLink:
    """The process's one link to this Milvus: bundles loaded by a reload reuse it (no connection left open
    behind a replaced bundle)."""
    with _links_lock:
        return _links.setdefault((uri, token, timeout), MilvusLink(uri, token, timeout))


def _literal(value: WhereValue) -> str:
    """A filter value as a Milvus expression literal: JSON quoting escapes quotes and backslashes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if np.isfinite(value) else "null"
    return json.dumps(str(value), ensure_ascii=True)


def filter_expression(where: Where | None) -> str:
    """``where`` (column → value or list of values) as a Milvus boolean expression on the JSON payload."""
    terms = []
    for column, wanted in (where or {}).items():
        key = f"payload[{json.dumps(column, ensure_ascii=True)}]"
        values: list[WhereValue] = list(wanted) if isinstance(wanted, list | tuple) else [wanted]  # type: ignore[list-item]
        present = [v for v in values if v is not None]
        options = [f"{key} == {_literal(v)}" for v in present]  # `in` on a JSON key: not everywhere
        if None in values:
            options.append(f"not exists {key}")
        terms.append("(" + " or ".join(options) + ")" if options else "false")
    return " and ".join(terms)


def _id_filter(ids: Sequence[str]) -> str:
    return f"id in [{', '.join(json.dumps(i, ensure_ascii=True) for i in ids)}]"


class MilvusGallery:
    """One modality's gallery in a Milvus collection: search, get, upsert, delete, count, health."""

    in_process = False

    def __init__(self, spec: GallerySpec, dim: int, link: MilvusLink) -> None:
        collection = spec.milvus
        if collection is None:
            raise ValueError(f"gallery {spec.modality!r} names no Milvus collection")
        if collection.search is not None:  # the effort tuned on the collection, not on the FAISS files
            spec = spec.model_copy(update={"search": collection.search})
        self.spec = spec
        self.modality = spec.modality
        self.dim = dim
        self.collection = collection.name
        self.mean: Matrix | None = None if collection.mean is None else np.asarray(collection.mean, np.float32)
        self.link = link
        self._loaded_by: Any = None  # the client that loaded the collection (a new connection loads again)

    @property
    def size(self) -> int:
        """Items the bundle's index pushed; ``count()`` is what the collection serves now."""
        return self.spec.size

    def payload_columns(self) -> list[str]:
        return list(self.spec.milvus.payload) if self.spec.milvus else []

    def units(self, x: Matrix) -> Matrix:
        return centred_units(x, self.mean)

    def _call(self, fn: Callable[[Any, float], T]) -> T:
        def loaded(client: Any, seconds: float) -> T:
            if self._loaded_by is not client:
                client.load_collection(self.collection, timeout=seconds)
                self._loaded_by = client
            return fn(client, seconds)

        return self.link.call(loaded)

    # -- reading -----------------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """Why the gallery cannot serve now (None when it can): Milvus unreachable, the collection gone, or
        not loaded yet (a Milvus back from a restart loads it first)."""
        try:
            if not self.link.call(lambda c, t: bool(c.has_collection(self.collection, timeout=t))):
                return f"collection {self.collection!r} is missing in Milvus at {self.link.uri}"
            self._call(lambda c, t: None)  # loads the collection on a new connection
        except GalleryUnavailable as exc:
            return exc.detail
        return None

    def count(self) -> int:
        rows = self._call(
            lambda c, t: c.query(self.collection, filter="", output_fields=["count(*)"], timeout=t)
        )
        return int(rows[0]["count(*)"])

    def health(self) -> dict[str, Any]:
        return {"backend": "milvus", "collection": self.collection, "count": self.count()}

    def _rows(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        found = self._call(
            lambda c, t: c.query(self.collection, filter=_id_filter(ids), output_fields=fields, timeout=t)
        )
        return {row["id"]: row for row in found}

    def _unknown(self, item: str) -> UnknownItem:
        return UnknownItem(f"no item {echo(item)} in the {self.modality!r} gallery", modality=self.modality)

    def _payload(self, stored: Any) -> dict[str, Any]:
        stored = stored if isinstance(stored, dict) else {}
        return {c: stored.get(c) for c in self.payload_columns()}

    def get(self, item: str) -> tuple[Hit, Matrix]:
        row = self._rows([item], [*FIELDS, "raw"]).get(item)
        if row is None:
            raise self._unknown(item)
        hit = Hit(item, 1.0, str(row.get("sample") or ""), self._payload(row.get("payload")))
        return hit, np.asarray(row["raw"], np.float32).reshape(1, -1)

    def vectors_of(self, ids: Sequence[str]) -> Matrix:
        rows = self._rows(list(dict.fromkeys(ids)), ["id", "raw"])
        for item in ids:
            if item not in rows:
                raise self._unknown(item)
        if not ids:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray([rows[item]["raw"] for item in ids], np.float32)

    # -- search ------------------------------------------------------------------------------------

    def check_where(self, where: Where | None) -> None:
        check_where_values(where)
        for column in where or {}:
            if column not in self.payload_columns():
                raise UnknownPayloadColumn(
                    f"the {self.modality!r} gallery has no payload column {column!r}; "
                    f"columns: {self.payload_columns()}",
                    columns=self.payload_columns(),
                )

    def _search_params(self, effort: int | None, want: int, fraction: float = 1.0) -> dict[str, Any]:
        """The effort of one search, raised as the FAISS gallery raises it when a filter leaves ``fraction`` of
        the rows (a graph search through few matching rows stops short of far ones otherwise)."""
        parameter = self.spec.search.parameter
        params: dict[str, Any] = {}
        if parameter is not None and effort is not None:
            name = SEARCH_PARAMETER[parameter]
            if name == "ef":
                params[name] = max(min(int(effort / fraction), max(effort, FILTERED_EF_MAX)), want)
            else:
                params[name] = min(int(effort / fraction), self.spec.search.limit or effort)
        return {"metric_type": "IP", "params": params}

    def _matching(self, expression: str) -> int:
        """How many rows a filter expression leaves."""
        rows = self._call(
            lambda c, t: c.query(self.collection, filter=expression, output_fields=["count(*)"], timeout=t)
        )
        return int(rows[0]["count(*)"])

    def search(self, x: Matrix, k: int, options: SearchOptions | None = None) -> list[list[Hit]]:
        """The ``k`` best items per raw query row, best first (Milvus ranks; scores are centred cosines)."""
        o = options or SearchOptions()
        self.check_where(o.where)
        effort = search_effort(self.spec, o.effort)
        q = self.units(x)
        want = k + (1 if o.exclude else 0)
        expression = filter_expression(o.where)
        fraction = 1.0
        if expression:
            matching = self._matching(expression)
            if matching == 0:
                return [[] for _ in range(len(q))]
            fraction = min(1.0, matching / max(1, self.size))
        params = self._search_params(effort, want, fraction)
        found = self._call(
            lambda c, t: c.search(
                self.collection,
                data=q.tolist(),
                limit=want,
                filter=expression,
                output_fields=["sample", "payload"],
                search_params=params,
                timeout=t,
            )
        )
        results = []
        for i, hits in enumerate(found):
            skip = o.exclude[i] if o.exclude else None
            out = []
            for hit in hits:
                entity = hit.get("entity", {})
                item = str(hit.get("id"))
                if item != skip:
                    payload = self._payload(entity.get("payload"))
                    out.append(Hit(item, float(hit.get("distance")), str(entity.get("sample") or ""), payload))
            results.append(out[:k])
        return results

    # -- writes ------------------------------------------------------------------------------------

    def _check_payload(self, n: int, payload: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        payload = payload_per_id(n, payload)
        for p in payload:
            for column, value in p.items():
                if column not in self.payload_columns():
                    raise unknown_column(self.modality, column, self.payload_columns())
                if value is not None and not isinstance(value, str | int | float | bool):
                    raise InvalidWrite(f"payload column {column!r} holds scalars, got {type(value).__name__}")
        return [{c: jsonable(v) for c, v in p.items() if v is not None} for p in payload]

    def upsert(
        self, ids: Sequence[str], vectors: Matrix, payload: Sequence[Mapping[str, Any]] | None
    ) -> WriteResult:
        ids = list(ids)
        if len(ids) != len(vectors):
            raise InvalidWrite(f"{len(ids)} ids for {len(vectors)} vectors; give one id per vector")
        if len(set(ids)) != len(ids):
            raise InvalidWrite("an id appears twice in one write")
        if any(not item or len(item) > MAX_ID_LENGTH for item in ids):
            raise InvalidWrite(f"ids must be non-empty strings of at most {MAX_ID_LENGTH} characters")
        payloads = self._check_payload(len(ids), payload)
        raw = np.asarray(vectors, np.float32)
        units = self.units(raw)
        rows = [
            {"id": item, "vector": units[i].tolist(), "raw": raw[i].tolist(), "sample": "", "payload": payloads[i]}
            for i, item in enumerate(ids)
        ]
        self._call(lambda c, t: c.upsert(self.collection, data=rows, timeout=t))  # idempotent: safe to retry
        return WriteResult(len(ids), count=self.count())

    def delete(self, ids: Sequence[str]) -> WriteResult:
        wanted = list(dict.fromkeys(ids))
        present = [i for i in wanted if i in self._rows(wanted, ["id"])]
        if present:
            self._call(lambda c, t: c.delete(self.collection, ids=present, timeout=t))
        missing = [item for item in ids if item not in set(present)]
        return WriteResult(len(present), missing=missing, count=self.count())


def _conforms(gallery: MilvusGallery) -> GalleryBackend:
    """mypy checks here that the Milvus gallery implements the backend interface."""
    return gallery
