"""GET /modalities: the modalities of the bundle, their dimensions and galleries."""

from __future__ import annotations

from fastapi import APIRouter
from latent_bridge.service.bundle import Bundle
from latent_bridge.service.deps import BundleDep
from latent_bridge.service.responses import problems
from latent_bridge.service.schemas import GalleryInfo, ModalitiesResponse, ModalityInfo

router = APIRouter(tags=["graph"])


def modality_infos(bundle: Bundle) -> list[ModalityInfo]:
    infos = []
    for m in bundle.manifest.modalities:
        gallery = bundle.galleries.get(m.name)
        infos.append(
            ModalityInfo(
                name=m.name,
                dim=m.dim,
                normalization=m.normalization,
                description=m.description,
                gallery=None
                if gallery is None
                else GalleryInfo(
                    size=gallery.size, index_type=gallery.spec.index_type, payload=sorted(gallery.payload)
                ),
                encoder=bundle.encoders[m.name].spec.input if m.name in bundle.encoders else None,
            )
        )
    return infos


@router.get(
    "/modalities",
    response_model=ModalitiesResponse,
    responses=problems(503),
    summary="List the modalities of the bundle",
)
async def list_modalities(bundle: BundleDep) -> ModalitiesResponse:
    """Every modality with its dimension, input normalisation and retrieval gallery (if any)."""
    return ModalitiesResponse(bundle=bundle.name, modalities=modality_infos(bundle))
