"""Media the search page shows beside a hit: thumbnails inside the bundle, or files of an installed folder.

The manifest's ``media`` section names, per modality, either a Parquet table of small files
(``id``, ``content_type``, ``data``; checked by sha256 like every bundle file) or a folder outside the
bundle (the demo's sounds stay in the Debian package that ships them). A folder is only ever read at the
path a gallery item's payload names, resolved inside that folder, for a known media suffix: a request
names an item id, never a path. A folder that is not installed simply has no media.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from latent_bridge.service.bundle.files import checked_file
from latent_bridge.service.bundle.manifest import BundleError, Manifest, MediaSpec
from latent_bridge.service.errors import NoMedia, echo
from latent_bridge.service.galleries.backend import GalleryBackend

log = logging.getLogger(__name__)
CONTENT_TYPES = {
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


@dataclass(frozen=True)
class Media:
    """One modality's media: a table of small files by id, or a folder read through the gallery's payload."""

    spec: MediaSpec
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    root: Path | None = None

    def get(self, gallery: GalleryBackend, item: str) -> tuple[bytes, str]:
        """(bytes, content type) of the item's media, or ``NoMedia``."""
        hit, _ = gallery.get(item)  # 404 unknown-item for an id the gallery lacks
        if item in self.files:
            content_type, data = self.files[item]
            return data, content_type
        if self.root is None:
            raise NoMedia(f"item {echo(item)} of {self.spec.modality!r} has no media here", modality=self.spec.modality)
        relative = hit.payload.get(self.spec.column)
        path = self._file(relative) if isinstance(relative, str) and relative and "\0" not in relative else None
        if path is None:  # no name, a NUL in it (no file has one), outside the folder, or not a media file
            raise NoMedia(f"item {echo(item)} of {self.spec.modality!r} has no media file", modality=self.spec.modality)
        return path.read_bytes(), CONTENT_TYPES[path.suffix.lower()]

    def _file(self, relative: str) -> Path | None:
        """The media file a payload names, resolved inside the folder; None when there is none there."""
        assert self.root is not None
        try:
            path = (self.root / relative).resolve()
            if path.is_relative_to(self.root) and path.suffix.lower() in CONTENT_TYPES and path.is_file():
                return path
        except (OSError, ValueError):  # a name too long for the file system, or one it cannot hold
            return None
        return None


def _table(bundle_dir: Path, spec: MediaSpec) -> dict[str, tuple[str, bytes]]:

    assert spec.file is not None and spec.sha256 is not None
    path = checked_file(bundle_dir, spec.file, spec.sha256)
    try:
        table = pq.read_table(path, columns=["id", "content_type", "data"]).to_pydict()
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise BundleError(f"{path}: not a media table with id, content_type, data ({exc})") from exc
    return {
        str(i): (str(t), bytes(d))
        for i, t, d in zip(table["id"], table["content_type"], table["data"], strict=True)
    }


def open_media(bundle_dir: Path, manifest: Manifest) -> dict[str, Media]:
    media = {}
    for spec in manifest.media:
        if spec.file is not None:
            media[spec.modality] = Media(spec, files=_table(bundle_dir, spec))
        elif spec.root is not None and Path(spec.root).is_dir():
            media[spec.modality] = Media(spec, root=Path(spec.root).resolve())
        else:
            log.info("media of %r: folder %s is not installed; no media served", spec.modality, spec.root)
    return media
