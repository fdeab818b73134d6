"""Attacks of the raw-input review (issue 23), replayed against a real `latent-bridge serve` process with the
demo bundle's real encoders: each crafted file gets a 4xx within its deadline, opens no socket, keeps no
memory, and every answer carries the security headers.

Before the fix (measured on the same bundle): the 16383×2 WebP and the 20000×1000 PNG were 200 after
3.9 s and 6.7 s, a 40000×1000 PNG 504 with the process at 6.8 GB; the SDP text held a thread (and UDP
ports) 20 s; an ffconcat text embedded a file of the server's working directory; four bursts of 32 long
texts left the process 1.9 GB larger while idle."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from attack_payloads import EPS, FFCONCAT, SDP, png_header
from encoder_bundle import EncoderBundles
from PIL import Image
from serverprocess import Server, rss_mib, running_server

pytestmark = [pytest.mark.slow, pytest.mark.encoders]
MiB = 1 << 20


def tone_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((3000 * np.sin(np.arange(16_000) * 0.17)).astype("<i2").tobytes())
    return buffer.getvalue()


def saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sockets(pid: int) -> dict[str, list[tuple[int, str]]]:
    """The process's own inet sockets by protocol: (local port, state) read from /proc (what psutil does)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: dict[str, list[tuple[int, str]]] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{proto}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.setdefault(proto.rstrip("6"), []).append((int(fields[1].split(":")[1], 16), fields[3]))
    return found


def foreign_sockets(server: Server) -> list[str]:
    """Any UDP socket, or a TCP socket on another local port than the server's own."""
    found = sockets(server.process.pid)
    odd = [f"udp:{port}" for port, _ in found.get("udp", [])]
    return odd + [f"tcp:{port}" for port, _ in found.get("tcp", []) if port != server.port]


@pytest.fixture(scope="module")
def server(encoder_bundles: EncoderBundles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo server with one encoder slot, run in a folder holding files/tone.wav (what ffconcat names)."""
    workdir = tmp_path_factory.mktemp("workdir")
    (workdir / "files").mkdir()
    (workdir / "files" / "tone.wav").write_bytes(tone_wav())
    env = {"LATENT_BRIDGE_ACCESS_LOG": "false", "LATENT_BRIDGE_MAX_CONCURRENT_ENCODES": "1"}
    with running_server(encoder_bundles.with_encoders, env=env, cwd=workdir) as server:
        yield server


def embed(server: Server, kind: str, data: bytes, timeout: float = 60) -> httpx.Response:
    body = {"modality": kind, kind: base64.b64encode(data).decode()}
    return httpx.post(f"{server.base}/embed", json=body, timeout=timeout)


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("x-frame-options") == "DENY"
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")


ATTACKS = [
    # (review row, kind, file, status, seconds the answer may take)
    pytest.param("image", lambda: saved(Image.new("RGB", (16383, 2)), "WEBP", lossless=True), 413, 2.0, id="1-webp"),
    pytest.param("image", lambda: saved(Image.new("L", (20000, 1000)), "PNG"), 413, 2.0, id="1-png-20000x1000"),
    pytest.param("image", lambda: saved(Image.new("L", (40000, 1000)), "PNG"), 413, 2.0, id="1-png-40000x1000"),
    pytest.param("image", lambda: EPS, 415, 2.0, id="2-eps"),
    pytest.param("audio", lambda: SDP, 415, 2.0, id="3-sdp"),
    pytest.param("audio", lambda: FFCONCAT, 415, 2.0, id="4-ffconcat"),
    pytest.param("image", lambda: png_header(30000, 30000), 413, 2.0, id="16-png-30000x30000"),
]


@pytest.mark.parametrize(("kind", "make", "status", "seconds"), ATTACKS)
def test_each_attack_is_refused_quickly_without_sockets_or_memory(
    server: Server, kind: str, make: object, status: int, seconds: float
) -> None:
    data = make()  # type: ignore[operator]
    before = rss_mib(server.process.pid)
    answer: dict[str, httpx.Response] = {}
    seen: set[str] = set()
    started = time.monotonic()
    thread = threading.Thread(target=lambda: answer.setdefault("r", embed(server, kind, data)))
    thread.start()
    while thread.is_alive():  # sockets sampled while the request runs (the SDP demuxer bound UDP ports)
        seen.update(foreign_sockets(server))
        time.sleep(0.01)
    thread.join()
    took = time.monotonic() - started
    response = answer["r"]
    assert response.status_code == status, response.text[:300]
    assert took < seconds, took
    assert not seen and not foreign_sockets(server), seen
    detail = response.json()["detail"]
    assert " at 0x" not in detail and "<_io" not in detail, detail  # no object reprs
    if status == 415:
        assert "PNG" in detail or "WAV" in detail, detail  # names the accepted formats
    assert_security_headers(response)
    assert rss_mib(server.process.pid) - before < 100


def test_the_allowed_formats_still_embed(server: Server) -> None:
    """The allow-list refuses by format, not by accident: a small PNG, JPEG and WAV embed (200)."""
    for kind, data in (
        ("image", saved(Image.new("RGB", (64, 48), (200, 80, 40)), "PNG")),
        ("image", saved(Image.new("RGB", (64, 48), (200, 80, 40)), "JPEG")),
        ("audio", tone_wav()),
    ):
        response = embed(server, kind, data)
        assert response.status_code == 200, response.text[:300]
        assert_security_headers(response)


def test_a_burst_of_long_texts_gets_503_with_retry_after_and_returns_its_memory(server: Server) -> None:
    """Four concurrent requests of 32 × 10k-character texts with one encoder slot: one runs, the others are
    told to retry at once (no 504), and the process's memory comes back near where it was."""
    texts = ["word " * 2000] * 32
    before = rss_mib(server.process.pid)
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(httpx.post(f"{server.base}/embed", json={"modality": "text", "text": texts}, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 30
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
    for response in answers:
        assert_security_headers(response)
        if response.status_code == 503:
            assert response.json()["type"].endswith("encoders-busy")
            assert int(response.headers["retry-after"]) >= 1
    time.sleep(1)
    assert rss_mib(server.process.pid) - before < 200  # before the fix: +1.9 GB kept while idle


def test_the_pages_carry_their_security_headers(server: Server) -> None:
    for path in ("/", "/docs", "/openapi.json", "/healthz", "/media?modality=image&id=nope", "/nowhere"):
        response = httpx.get(f"{server.base}{path}")
        assert_security_headers(response)
    page = httpx.get(f"{server.base}/").headers["content-security-policy"]
    assert "default-src 'none'" in page and "script-src 'self' 'sha256-" in page
    docs = httpx.get(f"{server.base}/docs")
    assert "'sha256-" in docs.headers["content-security-policy"]
    assert '"persistAuthorization": false' in docs.text
