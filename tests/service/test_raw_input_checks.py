"""Fast checks of raw input without the real encoders: decoding limits, the numpy log-mel against
faster-whisper's, the manifest's encoder section, and the search page being open behind an API key."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.embedding import encoder_slot
from latent_bridge.service.api.problems import install_error_handlers
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.service.errors import (
    AudioTooLong,
    BatchTooLarge,
    EncodersBusy,
    InputTooLarge,
    MalformedInput,
    RequestTimeout,
    UnreadableMedia,
    UnsupportedFormat,
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


# --- issue 23: allow-listed formats, square limit, no reprs, encoder slots, security headers -------------


def picture(fmt: str, size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, fmt)
    return buffer.getvalue()


def sound(container: str, codec: str, rate: int = 16_000) -> bytes:
    """One second of a tone encoded by FFmpeg (PyAV) as ``codec`` in ``container``."""
    av = pytest.importorskip("av")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        t = np.arange(rate) / rate
        frame = av.AudioFrame.from_ndarray(
            (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_the_accepted_image_formats_decode(fmt: str) -> None:
    assert read_image(picture(fmt), 0, 10_000, WHITE).size == (16, 12)


@pytest.mark.parametrize(
    "data",
    [
        picture("TIFF"),
        picture("PPM"),
        picture("ICO"),
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["tiff", "ppm", "ico", "eps", "svg"],
)
def test_other_image_formats_are_refused_naming_the_accepted_ones(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match="image 2 .*PNG, JPEG, WebP, GIF, BMP") as refused:
        read_image(data, 2, 10_000, WHITE)
    assert refused.value.status == 415 and refused.value.extra["accepted"] == ["PNG", "JPEG", "WebP", "GIF", "BMP"]


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("flac", "flac", 16_000), ("mp3", "libmp3lame", 16_000), ("ipod", "aac", 16_000), ("adts", "aac", 16_000),
     ("ogg", "libopus", 48_000)],
)
def test_the_accepted_sound_formats_decode(container: str, codec: str, rate: int) -> None:
    samples = read_audio(sound(container, codec, rate), 0, 16_000, 2.0)
    assert abs(len(samples) - 16_000) < 2_000 and 0.05 < np.abs(samples).max() < 0.2


@pytest.mark.parametrize(
    "data",
    [
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n",  # SDP: UDP ports
        b"ffconcat version 1.0\nfile 'files/tone.wav'\n",  # a server-local file
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/a.ts\n",  # HLS: network
        b"file:///etc/passwd",
        b"RIFF\x00\x00\x00\x00AVI LIST",  # a RIFF that is not WAVE
    ],
    ids=["sdp", "ffconcat", "hls", "url", "avi"],
)
def test_other_sound_formats_are_refused_before_ffmpeg_sees_them(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match="audio 1 .*WAV .*FLAC.*MP3"):
        read_audio(data, 1, 16_000, 2.0)


def test_a_codec_the_format_does_not_allow_is_refused() -> None:
    """A WAV holding MP3 frames: a real WAV, but only PCM is accepted in it."""
    with pytest.raises(UnsupportedFormat, match="audio 0 is WAV holding mp3"):
        read_audio(sound("wav", "libmp3lame"), 0, 16_000, 2.0)


def test_the_padded_square_counts_against_the_pixel_limit() -> None:
    """200×10 is 2,000 pixels, but the image encoder pads it to 200×200 = 40,000: refused before decoding."""
    assert read_image(png(200, 10), 0, 10_000, WHITE).size == (200, 10)
    with pytest.raises(InputTooLarge, match="pads to a 200×200 square = 40000 pixels; the limit is 10000"):
        read_image(png(200, 10), 0, 10_000, WHITE, square=True)


def test_pillows_own_size_check_is_413_and_no_message_holds_an_object_repr() -> None:
    with pytest.raises(InputTooLarge, match="image 0 has 900000000 pixels") as bomb:
        read_image(png_header(30000, 30000), 0, 40_000_000, WHITE)
    assert bomb.value.status == 413 and bomb.value.extra["got"] == 900_000_000
    for data in (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"GIF89a" + b"\xff" * 20, b"\xff\xd8\xff" + b"\0" * 20):
        with pytest.raises(UnreadableMedia) as broken:
            read_image(data, 0, 10_000, WHITE)
        assert not re.search(r"<.* at 0x[0-9a-f]+>", broken.value.detail), broken.value.detail


def test_a_request_past_its_deadline_stops() -> None:
    RawLimits(1, 1, 1, 1.0, 1, deadline=time.monotonic() + 60, timeout=60).check_deadline()
    with pytest.raises(RequestTimeout, match="within 30 s"):
        RawLimits(1, 1, 1, 1.0, 1, deadline=time.monotonic() - 0.001, timeout=30).check_deadline()


def test_encoder_slots_beyond_the_limit_are_503_at_once() -> None:
    with encoder_slot(2), encoder_slot(2):
        started = time.monotonic()
        with pytest.raises(EncodersBusy) as busy, encoder_slot(2):
            pass
        assert time.monotonic() - started < 0.1
        assert busy.value.status == 503 and busy.value.extra == {"limit": 2, "retry_after": 1}
    with encoder_slot(2):  # released: free again
        pass


def test_a_busy_answer_has_retry_after() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise EncodersBusy(3, 7)

    with TestClient(app) as client:
        response = client.get("/busy")
        assert response.status_code == 503 and response.headers["retry-after"] == "7"
        assert response.json()["type"].endswith("encoders-busy")
        assert "retry-after" not in client.get("/nowhere").headers


def _hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


def test_every_answer_has_security_headers_and_the_pages_a_policy(chain_bundle: Path) -> None:
    with TestClient(create_app(settings_for(chain_bundle, max_body_bytes=4096))) as client:
        answers = {
            "/": client.get("/"),
            "/docs": client.get("/docs"),
            "json": client.get("/modalities"),
            "media": client.get("/media", params={"modality": "a", "id": "a-1"}),
            "404": client.get("/nowhere"),
            "413": client.post("/translate", content=b" " * 5000, headers={"content-type": "application/json"}),
        }
        for name, response in answers.items():
            assert response.headers["x-content-type-options"] == "nosniff", name
            assert response.headers["x-frame-options"] == "DENY", name
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
        assert answers["413"].status_code == 413
        assert answers["json"].headers["content-security-policy"].startswith("default-src 'none'")
        page = answers["/"]
        policy = page.headers["content-security-policy"]
        (script,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
        (style,) = re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL)
        assert f"script-src 'self' {_hash(script)};" in policy and f"style-src 'self' {_hash(style)};" in policy
        assert "'unsafe-inline'" not in policy and "connect-src 'self'" in policy
        docs = answers["/docs"]
        (start_up,) = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
        assert _hash(start_up) in docs.headers["content-security-policy"]
        assert '"persistAuthorization": false' in docs.text  # keys are not kept in localStorage
