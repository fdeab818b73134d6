"""Latency of raw-input search: single requests, one after another, to one server worker.

    python bench/raw_input.py --bundle models/demo [--requests 40] [--encoder-threads 2]

Starts ``latent-bridge serve`` on a free loopback port with the bundle (which must have encoders, as
``make demo`` builds it) and times three kinds of request end to end, from the client:

- a caption → image hits (``POST /retrieve`` JSON, ``"text"``), captions of the demo in turn;
- an image upload → caption hits (multipart, real Tux Paint stamp PNGs in turn);
- a 5-second sound → caption hits (multipart WAV: the package's sound effects, looped or cut to 5 s).

Beside each, the encoder alone in this process (same bundle files, same threads), so the table shows
where the time goes. Needs the Tux Paint stamps (Debian ``tuxpaint-stamps-default``) and soundfile.
Prints a Markdown table with the machine's load average before and after: it measures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STAMPS = Path("/usr/share/tuxpaint/stamps")
HOST = "127.0.0.1"
SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start(bundle: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = os.environ | {"LATENT_BRIDGE_ENCODER_THREADS": str(threads), "LATENT_BRIDGE_ACCESS_LOG": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "latent_bridge.cli", "serve", "--bundle", str(bundle), "--host", HOST,
         "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


def five_second_wavs(count: int) -> list[bytes]:
    """Package sound effects, each looped or cut to exactly 5 s, as 16-bit WAV at the file's own rate."""
    import soundfile

    files = sorted(p for p in STAMPS.rglob("*.ogg") if "_desc" not in p.name)[:count]
    out = []
    for path in files:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        need = int(SECONDS * rate)
        looped = np.tile(samples, (need // len(samples) + 1, 1))[:need]
        buffer = io.BytesIO()
        soundfile.write(buffer, looped, rate, format="WAV", subtype="PCM_16")
        out.append(buffer.getvalue())
    return out


def timed(call: Callable[[int], Any], n: int, warm_up: int = 3) -> list[float]:
    for i in range(warm_up):
        call(i)
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def row(name: str, http: list[float], encoder: list[float]) -> str:
    q = statistics.quantiles(http, n=10)
    return (f"| {name} | {len(http)} | {statistics.median(http):.1f} | {q[-1]:.1f} | "
            f"{statistics.median(encoder):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--encoder-threads", type=int, default=2)
    args = parser.parse_args()

    from latent_bridge.service.bundle.loader import LoadLimits, load_bundle
    from latent_bridge.service.inputs.rawinput import RawLimits

    images = pd.read_parquet(ROOT / "data/demo/image.parquet", columns=["uri"])["uri"].tolist()
    captions = pd.read_parquet(ROOT / "data/demo/text.parquet", columns=["caption"])["caption"].tolist()
    pngs = [(STAMPS / uri).read_bytes() for uri in images[:: max(1, len(images) // args.requests)]]
    sounds = five_second_wavs(args.requests)
    load_before = os.getloadavg()[0]

    bundle = load_bundle(args.bundle, limits=LoadLimits(encoder_threads=args.encoder_threads))
    limits = RawLimits(32, 8 << 20, 40_000_000, 60.0, 10_000)
    b64 = [base64.b64encode(p).decode() for p in pngs]
    wav64 = [base64.b64encode(s).decode() for s in sounds]
    n = args.requests
    encoder_ms = {
        "text": timed(lambda i: bundle.encoders["text"].embed(captions[i % len(captions)], limits), n),
        "image": timed(lambda i: bundle.encoders["image"].embed(b64[i % len(b64)], limits), n),
        "audio": timed(lambda i: bundle.encoders["audio"].embed(wav64[i % len(wav64)], limits), n),
    }

    process, base = start(args.bundle, args.encoder_threads)
    try:
        with httpx.Client(base_url=base, timeout=60) as client:

            def ok(response: httpx.Response) -> None:
                if response.status_code != 200:
                    raise SystemExit(f"{response.status_code}: {response.text}")

            def upload(kind: str, data: bytes, name: str, media: str) -> None:
                form = {"from": kind, "to": "text", "k": "10"}
                ok(client.post("/retrieve", data=form, files={kind: (name, data, media)}))

            text = timed(lambda i: ok(client.post("/retrieve", json={
                "from": "text", "to": "image", "text": captions[i % len(captions)], "k": 10})), n)
            image = timed(lambda i: upload("image", pngs[i % len(pngs)], "stamp.png", "image/png"), n)
            audio = timed(lambda i: upload("audio", sounds[i % len(sounds)], "sound.wav", "audio/wav"), n)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"Bundle {args.bundle.name}; 1 worker, encoder threads {args.encoder_threads}; {os.cpu_count()} CPUs; "
          f"1-min load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after.\n")
    print("| request (single, sequential) | requests | p50 ms | p90 ms | encoder alone p50 ms |")
    print("|---|---:|---:|---:|---:|")
    print(row("caption → image hits (JSON text)", text, encoder_ms["text"]))
    print(row("image upload → caption hits (multipart PNG)", image, encoder_ms["image"]))
    print(row("5-second sound → caption hits (multipart WAV)", audio, encoder_ms["audio"]))


if __name__ == "__main__":
    main()
