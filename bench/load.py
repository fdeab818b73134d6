"""Load test of the HTTP service against the same work done in-process, on one bundle.

    python bench/load.py --bundle models/demo --seconds 10

Starts ``latent-bridge serve`` on a free loopback port (never anything but 127.0.0.1), drives it with a
small keep-alive HTTP/1.1 client (asyncio, pre-built requests, so the client costs little CPU), then
runs the same translations and searches in this process without HTTP. Every scenario is bounded by
``--seconds`` and ``--max-requests``. Prints a Markdown table: p50/p99 latency, requests/s, vectors/s,
and HTTP throughput as a share of in-process throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from latent_bridge.service.bundle.loader import Bundle, load_bundle  # noqa: E402
from latent_bridge.service.engine.translate import run_route, unit_rows  # noqa: E402
from serverprocess import free_port  # noqa: E402


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float | None = None  # CPU time the serving (or in-process) side spent

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds
        if other.cpu_seconds is not None:
            self.cpu_seconds = (self.cpu_seconds or 0.0) + other.cpu_seconds

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self, name: str, vectors_per_request: int, baseline: Result | None) -> str:
        lat = sorted(self.latencies)
        n = len(lat)
        if not n:
            return f"| {name} | 0 | – | – | – | – | – | – | {self.errors} |"
        p50 = lat[n // 2] * 1e3
        p99 = lat[min(n - 1, int(n * 0.99))] * 1e3
        rps = n / self.seconds
        share = (
            f"{rps / (len(baseline.latencies) / baseline.seconds):.0%}"
            if baseline and baseline.latencies
            else ""
        )
        cpu = f"{self.cpu_seconds / n * 1e3:.3f}" if self.cpu_seconds is not None else "–"
        return (
            f"| {name} | {n} | {p50:.3f} | {p99:.3f} | {cpu} | {rps:,.0f} | "
            f"{rps * vectors_per_request:,.0f} | {share} | {self.errors} |"
        )


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_request(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _drive(port: int, request: bytes, seconds: float, max_requests: int, connections: int) -> Result:
    result = Result()
    deadline = time.perf_counter() + seconds
    budget = [max_requests]

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


def drive(port: int, request: bytes, seconds: float, max_requests: int, connections: int) -> Result:
    return asyncio.run(_drive(port, request, seconds, max_requests, connections))


def in_process(work: Callable[[], object], seconds: float, max_requests: int, threads: int) -> Result:
    """Run ``work`` in a loop on ``threads`` threads (onnxruntime and FAISS release the GIL), like the
    server's thread pool can, for at most ``seconds`` and ``max_requests`` calls in all."""
    for _ in range(20):
        work()
    result = Result()
    deadline = time.perf_counter() + seconds
    budget = [max_requests]
    lock = threading.Lock()

    def loop() -> None:
        mine = []
        while time.perf_counter() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            t = time.perf_counter()
            work()
            mine.append(time.perf_counter() - t)
        with lock:
            result.latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def start_server(bundle: Path, port: int, workers: int, max_batch: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "LATENT_BRIDGE_ACCESS_LOG": "false",
        "LATENT_BRIDGE_LOG_LEVEL": "warning",
        "LATENT_BRIDGE_MAX_BATCH": str(max(max_batch, int(os.environ.get("LATENT_BRIDGE_MAX_BATCH", "0")))),
    }
    command = [
        sys.executable,
        "-m",
        "latent_bridge.cli",
        "serve",
        "--bundle",
        str(bundle),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(http_request("GET", "/readyz"))
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


def pick_pair(bundle: Bundle, source: str | None, target: str | None) -> tuple[str, str]:
    """Default: the pair whose best route has the most hops and whose target has a gallery."""
    if source and target:
        return source, target
    names = bundle.graph.modalities
    pairs = [(a, b) for a in names for b in names if a != b and b in bundle.galleries]
    routed = []
    for a, b in pairs:
        try:
            routed.append((len(bundle.graph.best(a, b).hops), a, b))
        except Exception:
            continue
    if not routed:
        raise SystemExit("no routable pair with a gallery in this bundle")
    _, a, b = max(routed)
    return a, b


def b64(x: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f4").tobytes()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="per scenario and side (HTTP, in-process)"
    )
    parser.add_argument(
        "--slice", type=float, default=1.0, help="the two sides alternate in slices this long"
    )
    parser.add_argument("--max-requests", type=int, default=200_000, help="per scenario and side")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="in-process threads to try besides one (default: one per CPU); the faster is the baseline",
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--from", dest="source", default=None)
    parser.add_argument("--to", dest="target", default=None)
    parser.add_argument("--only", default=None, help="run only scenarios whose name contains this")
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    source, target = pick_pair(bundle, args.source, args.target)
    route = bundle.graph.best(source, target)
    dim = bundle.modalities[source].dim
    gallery = bundle.galleries[target]
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, dim)).astype(np.float32)
    batch = rng.standard_normal((args.batch, dim)).astype(np.float32)

    def body(**fields: object) -> bytes:
        return json.dumps({"from": source, "to": target, **fields}).encode()

    first_id = bundle.galleries[source].table.first_ids(1)[0]
    work: dict[str, Callable[[], object]] = {
        "translate 1": lambda: unit_rows(run_route(bundle.translators, route, one)),
        f"translate {args.batch}": lambda: unit_rows(run_route(bundle.translators, route, batch)),
        "retrieve 1": lambda: gallery.search(run_route(bundle.translators, route, one), args.k),
    }
    scenarios: list[tuple[str, str, bytes, int]] = [
        ("translate 1", "JSON", http_request("POST", "/translate", body(vector=one[0].tolist())), 1),
        (
            "translate 1",
            "base64",
            http_request("POST", "/translate", body(vector=b64(one), encoding="base64")),
            1,
        ),
        (
            f"translate {args.batch}",
            "JSON",
            http_request("POST", "/translate", body(vectors=batch.tolist())),
            args.batch,
        ),
        (
            f"translate {args.batch}",
            "base64",
            http_request("POST", "/translate", body(vectors=b64(batch), encoding="base64")),
            args.batch,
        ),
        (
            "retrieve 1",
            f"JSON, k={args.k}",
            http_request("POST", "/retrieve", body(vector=one[0].tolist(), k=args.k)),
            1,
        ),
        (
            "retrieve 1",
            f"GET by id, k={args.k}",
            http_request("GET", f"/retrieve?from={source}&to={target}&id={first_id}&k={args.k}")
            if source in bundle.galleries
            else b"",
            1,
        ),
    ]
    load_before = os.getloadavg()[0]
    port = free_port()
    server = start_server(args.bundle, port, args.workers, args.batch)
    rows = []
    rounds = max(1, math.ceil(args.seconds / args.slice))
    per_slice = (args.seconds / rounds, max(1, args.max_requests // rounds))
    thread_counts = sorted({1, args.threads})
    try:
        for name in work:
            variants = [s for s in scenarios if s[0] == name and s[2]]
            variants = [s for s in variants if not args.only or args.only in f"{s[0]} ({s[1]})"]
            if not variants:
                continue
            http = {variant: Result() for _, variant, _, _ in variants}
            local = {n: Result() for n in thread_counts}
            for _, _, request, _ in variants:  # warm-up
                drive(port, request, 0.5, 1000, args.connections)
            # Interleave short slices of each side, so both see the same background load.
            for _ in range(rounds):
                for _, variant, request, _ in variants:
                    before = process_cpu(server.pid) if args.workers == 1 else None
                    result = drive(port, request, *per_slice, args.connections)
                    after = process_cpu(server.pid) if before is not None else None
                    result.cpu_seconds = after - before if before is not None and after is not None else None
                    http[variant].merge(result)
                for n in thread_counts:
                    started = time.process_time()
                    result = in_process(work[name], *per_slice, n)
                    result.cpu_seconds = time.process_time() - started
                    local[n].merge(result)
            # the stronger of one thread and --threads threads (the GIL can make more threads slower)
            threads, best = max(local.items(), key=lambda item: item[1].throughput)
            per_request = variants[0][3]
            rows.append(
                best.row(f"in-process {name} ({threads} thread{'s' * (threads > 1)})", per_request, None)
            )
            for _, variant, _, _ in variants:
                rows.append(http[variant].row(f"HTTP {name} ({variant})", per_request, best))
                print(rows[-1], file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"\nBundle `{bundle.name}` ({args.bundle}), route {' → '.join(route.path)}, "
        f"{dim}-d in, {bundle.modalities[target].dim}-d out, "
        f"gallery {gallery.size} × {gallery.spec.index_type}; "
        f"{args.workers} worker(s), {args.connections} connections, "
        f"{args.seconds:g} s per side in alternating {args.seconds / rounds:g} s slices, "
        f"{os.cpu_count()} CPUs, "
        f"1-min load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (other processes "
        "on the machine skew every number).\n"
    )
    print(
        "| scenario | requests | p50 ms | p99 ms | CPU ms/request | requests/s | vectors/s "
        "| HTTP / in-process | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        "\nIn-process: the same translation (and search, and hit lists) on numpy arrays without HTTP or "
        "encoding, on one thread or one per CPU, whichever is faster; the share column is HTTP requests/s "
        "over in-process requests/s. CPU ms/request: CPU time of the server process (HTTP rows; the load "
        "client's own CPU is not counted) or of this process (in-process rows) per request."
    )


if __name__ == "__main__":
    main()
