"""HTTP load benchmark: every request a user makes by default, against a bare FastAPI anchor, in one run.

    python bench/load.py --bundle models/demo --seconds 10        # what `make bench` runs
    python bench/load.py --readme reports/bench/load.json         # README table from a saved run

Starts two processes on free loopback ports (never anything but 127.0.0.1): ``latent-bridge serve`` with
the bundle, and the anchor (``bench/anchor.py``: a bare FastAPI app on the server's uvicorn settings,
``GET /ping`` and ``POST /echo`` 384 → 1,280 floats). Then it asks the server what it serves
(``/modalities``, ``/route``) and drives, with a small keep-alive HTTP/1.1 client (asyncio, pre-built
requests), every default request:

- the anchor's ``/ping`` and ``/echo``, and the server's ``/healthz``;
- ``POST /translate`` along the longest route: one vector (JSON) and a batch (JSON and base64);
- ``POST /retrieve`` (one vector, JSON) and ``GET /retrieve`` (a stored id) on every route into a gallery,
  *as served*: no ``strategy`` pinned, so whatever strategy and hubness reduction the bundle chose (the
  table names them, from the responses);
- for each modality with an encoder, a raw query (a short caption, a small PNG, a short WAV) to
  ``POST /retrieve`` at concurrency 1 and ``--connections``, and ``POST /embed`` of the caption.

All scenarios run in alternating slices of ``--slice`` seconds, round after round, so background load on
the machine falls on all of them alike. Each is bounded by ``--seconds`` and ``--max-requests``. Prints a
Markdown table (requests/s, p50/p99 latency, the server's CPU per request, requests/s as a multiple of the
anchor echo's) and writes the numbers as JSON (``--json``). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from marked_block import replace_between  # bench/marked_block.py (bench/ is on sys.path)
from sounds import wav  # noqa: E402  # the tone the raw-input tests send

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
ANCHOR = Path(__file__).resolve().with_name("anchor.py")
THUMBNAILS = ROOT / "data" / "demo" / "media" / "image-thumbnails.parquet"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench/load.py table: begin -->", "<!-- bench/load.py table: end -->"
CAPTION = "a dog"
SHED = (429, 503)  # answers that refuse for load (the server says when to retry): counted apart from errors
REQUEST_TIMEOUT = 120.0  # seconds one response may take before it counts as an error
RAW_TARGETS = {"text": "image", "image": "text", "audio": "text"}  # the demo page's searches


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# --- requests -------------------------------------------------------------------------------------


def http_request(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


def post(path: str, payload: dict[str, Any]) -> bytes:
    return http_request("POST", path, json.dumps(payload).encode())


def get(path: str, **query: object) -> bytes:
    return http_request("GET", f"{path}?{urlencode(query)}" if query else path)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        return await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT)
    finally:
        writer.close()


def exchange(port: int, request: bytes) -> tuple[int, Any]:
    """One request on a fresh connection: the status and the decoded JSON body (or the raw text)."""
    status, body = asyncio.run(_exchange(port, request))
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


# --- raw inputs -----------------------------------------------------------------------------------


def small_png() -> bytes:
    """A demo thumbnail (at most 64 × 64) as PNG; a drawn square where the demo data is absent."""
    from PIL import Image

    try:
        import pyarrow.parquet as pq

        table = pq.read_table(THUMBNAILS)
        ids = table.column("id").to_pylist()
        row = next((i for i, name in enumerate(ids) if name.endswith("/dog")), 0)
        image = Image.open(io.BytesIO(table.column("data")[row].as_py())).convert("RGB")
    except (OSError, ValueError, StopIteration):
        image = Image.new("RGB", (64, 64), "white")
        image.paste((200, 60, 40), (16, 16, 48, 48))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def raw_value(kind: str) -> str:
    if kind == "text":
        return CAPTION
    data = small_png() if kind == "image" else wav(1.0, 16_000)
    return base64.b64encode(data).decode()


def raw_label(kind: str) -> str:
    return {"text": f'text "{CAPTION}"', "image": "image (64 px PNG)", "audio": "audio (1 s WAV)"}.get(kind, kind)


def b64(x: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f4").tobytes()).decode()


# --- processes ------------------------------------------------------------------------------------


def wait_ready(process: subprocess.Popen[bytes], port: int, path: str, what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(http_request("GET", path))
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready in 180 s")


@contextmanager
def running(command: list[str], env: dict[str, str], port: int, ready: str, what: str) -> Iterator[int]:
    """Start ``command``, yield its pid once ``ready`` answers 200, then SIGTERM it (kill after 30 s)."""
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        wait_ready(process, port, ready, what)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- scenarios ------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str  # what the request is, e.g. "POST /retrieve audio→text, 1 vector (JSON), k=10"
    group: str  # anchor, health, translate, retrieve, raw, embed
    request: bytes = field(repr=False)
    connections: int
    target: str = "server"  # or "anchor"
    route: list[str] | None = None
    strategy: str | None = None  # as served (from the warm-up response)
    hubness: str | None = None
    latencies: list[float] = field(default_factory=list, repr=False)
    errors: int = 0  # anything but 200 and the load shedding below, connection failures included
    shed: int = 0  # 429 or 503: the server refused for load and said when to retry
    seconds: float = 0.0
    cpu_seconds: float | None = 0.0
    first_error: str | None = None
    first_shed: str | None = None

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def summary(self, echo_rps: float | None) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "name": self.name,
            "group": self.group,
            "target": self.target,
            "connections": self.connections,
            "route": self.route,
            "strategy": self.strategy,
            "hubness": self.hubness,
            "requests": n,
            "errors": self.errors,
            "first_error": self.first_error,
            "shed": self.shed,
            "first_shed": self.first_shed,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(lat[n // 2] * 1e3, 2) if n else None,
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1e3, 2) if n else None,
            "cpu_ms_per_request": round(self.cpu_seconds / n * 1e3, 3) if n and self.cpu_seconds is not None else None,
            "vs_echo": round(self.rps / echo_rps, 3) if echo_rps and n else None,
        }


async def _drive(scenario: Scenario, port: int, seconds: float, max_requests: int) -> None:
    deadline = time.perf_counter() + seconds
    budget = [max_requests]
    request = scenario.request

    async def one_connection() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(HOST, port)
                reader, writer = connection
                writer.write(request)
                status, body = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                scenario.errors += 1
                scenario.first_error = scenario.first_error or f"{type(exc).__name__}: {exc}"
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            if status == 200:
                scenario.latencies.append(time.perf_counter() - started)
            elif status in SHED:
                scenario.shed += 1
                scenario.first_shed = scenario.first_shed or f"HTTP {status}: {body[:300].decode(errors='replace')}"
            else:
                scenario.errors += 1
                scenario.first_error = scenario.first_error or f"HTTP {status}: {body[:300].decode(errors='replace')}"
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(scenario.connections)))
    scenario.seconds += time.perf_counter() - started


def drive(scenario: Scenario, port: int, pid: int, seconds: float, max_requests: int) -> None:
    """One slice of ``scenario``: its connections send requests until ``seconds`` or ``max_requests``."""
    before = process_cpu(pid)
    asyncio.run(_drive(scenario, port, seconds, max_requests))
    after = process_cpu(pid)
    if before is None or after is None or scenario.cpu_seconds is None:
        scenario.cpu_seconds = None
    else:
        scenario.cpu_seconds += after - before


def served_modalities(port: int) -> list[dict[str, Any]]:
    status, body = exchange(port, get("/modalities"))
    if status != 200:
        raise SystemExit(f"GET /modalities answered {status}: {body}")
    modalities: list[dict[str, Any]] = body["modalities"]
    return modalities


def build_scenarios(port: int, args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    """Every default request on the served bundle, plus the anchor's; and what the bundle is."""
    many, k = args.connections, args.k
    modalities = {m["name"]: m for m in served_modalities(port)}
    rng = np.random.default_rng(0)
    routes: dict[tuple[str, str], dict[str, Any]] = {}
    for a in modalities:
        for b in modalities:
            status, body = exchange(port, get("/route", **{"from": a, "to": b, "alternatives": 0}))
            if a != b and status == 200:
                routes[a, b] = body
    if not routes:
        raise SystemExit("no route between two modalities in this bundle")
    one_vector = {m: rng.standard_normal(info["dim"]).astype(np.float32) for m, info in modalities.items()}
    stored_id: dict[str, str] = {}
    for m, info in modalities.items():  # a stored item per gallery: the nearest to a random vector
        if info.get("gallery"):
            query = {"from": m, "to": m, "vector": one_vector[m].tolist(), "k": 1}
            status, body = exchange(port, post("/retrieve", query))
            if status == 200 and body["results"][0]["hits"]:
                stored_id[m] = body["results"][0]["hits"][0]["id"]
    echo_in = np.resize(rng.standard_normal(7).astype(np.float32), 384).tolist()
    scenarios = [
        Scenario("anchor GET /ping", "anchor", get("/ping"), many, target="anchor"),
        Scenario("anchor POST /echo 384 → 1280 floats", "anchor", post("/echo", {"vector": echo_in}), many,
                 target="anchor"),
        Scenario("GET /healthz", "health", get("/healthz"), many),
    ]
    # translate along the longest route (ties: the one whose target is widest)
    (source, target), route = max(
        routes.items(), key=lambda item: (len(item[1]["best"]["path"]), modalities[item[0][1]]["dim"], item[0])
    )
    longest = route["best"]["path"]
    arrow = " → ".join(longest)
    batch = rng.standard_normal((args.batch, modalities[source]["dim"])).astype(np.float32)
    ends = {"from": source, "to": target}
    scenarios += [
        Scenario(f"POST /translate {arrow}, 1 vector (JSON)", "translate",
                 post("/translate", {**ends, "vector": one_vector[source].tolist()}), many, route=longest),
        Scenario(f"POST /translate {arrow}, {args.batch} vectors (JSON)", "translate",
                 post("/translate", {**ends, "vectors": batch.tolist()}), many, route=longest),
        Scenario(f"POST /translate {arrow}, {args.batch} vectors (base64)", "translate",
                 post("/translate", {**ends, "vectors": b64(batch), "encoding": "base64"}), many, route=longest),
    ]
    for (a, b), route in sorted(routes.items()):
        if not modalities[b].get("gallery"):
            continue
        path = route["best"]["path"]
        arrow = " → ".join(path)
        scenarios.append(Scenario(
            f"POST /retrieve {arrow}, 1 vector (JSON), k={k}", "retrieve",
            post("/retrieve", {"from": a, "to": b, "vector": one_vector[a].tolist(), "k": k}), many, route=path,
        ))
        if a in stored_id:
            scenarios.append(Scenario(
                f"GET /retrieve {arrow}, by id, k={k}", "retrieve",
                get("/retrieve", **{"from": a, "to": b, "id": stored_id[a], "k": k}), many, route=path,
            ))
    for m, info in sorted(modalities.items()):
        kind = info.get("encoder")
        if not kind:
            continue
        galleries = [b for b in modalities if b != m and modalities[b].get("gallery") and (m, b) in routes]
        if not galleries:
            continue
        preferred = RAW_TARGETS.get(str(kind), "")
        nearest = min(galleries, key=lambda g: (len(routes[m, g]["best"]["path"]), g))
        b = preferred if preferred in galleries else nearest
        path = routes[m, b]["best"]["path"]
        request = post("/retrieve", {"from": m, "to": b, str(kind): raw_value(str(kind)), "k": k})
        for connections in sorted({1, many}):
            scenarios.append(Scenario(
                f"POST /retrieve {raw_label(str(kind))} → {b} ({' → '.join(path)}), k={k}", "raw", request,
                connections, route=path,
            ))
        if kind == "text":
            scenarios.append(Scenario(f'POST /embed text "{CAPTION}"', "embed",
                                      post("/embed", {"modality": m, "text": CAPTION}), many))
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name or s.group == "anchor"]
    described = {
        "modalities": {m: {"dim": i["dim"], "gallery": (i.get("gallery") or {}).get("size"),
                           "index_type": (i.get("gallery") or {}).get("index_type"), "encoder": i.get("encoder")}
                       for m, i in modalities.items()},
        "strategies": {f"{a}→{b}": {"path": r["best"]["path"], **{key: r["strategy"].get(key)
                                                                     for key in ("strategy", "chosen", "hubness")}}
                       for (a, b), r in sorted(routes.items())},
    }
    return scenarios, described


def warm_up(scenario: Scenario, port: int) -> None:
    """A few requests before the clock runs; a retrieve's first answer tells how it was searched."""
    for _ in range(3):
        status, body = exchange(port, scenario.request)
        if status != 200:
            scenario.errors += 1
            scenario.first_error = f"warm-up: HTTP {status}: {str(body)[:300]}"
            print(f"  {scenario.name}: {scenario.first_error}", file=sys.stderr)
            return
        if isinstance(body, dict) and "strategy" in body:
            scenario.strategy, scenario.hubness = body["strategy"], body.get("hubness")


# --- tables ---------------------------------------------------------------------------------------


def served_as(row: dict[str, Any]) -> str:
    if not row.get("strategy"):
        return ""
    hubness = row.get("hubness")
    return str(row["strategy"]) + (f" + {hubness.upper()}" if hubness and hubness != "none" else "")


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table with a line above saying where and under what load they ran."""
    run = report["run"]
    lines = [
        f"Bundle `{run['bundle']}`; {run['cpus']} CPUs, load client on the same machine; "
        f"{run['seconds']:g} s per scenario in alternating {run['slice']:g} s slices; "
        f"1-min load average {run['load_before']:.2f} before, {run['load_after']:.2f} after "
        f"({run['started']}).",
        "",
        "| request | served as | c | req/s | p50 ms | p99 ms | server CPU ms/req | × anchor echo | shed | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def number(row: dict[str, Any], key: str, digits: int) -> str:
        value = row.get(key)
        if value is None:
            return "–"
        return f"{value:,.{digits}f}" if value >= 0.1 or value == 0 else f"{value:.2g}"  # 0.004, not 0.00

    for row in report["scenarios"]:
        lines.append(
            f"| {row['name']} | {served_as(row)} | {row['connections']} | {number(row, 'rps', 0)} | "
            f"{number(row, 'p50_ms', 1)} | {number(row, 'p99_ms', 1)} | {number(row, 'cpu_ms_per_request', 2)} | "
            f"{number(row, 'vs_echo', 2)} | {row['shed']} | {row['errors']} |"
        )
    return "\n".join(lines)


def write_readme(report: dict[str, Any], readme: Path = README) -> None:
    """Replace the table between the two marker comments of README.md (in its Performance section)."""
    replace_between(readme, BEGIN, END, markdown(report))


# --- main -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_port, anchor_port = free_port(), free_port()
    env = os.environ | {"LATENT_BRIDGE_ACCESS_LOG": "false", "LATENT_BRIDGE_LOG_LEVEL": "warning"}
    server_command = [sys.executable, "-m", "latent_bridge.cli", "serve", "--bundle", str(args.bundle),
                      "--host", HOST, "--port", str(server_port), "--workers", str(args.workers)]
    anchor_command = [sys.executable, str(ANCHOR), "--port", str(anchor_port)]
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M")
    with (
        running(server_command, env, server_port, "/readyz", "the server") as server_pid,
        running(anchor_command, env, anchor_port, "/ping", "the anchor") as anchor_pid,
    ):
        scenarios, described = build_scenarios(server_port, args)
        where = {"server": (server_port, server_pid), "anchor": (anchor_port, anchor_pid)}
        print(f"{len(scenarios)} scenarios, {args.seconds:g} s each in {args.slice:g} s slices", file=sys.stderr)
        for scenario in scenarios:
            warm_up(scenario, where[scenario.target][0])
        rounds = max(1, math.ceil(args.seconds / args.slice))
        per_slice = (args.seconds / rounds, max(1, args.max_requests // rounds))
        for number in range(rounds):  # every scenario once per round, so background load falls on all alike
            for scenario in scenarios:
                port, pid = where[scenario.target]
                drive(scenario, port, pid if args.workers == 1 or scenario.target == "anchor" else -1, *per_slice)
            print(f"round {number + 1}/{rounds} done", file=sys.stderr)
    echo = next((s for s in scenarios if s.name.startswith("anchor POST /echo")), None)
    echo_rps = echo.rps if echo else None
    return {
        "run": {
            "bundle": str(args.bundle),
            "started": started,
            "cpus": os.cpu_count(),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "seconds": args.seconds,
            "slice": args.seconds / rounds,
            "max_requests": args.max_requests,
            "connections": args.connections,
            "workers": args.workers,
            "batch": args.batch,
            "k": args.k,
        },
        "bundle": described,
        "scenarios": [s.summary(echo_rps) for s in scenarios],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="the bundle to serve (models/demo for make bench)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario, all its slices together")
    parser.add_argument("--slice", type=float, default=1.0, help="scenarios alternate in slices this long")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per scenario, all slices together")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--batch", type=int, default=256, help="vectors in the batch /translate")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--only", default=None, help="run only scenarios whose name contains this (and the anchor)")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "bench" / "load.json",
                        help="where to write the results (default reports/bench/load.json)")
    parser.add_argument("--readme", type=Path, default=None, metavar="JSON",
                        help="run nothing: rewrite README.md's Performance table from this saved run")
    args = parser.parse_args(argv)
    if args.readme is not None:
        write_readme(json.loads(args.readme.read_text()))
        print(f"wrote the table of {args.readme} into {README}")
        return
    if args.bundle is None:
        parser.error("--bundle is required (or --readme JSON)")
    report = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(report))
    print(f"\nwrote {args.json}")
    for row in report["scenarios"]:
        for count, first in (("errors", "first_error"), ("shed", "first_shed")):
            if row[first]:
                print(f"{row['name']} (c={row['connections']}): {row[count]} {count}, first {row[first]}",
                      file=sys.stderr)


if __name__ == "__main__":
    main()
