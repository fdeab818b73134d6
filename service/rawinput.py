"""Raw input of a request (text, image files, audio files) checked and decoded before any encoder runs.

Limits come first and cost little: the number of items, each file's size, an image's pixel count read
from its header, a sound's duration and sample rate read from its header; only then is anything decoded.
Every problem is a ``ServiceError`` naming the item (``image 2``) and the limit, so the caller can fix it.
Pillow, soundfile and soxr are imported on first use: a server whose bundle has no encoders never needs them.
"""

from __future__ import annotations

import binascii
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from latent_bridge.service.errors import (
    AudioTooLong,
    BatchTooLarge,
    EmptyBatch,
    InputTooLarge,
    MalformedInput,
    UnreadableMedia,
    UnsupportedSampleRate,
)
from latent_bridge.service.vectors import b64decode

# Outside these rates a file is more likely broken than real, and resampling it would make noise.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000


@dataclass(frozen=True)
class RawLimits:
    max_items: int
    max_media_bytes: int
    max_image_pixels: int
    max_audio_seconds: float
    max_text_chars: int


def as_list(value: str | list[str], kind: str, limits: RawLimits) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise EmptyBatch(f"`{kind}` is an empty list; send between 1 and {limits.max_items} items")
    if len(items) > limits.max_items:
        raise BatchTooLarge(got=len(items), limit=limits.max_items)
    return items


def texts(value: str | list[str], limits: RawLimits) -> list[str]:
    items = as_list(value, "text", limits)
    for i, text in enumerate(items):
        if len(text) > limits.max_text_chars:
            raise InputTooLarge(
                f"text {i} has {len(text)} characters; the limit is {limits.max_text_chars}",
                limit=limits.max_text_chars,
                got=len(text),
                item=i,
            )
    return items


def file_bytes(value: str | list[str], kind: str, limits: RawLimits) -> list[bytes]:
    """Base64 strings (a data: URL prefix is allowed) to bytes, each within the file size limit."""
    out = []
    for i, text in enumerate(as_list(value, kind, limits)):
        if text.startswith("data:"):
            text = text.partition(",")[2]
        if len(text) * 3 // 4 > limits.max_media_bytes + 3:
            raise _too_large(kind, i, len(text) * 3 // 4, limits.max_media_bytes)
        try:
            data = b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedInput(f"{kind} {i} is not valid base64 ({exc})", item=i) from exc
        if len(data) > limits.max_media_bytes:
            raise _too_large(kind, i, len(data), limits.max_media_bytes)
        if not data:
            raise UnreadableMedia(f"{kind} {i} is empty", item=i)
        out.append(data)
    return out


def _too_large(kind: str, i: int, size: int, limit: int) -> InputTooLarge:
    return InputTooLarge(f"{kind} {i} has {size} bytes; the limit is {limit}", limit=limit, got=size, item=i)


# --- images ----------------------------------------------------------------------------------------


def _pillow() -> Any:
    from PIL import Image

    return Image


def read_image(data: bytes, i: int, max_pixels: int, background: tuple[int, int, int]) -> Any:
    """An RGB PIL image, transparency composited on ``background``; the size is checked before decoding."""
    image_mod = _pillow()
    try:
        img = image_mod.open(io.BytesIO(data))
    except Exception as exc:  # Pillow raises many types for a broken file
        raise UnreadableMedia(f"image {i} cannot be read: {_reason(exc)}", item=i) from exc
    with img:
        pixels = img.width * img.height
        if pixels > max_pixels:
            raise InputTooLarge(
                f"image {i} is {img.width}×{img.height} = {pixels} pixels; the limit is {max_pixels}",
                limit=max_pixels,
                got=pixels,
                item=i,
            )
        try:
            rgba = img.convert("RGBA")
        except Exception as exc:
            raise UnreadableMedia(f"image {i} cannot be decoded: {_reason(exc)}", item=i) from exc
    canvas = image_mod.new("RGBA", rgba.size, (*background, 255))
    return image_mod.alpha_composite(canvas, rgba).convert("RGB")


def _reason(exc: Exception) -> str:
    return str(exc).split("\n")[0][:200] or type(exc).__name__


# --- audio -----------------------------------------------------------------------------------------


def read_audio(data: bytes, i: int, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 at ``sample_rate``; duration and rate are checked from the header before decoding."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        raise UnreadableMedia(
            f"audio {i} cannot be read ({_reason(exc)}); send WAV, FLAC, Ogg (Vorbis/Opus) or MP3", item=i
        ) from exc
    rate = int(info.samplerate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedSampleRate(
            f"audio {i} has a sample rate of {rate} Hz, which cannot be resampled to {sample_rate} Hz; "
            f"send {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz",
            got=rate,
            minimum=MIN_SAMPLE_RATE,
            maximum=MAX_SAMPLE_RATE,
            item=i,
        )
    seconds = info.frames / rate if info.frames > 0 else 0.0
    if seconds > max_seconds:
        raise AudioTooLong(
            f"audio {i} lasts {seconds:.1f} s; the limit is {max_seconds:g} s",
            limit=max_seconds,
            got=round(seconds, 3),
            item=i,
        )
    try:
        samples, _ = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise UnreadableMedia(f"audio {i} cannot be decoded: {_reason(exc)}", item=i) from exc
    if len(samples) > max_seconds * rate:  # a header may lie about the length
        raise AudioTooLong(f"audio {i} is longer than {max_seconds:g} s", limit=max_seconds, item=i)
    if len(samples) == 0:
        raise UnreadableMedia(f"audio {i} holds no samples", item=i)
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
