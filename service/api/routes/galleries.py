"""Galleries as collections: read one's state or an item (GET), write items at run time (PUT, DELETE).

Writes are acknowledged only once they are in the gallery's log on disk (fsynced), and searches started
after the answer see them. The write routes are admin-scoped: mounted only when the server has a key.
A reload to another bundle serves that bundle's own log; writes made against the old bundle stay in the
old bundle's log (fold them into a new bundle with ``latent-bridge compact``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from latent_bridge.service.api.deps import Served, ServedDep
from latent_bridge.service.api.responses import problems
from latent_bridge.service.api.routes.base import JSONBodyRoute
from latent_bridge.service.api.schemas import (
    GalleryInfo,
    GallerySearchInfo,
    Item,
    ItemsDelete,
    ItemsUpsert,
    WriteResponse,
)
from latent_bridge.service.api.vectors import decode
from latent_bridge.service.errors import InvalidWrite, WriteFailed, WritesUnavailable
from latent_bridge.service.galleries.backend import GalleryBackend, check_ids
from starlette.concurrency import run_in_threadpool

reader = APIRouter(prefix="/galleries", tags=["retrieval"])
writer = APIRouter(prefix="/galleries", tags=["galleries"], route_class=JSONBodyRoute)
ModalityPath = Annotated[
    str, Path(description="The gallery's modality.", pattern=r"^[a-z][a-z0-9_]*$", examples=["image"])
]
WRITE_PROBLEMS = problems(404, 413, 415, 422, 503)
WRITE_PROBLEMS[503]["description"] = (
    "The bundle is not loaded yet, the write could not be made durable, or this server takes no writes "
    "(it runs more than one worker process)."
)


def gallery_info(gallery: GalleryBackend) -> GalleryInfo:
    tuning = gallery.spec.search
    return GalleryInfo(
        size=gallery.size,
        count=gallery.count(),
        index_type=gallery.spec.index_type,
        payload=sorted(gallery.payload_columns()),
        search=GallerySearchInfo(
            parameter=tuning.parameter,
            value=tuning.value,
            limit=tuning.limit,
            recall_at_10=tuning.recall_at_10,
            p50_ms=tuning.p50_ms,
        ),
    )


@reader.get(
    "/{modality}", response_model=GalleryInfo, responses=problems(404, 422, 503), summary="A gallery's state"
)
async def get_gallery(served: ServedDep, modality: ModalityPath) -> GalleryInfo:
    """Size in the bundle, items served now, index type, payload columns and the measured search tuning."""
    return await run_in_threadpool(gallery_info, served.bundle.gallery(modality))  # count() may ask Milvus


@reader.get(
    "/{modality}/items/{item:path}", response_model=Item, responses=problems(404, 422, 503), summary="A stored item"
)
async def get_item(
    served: ServedDep,
    modality: ModalityPath,
    item: Annotated[
        str,
        Path(
            description="The item's id; it may hold `/` (sent as is or as `%2F`).",
            examples=["image:animals/mammals/dogs/dog"],
        ),
    ],
) -> Item:
    """The item's payload and raw embedding, as stored in the bundle or written since."""
    check_ids([item], served.settings.max_id_bytes, served.settings.max_request_id_bytes)
    hit, vector = await run_in_threadpool(served.bundle.gallery(modality).get, item)  # may ask Milvus
    return Item(id=hit.id, sample=hit.sample, payload=hit.payload, vector=vector[0].tolist())


def _writable(served: Served, modality: str) -> GalleryBackend:
    if served.settings.workers > 1 and served.settings.gallery_backend == "faiss":
        raise WritesUnavailable(
            f"this server runs {served.settings.workers} worker processes, each with its own copy of the "
            "gallery; gallery writes need --workers 1"
        )
    return served.bundle.gallery(modality)


def upsert_items(served: Served, modality: str, body: ItemsUpsert) -> WriteResponse:
    gallery = _writable(served, modality)
    limits = served.settings
    if len(body.ids) > limits.max_batch:
        raise InvalidWrite(f"{len(body.ids)} ids in one write; the limit is {limits.max_batch}")
    check_ids(body.ids, limits.max_id_bytes, limits.max_request_id_bytes)
    if isinstance(body.vectors, list) and len(body.vectors) != len(body.ids):
        raise InvalidWrite(f"{len(body.ids)} ids for {len(body.vectors)} vectors; give one id per vector")
    x = decode(body.vectors, None, body.encoding, modality, gallery.dim, limits.max_batch, limits.max_vector_length)
    try:
        result = gallery.upsert(body.ids, x, body.payload)
    except OSError as exc:
        raise WriteFailed(f"the write could not be logged ({exc.strerror or exc}); nothing was changed") from exc
    return WriteResponse(modality=modality, written=result.written, count=result.count)


def delete_items(served: Served, modality: str, body: ItemsDelete) -> WriteResponse:
    gallery = _writable(served, modality)
    if len(body.ids) > served.settings.max_batch:
        raise InvalidWrite(f"{len(body.ids)} ids in one delete; the limit is {served.settings.max_batch}")
    check_ids(body.ids, served.settings.max_id_bytes, served.settings.max_request_id_bytes)
    try:
        result = gallery.delete(body.ids)
    except OSError as exc:
        raise WriteFailed(f"the delete could not be logged ({exc.strerror or exc}); nothing was changed") from exc
    return WriteResponse(modality=modality, written=result.written, missing=result.missing, count=result.count)


@writer.put(
    "/{modality}/items", response_model=WriteResponse, responses=WRITE_PROBLEMS, summary="Insert or replace items"
)
async def put_items(served: ServedDep, modality: ModalityPath, body: ItemsUpsert) -> WriteResponse:
    """Insert or replace items of the gallery (raw vectors of its modality, optional payload). Durable
    before the answer: logged and fsynced beside the bundle, replayed at start; searches see it at once."""
    return await run_in_threadpool(upsert_items, served, modality, body)


@writer.delete(
    "/{modality}/items", response_model=WriteResponse, responses=WRITE_PROBLEMS, summary="Remove items"
)
async def delete_gallery_items(served: ServedDep, modality: ModalityPath, body: ItemsDelete) -> WriteResponse:
    """Remove items by id (ids not there are listed in `missing`). Durable before the answer."""
    return await run_in_threadpool(delete_items, served, modality, body)
