"""GET /media: the thumbnail or sound of a gallery item, for the search page (``media.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from latent_bridge.service.api.deps import ServedDep
from latent_bridge.service.api.responses import problems
from latent_bridge.service.errors import NoMedia
from latent_bridge.service.galleries.backend import check_ids
from starlette.responses import Response

router = APIRouter(tags=["retrieval"])


@router.get(
    "/media",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}, "audio/*": {}}, "description": "The media file."},
        **problems(404, 422, 503),
    },
    summary="The thumbnail or sound of a gallery item",
)
def get_media(  # a plain def runs in the thread pool: a slow gallery store never holds up the event loop
    served: ServedDep,
    modality: Annotated[str, Query(description="Modality of the item.", examples=["image"])],
    item: Annotated[
        str,
        Query(alias="id", description="Id of an item of that gallery.", examples=["image:animals/mammals/dogs/dog"]),
    ],
) -> Response:
    """The media the bundle ships (thumbnails) or points at (an installed folder) for item `id` of the
    `modality` gallery; 404 when the item has none here. The id is checked like every id, before any lookup."""
    check_ids([item], served.settings.max_id_bytes, served.settings.max_request_id_bytes)
    bundle = served.bundle
    gallery = bundle.gallery(modality)
    media = bundle.media.get(modality)
    if media is None:
        gallery.get(item)  # 404 unknown-item first
        raise NoMedia(f"modality {modality!r} has no media in this bundle", modality=modality)
    data, content_type = media.get(gallery, item)
    return Response(data, media_type=content_type, headers={"cache-control": "private, max-age=3600"})
