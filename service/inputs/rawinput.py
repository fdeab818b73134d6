"""Raw input of a request (text, image files, audio files) checked and decoded before any encoder runs.

Limits come first and cost little: the number of items, each file's size, an image's pixel count read
from its header, a sound's duration and sample rate read from its header; only then is anything decoded.
Every problem is a ``ServiceError`` naming the item (``image 2``) and the limit, so the caller can fix it.
Pillow and PyAV are imported on first use: a server whose bundle has no encoders never needs them.

Only an allow-list of formats is ever decoded, chosen from the file's first bytes (its magic number), never by
letting Pillow or FFmpeg guess: Pillow opens every format it knows (EPS runs Ghostscript), and FFmpeg's probe
reaches demuxers that open network ports (SDP, RTP), read server-local files (concat, playlists) or devices.
Images: PNG, JPEG, WebP, GIF, BMP. Sound: WAV (PCM), FLAC, Ogg (Vorbis, Opus), MP3, M4A/MP4 and ADTS (AAC).
Anything else is 415, naming the accepted formats. Within them the size limits bound the work: an image's
pixels (and, for an encoder that pads to a square, the square's) are checked from its header before a pixel
is decoded, a sound's decoded samples as they come; ``RawLimits.deadline`` stops a request's loop between
items once it has run out of time, so nothing keeps running for a caller that has been answered 504.
"""

from __future__ import annotations

import binascii
import io
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from latent_bridge.service.errors import (
    AudioTooLong,
    BatchTooLarge,
    EmptyBatch,
    InputTooLarge,
    MalformedInput,
    RequestTimeout,
    UnreadableMedia,
    UnsupportedFormat,
    UnsupportedSampleRate,
)
from latent_bridge.service.inputs.b64 import b64decode

# Outside these rates a file is more likely broken than real, and resampling it would make noise.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
GROUP_SAMPLES = 500_000  # faster-whisper resamples in chunks of this many samples


@dataclass(frozen=True)
class RawLimits:
    max_items: int
    max_media_bytes: int
    max_image_pixels: int
    max_audio_seconds: float
    max_text_chars: int
    batch: int = 4  # items an encoder runs through its model at once
    deadline: float | None = None  # time.monotonic() after which the work stops (RequestTimeout)
    timeout: float = 0.0  # the request's time limit in seconds, as the error names it

    def check_deadline(self) -> None:
        """Raise ``RequestTimeout`` once the deadline has passed: called between items and batches."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RequestTimeout(self.timeout)


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


# Pillow's format name for each accepted image format, told apart by their first bytes.
IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WebP": "WEBP", "GIF": "GIF", "BMP": "BMP"}
ACCEPTED_IMAGES = ", ".join(IMAGE_FORMATS)


def image_format(data: bytes) -> str | None:
    """The accepted image format ``data`` starts as (a key of ``IMAGE_FORMATS``), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def read_image(
    data: bytes, i: int, max_pixels: int, background: tuple[int, int, int], square: bool = False
) -> Any:
    """An RGB PIL image, transparency composited on ``background``; the size is checked before decoding:
    the image's pixels and, with ``square`` (an encoder that pads the image to a square), the square's."""
    image_mod = _pillow()
    name = image_format(data)
    if name is None:
        raise UnsupportedFormat(
            f"image {i} is not an accepted image file (its first bytes are not those of {ACCEPTED_IMAGES}); "
            f"send {ACCEPTED_IMAGES}",
            accepted=list(IMAGE_FORMATS),
            item=i,
        )
    try:
        img = image_mod.open(io.BytesIO(data), formats=[IMAGE_FORMATS[name]])
    except image_mod.DecompressionBombError as exc:  # Pillow's own limit, checked on the header
        bomb = 2 * (image_mod.MAX_IMAGE_PIXELS or 0)
        got = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{got[1]} pixels" if got else "more pixels than the decoder takes"
        raise InputTooLarge(
            f"image {i} has {pixels}; the limit is {min(max_pixels, bomb) if bomb else max_pixels}",
            limit=min(max_pixels, bomb) if bomb else max_pixels,
            **({"got": int(got[1])} if got else {}),
            item=i,
        ) from exc
    except Exception as exc:  # Pillow raises many types for a broken file
        raise UnreadableMedia(f"image {i} cannot be read as {name}: {_reason(exc)}", item=i) from exc
    with img:
        pixels = img.width * img.height
        if pixels > max_pixels:
            raise InputTooLarge(
                f"image {i} is {img.width}×{img.height} = {pixels} pixels; the limit is {max_pixels}",
                limit=max_pixels,
                got=pixels,
                item=i,
            )
        side = max(img.size)
        if square and side * side > max_pixels:
            raise InputTooLarge(
                f"image {i} is {img.width}×{img.height}, which the encoder pads to a {side}×{side} square = "
                f"{side * side} pixels; the limit is {max_pixels} (crop it closer to a square, or shrink it)",
                limit=max_pixels,
                got=side * side,
                item=i,
            )
        try:
            rgba = img.convert("RGBA")
        except Exception as exc:
            raise UnreadableMedia(f"image {i} cannot be decoded as {name}: {_reason(exc)}", item=i) from exc
    canvas = image_mod.new("RGBA", rgba.size, (*background, 255))
    return image_mod.alpha_composite(canvas, rgba).convert("RGB")


_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9A-Fa-f]+>")


def _reason(exc: Exception) -> str:
    """The first line of a decoder's message, without object reprs (``<_io.BytesIO object at 0x…>``)."""
    text = _REPR.sub("", str(exc).split("\n")[0])[:200].strip()
    return text or type(exc).__name__


# --- audio -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFormat:
    demuxer: str  # the FFmpeg demuxer opened for it, and no other
    codecs: frozenset[str]  # FFmpeg decoders accepted in it
    codec_prefix: str = ""  # or any decoder whose name starts so (WAV's many PCM variants)

    def takes(self, codec: str) -> bool:
        return codec in self.codecs or (bool(self.codec_prefix) and codec.startswith(self.codec_prefix))


AUDIO_FORMATS = {
    "WAV": AudioFormat("wav", frozenset(), "pcm_"),
    "FLAC": AudioFormat("flac", frozenset({"flac"})),
    "Ogg": AudioFormat("ogg", frozenset({"vorbis", "libvorbis", "opus", "libopus"})),
    "MP3": AudioFormat("mp3", frozenset({"mp3", "mp3float"})),
    "M4A": AudioFormat("mp4", frozenset({"aac", "aac_fixed"})),  # FFmpeg's mov/mp4 demuxer, drefs off
    "AAC": AudioFormat("aac", frozenset({"aac", "aac_fixed"})),  # raw ADTS
}
ACCEPTED_AUDIO = "WAV (PCM), FLAC, Ogg (Vorbis, Opus), MP3, M4A (AAC), AAC (ADTS)"


def audio_format(data: bytes) -> str | None:
    """The accepted sound format ``data`` starts as (a key of ``AUDIO_FORMATS``), or None."""
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "WAV"
    if data.startswith(b"fLaC"):
        return "FLAC"
    if data.startswith(b"OggS"):
        return "Ogg"
    if data.startswith(b"ID3"):
        return "MP3"
    if data[4:8] == b"ftyp":
        return "M4A"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # an MPEG audio frame's sync word
        return "AAC" if data[1] & 0xF6 == 0xF0 else "MP3"  # layer bits 00: ADTS
    return None


def read_audio(data: bytes, i: int, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 at ``sample_rate``, decoded and resampled by FFmpeg (PyAV) exactly as faster-whisper's
    ``decode_audio`` did for the dataset: another decoder keeps or trims other samples at a file's end
    (libsndfile honours an Ogg end trim that FFmpeg ignores), which moves the embedding. The container is
    opened with the one demuxer its first bytes name (FFmpeg probes nothing), and its codec must be one
    the format allows. The sample rate and, when the container states it, the duration are checked before
    decoding; the decoded length too."""
    import av

    name = audio_format(data)
    if name is None:
        raise UnsupportedFormat(
            f"audio {i} is not an accepted sound file (its first bytes are not those of {ACCEPTED_AUDIO}); "
            f"send {ACCEPTED_AUDIO}",
            accepted=list(AUDIO_FORMATS),
            item=i,
        )
    allowed = AUDIO_FORMATS[name]
    try:
        container = av.open(io.BytesIO(data), mode="r", format=allowed.demuxer, metadata_errors="ignore")
    except Exception as exc:  # PyAV raises FFmpeg's many error types for a broken file
        raise UnreadableMedia(f"audio {i} cannot be read as {name} ({_reason(exc)})", item=i) from exc
    with container:
        if not container.streams.audio:
            raise UnreadableMedia(f"audio {i} has no audio stream", item=i)
        codec = container.streams.audio[0].codec_context.name
        if not allowed.takes(codec):
            raise UnsupportedFormat(
                f"audio {i} is {name} holding {codec}, which is not accepted; send {ACCEPTED_AUDIO}",
                accepted=list(AUDIO_FORMATS),
                item=i,
            )
        rate = int(container.streams.audio[0].codec_context.sample_rate or 0)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise UnsupportedSampleRate(
                f"audio {i} has a sample rate of {rate} Hz, which cannot be resampled to {sample_rate} Hz; "
                f"send {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz",
                got=rate,
                minimum=MIN_SAMPLE_RATE,
                maximum=MAX_SAMPLE_RATE,
                item=i,
            )
        if container.duration is not None and container.duration / 1e6 > max_seconds:
            raise _too_long(i, container.duration / 1e6, max_seconds)
        samples = _decode(av, container, i, sample_rate, int(max_seconds * sample_rate))
    if samples.size == 0:
        raise UnreadableMedia(f"audio {i} holds no samples", item=i)
    return samples


def _too_long(i: int, seconds: float | None, limit: float) -> AudioTooLong:
    lasts = f"lasts {seconds:.1f} s" if seconds is not None else "is longer than the limit"
    return AudioTooLong(
        f"audio {i} {lasts}; the limit is {limit:g} s",
        limit=limit,
        **({"got": round(seconds, 3)} if seconds is not None else {}),
        item=i,
    )


def _decode(av: Any, container: Any, i: int, sample_rate: int, max_samples: int) -> np.ndarray:
    """faster-whisper's pipeline: skip invalid frames, group into large chunks, resample to s16 mono."""
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    fifo = av.audio.fifo.AudioFifo()
    chunks: list[np.ndarray] = []
    total = 0

    def take(frame: Any) -> None:
        nonlocal total
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1)
            total += chunk.size
            if total > max_samples:
                raise _too_long(i, None, max_samples / sample_rate)
            chunks.append(chunk)

    try:
        frames = container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.InvalidDataError:
                continue
            frame.pts = None
            fifo.write(frame)
            if fifo.samples >= GROUP_SAMPLES:
                take(fifo.read())
        if fifo.samples > 0:
            take(fifo.read())
        take(None)
    except av.error.FFmpegError as exc:
        raise UnreadableMedia(f"audio {i} cannot be decoded ({_reason(exc)})", item=i) from exc
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    out: np.ndarray = pcm.astype(np.float32) / 32768.0
    return out
