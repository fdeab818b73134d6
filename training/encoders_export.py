"""Package the demo's real encoders into a bundle, so the server embeds raw input as the dataset was embedded.

``latent-bridge encoders export --bundle models/A --out models/B`` writes a new bundle B: every file of A
byte for byte, plus ``encoders/<modality>/`` for each chosen modality and (with ``--media``) the
thumbnails and sound folder the search page shows. A is never touched (bundles are immutable).

- text:  all-MiniLM-L6-v2 to ONNX with its mean pooling and L2 normalisation inside the graph, plus the
  tokenizer's JSON (the server runs it with ``tokenizers``).
- image: EfficientNet-Lite0 features (pooled, 1280-d) to ONNX; the preprocessing (RGBA on white, padded
  to a square, bicubic 224×224, ``(x - 127) / 128``) is described in the manifest and done with Pillow.
- audio: the CTranslate2 Whisper tiny.en folder faster-whisper loads, copied as is, and its mel filter
  bank as ``mel_filters.npy`` (the server computes the log-mel spectrogram in numpy).

Every ONNX export is checked: ``onnx.checker``, then onnxruntime against torch on real inputs.
The weights come from pip packages (see ``training/datasets/builders/encoders.py``); nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from latent_bridge.service.bundle.manifest import (
    AudioPreprocessing,
    EncoderFile,
    EncoderSpec,
    ImagePreprocessing,
    Manifest,
    MediaSpec,
    TextPreprocessing,
    read_manifest,
    write_manifest,
)
from latent_bridge.training.bundling.writer import Parent, staged_bundle
from latent_bridge.training.datasets.builders import encoders as real
from latent_bridge.training.export import ExportError

PARITY_COSINE = 0.9999
AUDIO_PARITY_COSINE = 0.9999
TEXT_MAX_TOKENS = 256
OPSET = 17
THUMBNAILS = Path("media/image-thumbnails.parquet")
STAMP_SOUNDS = "/usr/share/tuxpaint/stamps"
MEDIA_LICENSE = "Tux Paint stamps (Debian tuxpaint-stamps-default), GPL-2.0; see NOTICE"


@dataclass(frozen=True)
class Exported:
    """An encoder ready to be written: its files' bytes by name, and its manifest entry minus the files."""

    files: dict[str, tuple[str, bytes]]  # role -> (file name, bytes)
    make_spec: Callable[[list[EncoderFile]], EncoderSpec]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _onnx(module: Any, args: tuple[Any, ...], names: list[str], axes: dict[str, dict[int, str]]) -> bytes:
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,  # type: ignore[arg-type]
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes | {"embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return data


def _check(name: str, got: np.ndarray, expected: np.ndarray, least: float) -> float:
    cos = np.sum(got * expected, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    worst = float(cos.min())
    if worst < least:
        raise ExportError(f"{name}: the server's encoder and the dataset's agree only to cosine {worst:.6f} "
                          f"(< {least})")
    return worst


# --- parity: the service's encoder on the written files against the torch encoder ------------------


def _probe_images() -> list[Any]:
    data = real.require("skimage.data", "scikit-image")
    image_mod = real.require("PIL.Image", "pillow")
    return [image_mod.fromarray(getattr(data, n)()).convert("RGBA") for n in ("chelsea", "coffee")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _probe_sound() -> tuple[bytes, np.ndarray]:
    """A spoken caption when espeak-ng is installed, else a chirp: as WAV bytes and as decoded samples."""
    import soundfile

    rate = 22_050
    t = np.arange(int(rate * 2.5)) / rate
    samples = (0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "probe.wav"
        wav.write_bytes(buffer.getvalue())
        if shutil.which("espeak-ng"):
            subprocess.run(["espeak-ng", "-w", str(wav), "A dog barks."], check=True, capture_output=True)
        return wav.read_bytes(), real.load_audio(wav)


def verify(staging: Path, spec: EncoderSpec) -> float:
    """Worst cosine between the served encoder (read back from ``staging``) and the dataset's encoder."""
    from latent_bridge.service.inputs.encoders import open_encoder
    from latent_bridge.service.inputs.rawinput import RawLimits

    encoder = open_encoder(staging, spec, threads=2)
    limits = RawLimits(16, 1 << 26, 1 << 26, 60.0, 100_000)
    if spec.modality == "text":
        captions = ["A dog.", "A fire truck.", "The letter N.", "a very long caption " * 80]
        return _check("text", encoder.embed(captions, limits), real.encode_texts(captions), PARITY_COSINE)
    if spec.modality == "image":
        images = _probe_images()
        flat = [real.load_image(io.BytesIO(_png(img))) for img in images]  # type: ignore[arg-type]
        got = encoder.embed([_b64(_png(img)) for img in images], limits)
        return _check("image", got, real.encode_images(flat), PARITY_COSINE)
    data, samples = _probe_sound()
    got = encoder.embed(_b64(data), limits)
    return _check("audio", got, real.encode_audio(samples)[None], AUDIO_PARITY_COSINE)


# --- text ------------------------------------------------------------------------------------------


def export_text() -> Exported:
    import torch

    model = real._text_model()
    transformer = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        """Mean over real tokens, then L2 normalisation: sentence-transformers' pipeline for this model."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    tokenizer_path = real.text_model_file().parent / "tokenizer.json"
    probe = torch.ones(2, 8, dtype=torch.long)
    seq = {0: "batch", 1: "tokens"}
    data = _onnx(
        Pooled().eval(),
        (probe, probe, torch.zeros_like(probe)),
        ["input_ids", "attention_mask", "token_type_ids"],
        {"input_ids": seq, "attention_mask": seq, "token_type_ids": seq},
    )
    return Exported(
        {"model": ("model.onnx", data), "tokenizer": ("tokenizer.json", tokenizer_path.read_bytes())},
        lambda files: EncoderSpec(
            modality="text",
            kind="onnx-text",
            model="all-MiniLM-L6-v2 (sentence-transformers): mean pooling over tokens, L2-normalised",
            dim=real.TEXT_DIM,
            files=files,
            text=TextPreprocessing(max_tokens=TEXT_MAX_TOKENS),
        ),
    )


# --- image -----------------------------------------------------------------------------------------


def export_image() -> Exported:
    import torch

    model = real._image_model()

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: Any) -> Any:
            return self.model._avg_pooling(self.model.extract_features(pixels)).flatten(1)

    module = Features().eval()
    size = real.IMAGE_SIZE
    data = _onnx(module, (torch.zeros(2, 3, size, size),), ["pixels"], {"pixels": {0: "batch"}})
    return Exported(
        {"model": ("model.onnx", data)},
        lambda files: EncoderSpec(
            modality="image",
            kind="onnx-image",
            model="EfficientNet-Lite0 (ImageNet), global-average-pooled features",
            dim=real.IMAGE_DIM,
            files=files,
            image=ImagePreprocessing(
                size=size, background=(255, 255, 255), resample="bicubic", offset=127.0, scale=128.0
            ),
        ),
    )


# --- audio -----------------------------------------------------------------------------------------


def export_audio() -> Exported:
    from faster_whisper.feature_extractor import FeatureExtractor

    folder = real._whisper_folder()
    filters = FeatureExtractor(feature_size=80).mel_filters.astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, filters, allow_pickle=False)
    files = {
        "model": ("model.bin", (folder / "model.bin").read_bytes()),
        "config": ("config.json", (folder / "config.json").read_bytes()),
        "vocabulary": ("vocabulary.txt", (folder / "vocabulary.txt").read_bytes()),
        "mel_filters": ("mel_filters.npy", buffer.getvalue()),
    }
    return Exported(
        files,
        lambda specs: EncoderSpec(
            modality="audio",
            kind="ctranslate2-whisper",
            model=f"Whisper tiny.en encoder (CTranslate2, {real.AUDIO_COMPUTE_TYPE}): "
            "mean of the frames covering real audio",
            dim=real.AUDIO_DIM,
            files=specs,
            audio=AudioPreprocessing(
                sample_rate=real.SAMPLE_RATE,
                window_seconds=real.AUDIO_WINDOW_S,
                n_fft=400,
                hop_length=real.HOP,
                n_mels=80,
                encoder_stride=real.ENCODER_STRIDE,
                compute_type=real.AUDIO_COMPUTE_TYPE,
            ),
        ),
    )


EXPORTERS: dict[str, Callable[[], Exported]] = {"text": export_text, "image": export_image, "audio": export_audio}


# --- into a bundle ---------------------------------------------------------------------------------


def _write_encoder(staging: Path, modality: str, exported: Exported) -> EncoderSpec:
    folder = staging / "encoders" / modality
    folder.mkdir(parents=True)
    files = []
    for role, (name, data) in exported.files.items():
        (folder / name).write_bytes(data)
        files.append(EncoderFile(role=role, file=f"encoders/{modality}/{name}", sha256=_sha(data)))
    return exported.make_spec(files)


def _media(staging: Path, data_dir: Path | None, manifest: Manifest) -> list[MediaSpec]:
    """Thumbnails shipped with the dataset go inside the bundle; sounds stay in the Debian package."""
    names = {m.name for m in manifest.modalities}
    media = []
    if data_dir is not None and (data_dir / THUMBNAILS).is_file() and "image" in names:
        target = staging / "media" / "image-thumbnails.parquet"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(data_dir / THUMBNAILS, target)
        if (data_dir / "media" / "NOTICE").is_file():
            shutil.copyfile(data_dir / "media" / "NOTICE", target.parent / "NOTICE")
        media.append(
            MediaSpec(
                modality="image",
                file="media/image-thumbnails.parquet",
                sha256=_sha(target.read_bytes()),
                license=MEDIA_LICENSE,
            )
        )
    if data_dir is not None and "audio" in names:
        media.append(MediaSpec(modality="audio", root=STAMP_SOUNDS, column="uri", license=MEDIA_LICENSE))
    return media


def with_encoders(
    parent_dir: Path, out: Path, modalities: list[str] | None = None, media_from: Path | None = None
) -> Manifest:
    """A new bundle ``out``: ``parent_dir`` plus the demo encoders of ``modalities`` (default: all it has)."""
    parent = Parent(Path(parent_dir), read_manifest(Path(parent_dir)))
    known = {m.name: m.dim for m in parent.manifest.modalities}
    chosen = modalities if modalities is not None else [m for m in EXPORTERS if m in known]
    for m in chosen:
        if m not in EXPORTERS:
            raise ExportError(f"no demo encoder for modality {m!r}; there are: {', '.join(EXPORTERS)}")
        if m not in known:
            raise ExportError(f"modality {m!r} is not in bundle {parent.manifest.name} ({', '.join(known)})")
    exported = {m: EXPORTERS[m]() for m in chosen}
    with staged_bundle(out) as staging:
        parent.carry(staging, routes=True)  # same graph: its route strategies still hold
        specs = [_write_encoder(staging, m, e) for m, e in exported.items()]
        parity = {spec.modality: round(verify(staging, spec), 6) for spec in specs}
        manifest = parent.manifest.model_copy(
            update={
                "name": Path(out).name,
                "created_at": datetime.now(UTC),
                "encoders": specs,
                "media": _media(staging, media_from, parent.manifest),
                "training": parent.manifest.training
                | {"encoders": json.loads(json.dumps(chosen)), "encoder_parity_cosine": parity},
            }
        )
        manifest = Manifest.model_validate(manifest.model_dump())  # re-checks dims against modalities
        write_manifest(manifest, staging)
    return manifest
