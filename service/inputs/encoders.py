"""A bundle's encoders: raw text, images and sound embedded exactly as the dataset was (docs/architecture.md, "Bundle").

Each modality may name an encoder in the manifest: its files (hashed like every other bundle file) and
its preprocessing. Three kinds exist, one per kind of input:

- ``onnx-text``: a tokenizer (``tokenizers``' JSON) and an ONNX model taking ``input_ids``,
  ``attention_mask`` and ``token_type_ids``, with its pooling and normalisation inside the graph.
- ``onnx-image``: Pillow/numpy preprocessing (composite on a background, pad to a square, resize,
  ``(x - offset) / scale``) and an ONNX model taking ``pixels`` [n, 3, size, size].
- ``ctranslate2-whisper``: sound decoded and resampled by PyAV (as the dataset was), a numpy log-mel
  spectrogram (mel filters stored in the bundle) of the first ``window_seconds``, the CTranslate2 Whisper
  encoder, and the mean of its frames over the real audio.

The packages each kind needs (onnxruntime, tokenizers, Pillow, PyAV, ctranslate2) are
imported only when a bundle has such an encoder; a missing one refuses the bundle with an install hint.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from latent_bridge.service.bundle.files import checked_file
from latent_bridge.service.bundle.manifest import BundleError, EncoderSpec, InputKind, Manifest
from latent_bridge.service.galleries.backend import Matrix
from latent_bridge.service.inputs.rawinput import RawLimits, file_bytes, read_audio, read_image, texts

INSTALL_HINT = "pip install 'latent-bridge[serve]'"
WARM_UP_TEXT = "a warm-up sentence"


class Encoder(Protocol):
    """``embed`` = ``run`` over each batch ``prepare`` yields; the two halves let a batcher (``batching.py``) run
    the prepared items of many requests in one call."""

    spec: EncoderSpec

    def embed(self, raw: str | list[str], limits: RawLimits) -> Matrix:
        """(n, dim) float32 embeddings of the raw items (text, or base64 files)."""
        ...

    def prepare(self, raw: str | list[str], limits: RawLimits) -> Iterator[list[Any]]:
        """The raw items checked and turned into model inputs (tokens, pixels, mel frames), ``limits.batch``
        at a time, the deadline checked before each batch."""
        ...

    def run(self, items: list[Any]) -> Matrix:
        """One model call over prepared items (of any requests): their (n, dim) float32 rows, in order."""
        ...

    def width(self, items: list[Any]) -> int:
        """What a batch's memory grows with per item, beside their number: the longest token sequence of
        texts (a batch is padded to it); 1 for images and sounds, whose inputs have one shape."""
        ...

    @property
    def max_width(self) -> int:
        """The largest ``width`` an item can have."""
        ...


def _require(module: str, package: str, modality: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BundleError(
            f"the encoder of modality {modality!r} needs the Python package {package!r}: {INSTALL_HINT}"
        ) from exc


def _session(path: Path, threads: int, modality: str) -> Any:
    """An encoder's session, without onnxruntime's CPU memory arena: the arena keeps the peak of the largest
    batch ever run (a burst of long texts left the process 1.9 GB larger while idle), freed memory goes back
    to the allocator instead."""
    ort = _require("onnxruntime", "onnxruntime", modality)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad model
        raise BundleError(f"{path}: not a loadable ONNX model ({str(exc)[:200]})") from exc


class TextEncoder:
    def __init__(self, spec: EncoderSpec, files: dict[str, Path], threads: int) -> None:
        assert spec.text is not None
        self.spec = spec
        tokenizers = _require("tokenizers", "tokenizers", spec.modality)
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(files["tokenizer"]))
        except Exception as exc:
            raise BundleError(f"{files['tokenizer']}: not a tokenizers JSON file ({exc})") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(spec.text.max_tokens)
        self.session = _session(files["model"], threads, spec.modality)

    def embed(self, raw: str | list[str], limits: RawLimits) -> Matrix:
        return _embed(self, raw, limits)

    def prepare(self, raw: str | list[str], limits: RawLimits) -> Iterator[list[Any]]:
        encodings = self.tokenizer.encode_batch(texts(raw, limits))
        for rows in _chunks(len(encodings), limits):
            yield [encodings[r] for r in rows]

    def width(self, encodings: list[Any]) -> int:
        return max(len(e.ids) for e in encodings)

    @property
    def max_width(self) -> int:
        assert self.spec.text is not None
        return self.spec.text.max_tokens

    def run(self, encodings: list[Any]) -> Matrix:
        """Padded to the longest with an attention mask: a row equals its unpadded run to ~3e-8."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out: Matrix = self.session.run(None, feed)[0].astype(np.float32, copy=False)
        return out


class ImageEncoder:
    def __init__(self, spec: EncoderSpec, files: dict[str, Path], threads: int) -> None:
        assert spec.image is not None
        self.spec = spec
        self.pre = spec.image
        self.image_mod = _require("PIL.Image", "pillow", spec.modality)
        self.session = _session(files["model"], threads, spec.modality)

    def pixels(self, image: Any) -> np.ndarray:
        """(3, size, size) float32: padded to a square on the background, resized, shifted and scaled
        (``read_image(..., square=True)`` has checked the square's size)."""
        side = max(image.size)
        canvas = self.image_mod.new("RGB", (side, side), self.pre.background)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        resample = getattr(self.image_mod.Resampling, self.pre.resample.upper())
        resized = np.asarray(canvas.resize((self.pre.size, self.pre.size), resample), dtype=np.float32)
        return ((resized - self.pre.offset) / self.pre.scale).transpose(2, 0, 1)

    def embed(self, raw: str | list[str], limits: RawLimits) -> Matrix:
        """One image decoded at a time (only its small resized pixels are kept), the model run in batches."""
        return _embed(self, raw, limits)

    def prepare(self, raw: str | list[str], limits: RawLimits) -> Iterator[list[Any]]:
        data = file_bytes(raw, "image", limits)
        for rows in _chunks(len(data), limits):
            yield [self._load(data[i], i, limits) for i in rows]

    def _load(self, data: bytes, i: int, limits: RawLimits) -> np.ndarray:
        limits.check_deadline()
        return self.pixels(read_image(data, i, limits.max_image_pixels, self.pre.background, square=True))

    def width(self, pixels: list[Any]) -> int:
        return 1

    max_width = 1

    def run(self, pixels: list[Any]) -> Matrix:
        batch = np.ascontiguousarray(np.stack(pixels))
        out: Matrix = self.session.run(None, {"pixels": batch})[0].astype(np.float32, copy=False)
        return out


def log_mel(waveform: np.ndarray, filters: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Whisper's log-mel spectrogram (as faster-whisper computes it): (n_mels, len // hop) float32."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    padded = np.pad(waveform.astype(np.float32), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * window
    spectrum = np.fft.rfft(frames, axis=-1).astype(np.complex64)[:-1]
    power = np.abs(spectrum) ** 2
    mel = filters @ power.T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    out: np.ndarray = ((log + 4.0) / 4.0).astype(np.float32)
    return out


class WhisperEncoder:
    def __init__(self, spec: EncoderSpec, files: dict[str, Path], threads: int) -> None:
        assert spec.audio is not None
        self.spec = spec
        self.pre = spec.audio
        self.ct2 = _require("ctranslate2", "ctranslate2", spec.modality)
        _require("av", "av", spec.modality)
        try:
            self.filters = np.load(files["mel_filters"], allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{files['mel_filters']}: not a numpy array file ({exc})") from exc
        expected = (self.pre.n_mels, self.pre.n_fft // 2 + 1)
        if self.filters.shape != expected:
            raise BundleError(f"{files['mel_filters']}: shape {self.filters.shape}, expected {expected}")
        folder = files["model"].parent
        try:
            self.model = self.ct2.models.Whisper(
                str(folder), device="cpu", compute_type=self.pre.compute_type, intra_threads=threads
            )
        except Exception as exc:
            raise BundleError(f"{folder}: not a loadable CTranslate2 Whisper model ({str(exc)[:200]})") from exc

    def features(self, waveform: np.ndarray) -> tuple[np.ndarray, int]:
        """Mel frames of the window (zero-padded) and how many encoder frames cover real audio."""
        window = int(self.pre.sample_rate * self.pre.window_seconds)
        clip = waveform[:window]
        mel = log_mel(np.pad(clip, (0, window - len(clip))), self.filters, self.pre.n_fft, self.pre.hop_length)
        frames = window // self.pre.hop_length
        real = math.ceil(len(clip) / (self.pre.hop_length * self.pre.encoder_stride))
        return np.ascontiguousarray(mel[:, :frames]), max(1, min(real, frames // self.pre.encoder_stride))

    def embed(self, raw: str | list[str], limits: RawLimits) -> Matrix:
        return _embed(self, raw, limits)

    def prepare(self, raw: str | list[str], limits: RawLimits) -> Iterator[list[Any]]:
        """Each sound decoded, resampled and turned into its window's mel frames, one at a time."""
        data = file_bytes(raw, "audio", limits)
        for rows in _chunks(len(data), limits):
            batch = []
            for i in rows:
                limits.check_deadline()
                batch.append(self.features(read_audio(data[i], i, self.pre.sample_rate, limits.max_audio_seconds)))
            yield batch

    def width(self, items: list[Any]) -> int:
        return 1

    max_width = 1

    def run(self, items: list[Any]) -> Matrix:
        """The windows through the encoder at once (all have the same shape); each row the mean of its frames
        over its real audio."""
        mels = np.ascontiguousarray(np.stack([mel for mel, _ in items]))
        hidden = np.asarray(self.model.encode(self.ct2.StorageView.from_array(mels), to_cpu=True), np.float32)
        return np.stack([hidden[row, :real].mean(axis=0) for row, (_, real) in enumerate(items)]).astype(
            np.float32, copy=False
        )


def _chunks(count: int, limits: RawLimits) -> Iterator[range]:
    """The rows in batches of ``limits.batch``, the deadline checked before each: the memory a request takes
    is one batch's, and a request past its deadline stops at the next batch."""
    for start in range(0, count, limits.batch):
        limits.check_deadline()
        yield range(start, min(start + limits.batch, count))


def _embed(encoder: Encoder, raw: str | list[str], limits: RawLimits) -> Matrix:
    """The encoder alone: ``run`` over each prepared batch in turn."""
    parts = [encoder.run(batch) for batch in encoder.prepare(raw, limits)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


KINDS: dict[str, type[TextEncoder] | type[ImageEncoder] | type[WhisperEncoder]] = {
    "onnx-text": TextEncoder,
    "onnx-image": ImageEncoder,
    "ctranslate2-whisper": WhisperEncoder,
}
REQUIRED_ROLES = {
    "onnx-text": {"model", "tokenizer"},
    "onnx-image": {"model"},
    "ctranslate2-whisper": {"model", "config", "mel_filters"},
}


def open_encoder(bundle_dir: Path, spec: EncoderSpec, threads: int) -> Encoder:
    """Check every file of the encoder (inside the bundle, sha256), load it and check its output."""

    missing = REQUIRED_ROLES[spec.kind] - {f.role for f in spec.files}
    if missing:
        raise BundleError(f"{bundle_dir / 'manifest.json'}: encoder of {spec.modality!r} lacks {sorted(missing)}")
    files = {f.role: checked_file(bundle_dir, f.file, f.sha256) for f in spec.files}
    encoder: Encoder = KINDS[spec.kind](spec, files, threads)
    check_output(encoder, bundle_dir / spec.file("model").file)
    return encoder


def warm_up_input(kind: InputKind) -> str:
    """A tiny valid input of each kind: the warm-up and the self-check at load."""
    if kind == "text":
        return WARM_UP_TEXT
    import base64
    import io

    buffer = io.BytesIO()
    if kind == "image":
        from PIL import Image

        Image.new("RGB", (32, 32), (200, 80, 40)).save(buffer, "PNG")
    else:
        import wave

        tone = (3000 * np.sin(np.linspace(0, 440 * 2 * np.pi, 16_000))).astype("<i2")
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16_000)
            out.writeframes(tone.tobytes())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def check_output(encoder: Encoder, path: Path) -> None:
    """One warm-up run whose output must have the manifest's dimension and be finite."""
    limits = RawLimits(1, 1 << 20, 1 << 20, 10.0, 1000)
    out = encoder.embed(warm_up_input(encoder.spec.input), limits)
    if out.shape != (1, encoder.spec.dim) or not np.isfinite(out).all():
        raise BundleError(f"{path}: the encoder gives {out.shape} (finite: {bool(np.isfinite(out).all())}), "
                          f"the manifest says (1, {encoder.spec.dim})")


def open_encoders(bundle_dir: Path, manifest: Manifest, threads: int) -> dict[str, Encoder]:
    return {spec.modality: open_encoder(bundle_dir, spec, threads) for spec in manifest.encoders}
