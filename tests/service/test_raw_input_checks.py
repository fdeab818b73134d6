"""Fast checks of raw input without the real encoders: decoding limits, the numpy log-mel against
faster-whisper's, the manifest's encoder section, and the search page being open behind an API key."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.service.errors import (
    AudioTooLong,
    BatchTooLarge,
    InputTooLarge,
    MalformedInput,
    UnreadableMedia,
    UnsupportedSampleRate,
)
from latent_bridge.service.inputs.encoders import log_mel
from latent_bridge.service.inputs.rawinput import RawLimits, file_bytes, read_audio, read_image
from PIL import Image
from sounds import wav
from testsettings import settings_for

LIMITS = RawLimits(
    max_items=4, max_media_bytes=1 << 20, max_image_pixels=10_000, max_audio_seconds=2.0, max_text_chars=50
)
WHITE = (255, 255, 255)



def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (0, 0, 0, 0) if mode == "RGBA" else "red").save(buffer, "PNG")
    return buffer.getvalue()


def test_audio_is_resampled_to_the_encoder_rate() -> None:
    samples = read_audio(wav(1.0, 8000), 0, 16_000, 2.0)
    assert samples.dtype == np.float32 and abs(len(samples) - 16_000) < 200
    assert 0.05 < np.abs(samples).max() < 0.2  # 3000 / 32768


def test_audio_checks_rate_duration_and_format() -> None:
    with pytest.raises(UnsupportedSampleRate, match="1000 Hz"):
        read_audio(wav(0.5, 1000), 0, 16_000, 2.0)
    with pytest.raises(AudioTooLong, match="limit is 2 s"):
        read_audio(wav(3.0, 16_000), 0, 16_000, 2.0)
    with pytest.raises(UnreadableMedia, match="audio 3"):
        read_audio(b"RIFF0000WAVEjunk", 3, 16_000, 2.0)


def test_images_are_checked_before_decoding_and_composited_on_the_background() -> None:
    with pytest.raises(InputTooLarge, match="200×100 = 20000 pixels"):
        read_image(png(200, 100), 0, 10_000, WHITE)
    with pytest.raises(UnreadableMedia, match="image 1"):
        read_image(b"\x89PNG\r\n\x1a\nbroken", 1, 10_000, WHITE)
    image = read_image(png(10, 10), 0, 10_000, WHITE)  # fully transparent
    assert image.mode == "RGB" and image.getpixel((5, 5)) == WHITE


def test_files_are_base64_within_limits() -> None:
    data = png(4, 4)
    encoded = base64.b64encode(data).decode()
    assert file_bytes([encoded, "data:image/png;base64," + encoded], "image", LIMITS) == [data, data]
    with pytest.raises(MalformedInput, match="image 0"):
        file_bytes("not base64!", "image", LIMITS)
    with pytest.raises(BatchTooLarge):
        file_bytes([encoded] * 5, "image", LIMITS)
    small = RawLimits(4, 10, 10_000, 2.0, 50)
    with pytest.raises(InputTooLarge, match="the limit is 10"):
        file_bytes(encoded, "image", small)


def test_log_mel_equals_faster_whispers() -> None:
    extractor = pytest.importorskip("faster_whisper.feature_extractor").FeatureExtractor(feature_size=80)
    rng = np.random.default_rng(0)
    audio = np.pad(rng.standard_normal(16_000 * 3).astype(np.float32) * 0.1, (0, 16_000 * 7))
    expected = extractor(audio, padding=0)[:, :1000]
    got = log_mel(audio, extractor.mel_filters, 400, 160)[:, :1000]
    assert got.shape == expected.shape == (80, 1000)
    assert np.abs(got - expected).max() < 1e-4


def _manifest(chain_bundle: Path, **extra: object) -> dict[str, object]:
    manifest: dict[str, object] = json.loads((chain_bundle / "manifest.json").read_text())
    return manifest | extra


def _encoder(modality: str, dim: int, **overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "modality": modality,
        "kind": "onnx-text",
        "model": "a tokenizer and a model",
        "dim": dim,
        "files": [{"role": "model", "file": f"encoders/{modality}/model.onnx", "sha256": "0" * 64}],
        "text": {"max_tokens": 128},
    }
    return spec | overrides


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        (_encoder("zz", 16), "encoder names unknown modality 'zz'"),
        (_encoder("a", 17), "encoder of 'a' gives 17 dimensions, the modality has 16"),
        (_encoder("a", 16, text=None, image={"size": 8, "background": [0, 0, 0], "offset": 0, "scale": 1}),
         "needs exactly the 'text' preprocessing"),
    ],
)
def test_manifest_refuses_inconsistent_encoders(chain_bundle: Path, encoder: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Manifest.model_validate(_manifest(chain_bundle, encoders=[encoder]))


def test_manifest_media_needs_one_source(chain_bundle: Path) -> None:
    with pytest.raises(ValueError, match="either `file` with its `sha256`, or `root`"):
        Manifest.model_validate(_manifest(chain_bundle, media=[{"modality": "a"}]))


def test_the_search_page_is_open_behind_an_api_key(chain_bundle: Path) -> None:
    key = "page-test-key-0123456789"
    with TestClient(create_app(settings_for(chain_bundle, api_key=key))) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert b"X-API-Key" in page.content  # the page sends the key it is given
        assert client.get("/modalities").status_code == 401
        listed = client.get("/modalities", headers={"x-api-key": key}).json()["modalities"]
        assert [m["encoder"] for m in listed] == [None, None, None]  # a bundle without encoders


def test_raw_input_for_a_modality_without_encoder_names_the_ones_with(chain_bundle: Path) -> None:
    with TestClient(create_app(settings_for(chain_bundle))) as client:
        for form in ({"data": {"from": "a", "to": "b", "text": "hello"}},  # urlencoded
                     {"data": {"from": "a", "to": "b"}, "files": {"text": (None, b"hello")}}):  # multipart
            response = client.post("/retrieve", **form)  # type: ignore[arg-type]
            assert response.status_code == 422, response.text
            assert response.json()["type"].endswith("no-encoder")
            assert response.json()["encoders"] == []


def test_a_bundle_without_encoders_serves_without_their_packages(chain_bundle: Path) -> None:
    """Importing av, ctranslate2, tokenizers, PIL or python-multipart fails in the child: still it serves."""
    script = """
import sys
for name in ("av", "ctranslate2", "tokenizers", "PIL", "multipart", "python_multipart"):
    sys.modules[name] = None  # any import of them raises ImportError
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.settings import Settings
with TestClient(create_app(Settings(bundle=sys.argv[1], access_log=False))) as client:
    assert client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": 1}).status_code == 200
    assert client.post("/embed", json={"modality": "a", "text": "x"}).status_code == 422
    assert client.get("/").status_code == 200
print("served")
"""
    command = [sys.executable, "-c", script, str(chain_bundle)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "served" in done.stdout, done.stderr
