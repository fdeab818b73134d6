"""Soak: a real server on loopback under steady concurrent load, with a hot reload in the middle.

    python bench/soak.py --bundle models/demo --seconds 60 [--concurrency 64] [--reload-bundle B2]

Starts `latent-bridge serve` on 127.0.0.1 (a free port, an API key so /admin/reload exists), then runs
``--concurrency`` client loops for ``--seconds`` mixing POST /translate, GET and POST /retrieve and bad
requests sent on purpose (wrong dimension, unknown modality, k over the limit, a body over the limit,
no key). Halfway it reloads (POST /admin/reload, ``--reload-bundle`` or the same bundle), and at three
quarters sends SIGHUP. Reports requests, responses by status (expected and unexpected), p50/p99 of the
good requests, failures around the reload, and the server's resident memory after warm-up and at the
end. Bounded in time (``--seconds`` ≤ 600) and in requests (``--max-requests``); loopback only.
Exit status 1 on any unexpected status or transport error, or memory growth of ``--max-growth`` or more.

``--attack`` runs the soak twice on fresh servers, clean and then beside an attack mix (``--attackers``
loops sending pinned paths of 40,000 hops, vectors of 3e38, 1 MiB headers, reloads of bundles outside the
models folder, a 500k-character id, a `where` of 50k values, an id with a NUL, and where the bundle has
encoders the crafted raw inputs of the hardening review (``tests/support/attack_payloads.py``: a PNG
claiming 30000×30000 px, an EPS loop as an image, SDP and ffconcat texts as audio, 32 texts of 10k
characters), plus ``--slow-sockets`` connections that never finish their headers, reopened as the server
cuts them off), and compares the normal requests' p99 and the server's memory between the two; it
tallies each attack's answers (4xx and 503 are the server refusing, 5xx or transport errors are not).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from attack_payloads import EPS, FFCONCAT, SDP, png_header  # noqa: E402  # the hardening review's inputs

HOST = "127.0.0.1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from serverprocess import free_port  # noqa: E402

BAD_KINDS = ("wrong-dim", "unknown-modality", "k-too-large", "body-too-large", "no-key")


@dataclass
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    near_reload: Counter[str] = field(default_factory=Counter)
    requests: int = 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def command() -> list[str]:
    script = Path(sys.executable).with_name("latent-bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "latent_bridge.cli"]


def plan(client_info: dict[str, object]) -> dict[str, object]:
    """Modalities with a gallery and an edge, their dims and a few stored ids, from the running server."""
    modalities = {m["name"]: m for m in client_info["modalities"]}  # type: ignore[union-attr,index]
    return modalities


async def one_request(
    http: httpx.AsyncClient, rng: random.Random, world: dict[str, object], max_body: int
) -> tuple[str, int, set[int]]:
    """Send one request of the mix; return (kind, status, the statuses that count as expected)."""
    pairs: list[tuple[str, str]] = world["pairs"]  # type: ignore[assignment]
    dims: dict[str, int] = world["dims"]  # type: ignore[assignment]
    ids: dict[str, list[str]] = world["ids"]  # type: ignore[assignment]
    source, target = rng.choice(pairs)
    roll = rng.random()
    if roll < 0.45:
        n = rng.choice((1, 1, 4, 16))
        vectors = np.random.default_rng(rng.getrandbits(32)).standard_normal((n, dims[source])).tolist()
        r = await http.post("/translate", json={"from": source, "to": target, "vectors": vectors})
        return "translate", r.status_code, {200}
    if roll < 0.65:
        r = await http.get("/retrieve", params={"from": source, "to": target, "id": rng.choice(ids[source]), "k": 10})
        return "retrieve-id", r.status_code, {200}
    if roll < 0.85:
        vector = np.random.default_rng(rng.getrandbits(32)).standard_normal(dims[source]).tolist()
        r = await http.post("/retrieve", json={"from": source, "to": target, "vector": vector, "k": 5})
        return "retrieve-vectors", r.status_code, {200}
    kind = rng.choice(BAD_KINDS)
    if kind == "wrong-dim":
        r = await http.post("/translate", json={"from": source, "to": target, "vector": [0.5] * (dims[source] + 1)})
        return kind, r.status_code, {422}
    if kind == "unknown-modality":
        r = await http.post("/translate", json={"from": "smell", "to": target, "vector": [0.5]})
        return kind, r.status_code, {404}
    if kind == "k-too-large":
        r = await http.get("/retrieve", params={"from": source, "to": target, "id": ids[source][0], "k": 100_000})
        return kind, r.status_code, {422}
    if kind == "body-too-large":
        r = await http.post("/translate", content=b" " * (max_body + 1), headers={"content-type": "application/json"})
        return kind, r.status_code, {413}
    request = http.build_request("GET", "/modalities")
    del request.headers["x-api-key"]
    r = await http.send(request)
    return kind, r.status_code, {401}


SPAWN = multiprocessing.get_context("spawn")
ATTACK_KINDS = ("long-path", "huge-values", "huge-headers", "refused-reload", "long-id", "huge-where", "nul-id")
RAW_ATTACKS = {  # kind: (the encoder input it is sent as, the bytes)
    "png-30000x30000": ("image", png_header(30_000, 30_000)),
    "eps-as-image": ("image", EPS),
    "sdp-as-audio": ("audio", SDP),
    "ffconcat-as-audio": ("audio", FFCONCAT),
}


CUT_OFF = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)  # the server closed the connection


@dataclass
class Attack:
    statuses: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    slow_cut: int = 0  # slow-header connections the server closed


async def one_attack(
    http: httpx.AsyncClient, rng: random.Random, world: dict[str, object], admin: str
) -> tuple[str, int | str]:
    pairs: list[tuple[str, str]] = world["pairs"]  # type: ignore[assignment]
    dims: dict[str, int] = world["dims"]  # type: ignore[assignment]
    source, target = next(((a, b) for a, b in pairs if a != b), pairs[0])
    encoders: dict[str, str] = world["encoders"]  # type: ignore[assignment]  # encoder input: modality
    raw = [k for k, (needs, _) in RAW_ATTACKS.items() if needs in encoders]
    kind = rng.choice([*ATTACK_KINDS, *raw, *(["long-texts"] if "text" in encoders else [])])
    try:
        if kind in RAW_ATTACKS:
            needs, data = RAW_ATTACKS[kind]
            r = await http.post("/embed", json={"modality": encoders[needs], needs: base64.b64encode(data).decode()})
            return kind, r.status_code
        if kind == "long-texts":
            r = await http.post("/embed", json={"modality": encoders["text"], "text": ["word " * 2000] * 32})
            return kind, r.status_code
        if kind == "long-id":
            r = await http.post("/retrieve", json={"from": source, "to": target, "ids": ["i" * 500_000]})
            return kind, r.status_code
        if kind == "huge-where":
            where = {"caption": [f"caption {i}" for i in range(50_000)]}  # under the soak's 1 MiB body limit
            r = await http.post("/retrieve", json={"from": source, "to": target, "vector": [0.1] * dims[source],
                                                   "where": where})
            return kind, r.status_code
        if kind == "nul-id":
            r = await http.get("/retrieve", params={"from": source, "to": target, "id": "item\0"})
            return kind, r.status_code
        if kind == "long-path":
            path = [source, target] * 20_000  # 40,000 hops, under 1 MiB
            r = await http.post("/translate", json={"from": source, "to": target, "vector": [0.1] * dims[source],
                                                    "path": path})
        elif kind == "huge-values":
            r = await http.post("/retrieve", json={"from": source, "to": target, "vector": [3e38] * dims[source]})
        elif kind == "huge-headers":
            r = await http.get("/modalities", headers={"x-big": "a" * (1 << 20)})
        else:
            r = await http.post("/admin/reload", json={"bundle": "/etc"}, headers={"x-api-key": admin})
    except httpx.TransportError as exc:
        if kind == "huge-headers" and isinstance(exc, CUT_OFF):
            return kind, "closed"  # the 431 and close can lose the race with the client's unsent headers (a reset)
        return kind, type(exc).__name__
    except httpx.HTTPError as exc:
        return kind, type(exc).__name__
    return kind, r.status_code


async def slow_headers(port: int, until: float, attack: Attack) -> None:
    """Hold a connection whose headers never finish (a byte a second); when the server answers or cuts it
    off, count it and open another."""
    while time.monotonic() < until:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"GET /modalities HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() < until:
                writer.write(b"a")
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1024), timeout=1.0)  # the 408, or b"" when closed
                except TimeoutError:
                    continue
                attack.slow_cut += 1
                break
        except OSError:
            attack.slow_cut += 1
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.05)


def run_attacks(
    base: str,
    key: str,
    admin: str,
    world: dict[str, object],
    seconds: float,
    attackers: int,
    slow_sockets: int,
    results: multiprocessing.Queue[tuple[dict[tuple[str, int | str], int], int]],
) -> None:
    """The attack mix for ``seconds``, in a process of its own; its tally goes to ``results``."""
    attack = Attack()
    until = time.monotonic() + seconds
    port = int(base.rsplit(":", 1)[1])

    async def attacker(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}, timeout=30) as http:
            while time.monotonic() < until:
                attack.statuses[await one_attack(http, rng, world, admin)] += 1

    async def everything() -> None:
        slow = [slow_headers(port, until, attack) for _ in range(slow_sockets)]
        await asyncio.gather(*(attacker(i) for i in range(attackers)), *slow)

    asyncio.run(everything())
    results.put((dict(attack.statuses), attack.slow_cut))


async def soak(
    args: argparse.Namespace, base: str, key: str, pid: int, admin: str, attack: Attack | None = None
) -> tuple[Tally, list[str], int, int]:
    headers = {"x-api-key": key}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    tally = Tally()
    events: list[str] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as http:
        info = (await http.get("/modalities")).json()
        graph = (await http.get("/graph")).json()
        with_gallery = {m["name"] for m in info["modalities"] if m["gallery"]}
        pairs = [(e["source"], e["target"]) for e in graph["edges"] if e["source"] in with_gallery]
        pairs += [(m, m) for m in sorted(with_gallery)]
        dims = {m["name"]: m["dim"] for m in info["modalities"]}
        ids: dict[str, list[str]] = {}
        for m in with_gallery:  # ids of stored items, found by searching each gallery with its own mean-ish
            hits = (
                await http.post(
                    "/retrieve", json={"from": m, "to": m, "vector": [0.01] * dims[m], "k": min(50, args.max_k)}
                )
            ).json()
            ids[m] = [h["id"] for h in hits["results"][0]["hits"]]
        encoders = {m["encoder"]: m["name"] for m in info["modalities"] if m.get("encoder")}
        world: dict[str, object] = {"pairs": pairs, "dims": dims, "ids": ids, "encoders": encoders}

        started = time.monotonic()
        deadline = started + args.seconds
        warm_up_end = started + args.warm_up
        reload_at = started + args.seconds / 2
        hup_at = started + args.seconds * 3 / 4
        window: list[tuple[float, float]] = []
        rss_start = 0

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline and tally.requests < args.max_requests:
                tally.requests += 1
                t0 = time.perf_counter()
                now = time.monotonic()
                try:
                    kind, status, expected = await one_request(http, rng, world, args.max_body)
                except httpx.HTTPError as exc:
                    tally.unexpected[("transport", type(exc).__name__)] += 1
                    if any(a - 2 <= now <= b + 2 for a, b in window):
                        tally.near_reload["failed"] += 1
                    continue
                tally.statuses[(kind, status)] += 1
                if status not in expected:
                    tally.unexpected[(kind, status)] += 1
                elif status == 200 and now >= warm_up_end:
                    tally.latencies.append(time.perf_counter() - t0)
                if any(a - 2 <= now <= b + 2 for a, b in window):
                    tally.near_reload["ok" if status in expected else "failed"] += 1

        async def operator() -> None:
            nonlocal rss_start
            await asyncio.sleep(max(0.0, warm_up_end - time.monotonic()))
            rss_start = rss_kib(pid)
            events.append(f"{time.monotonic() - started:6.1f} s  RSS after warm-up {rss_start / 1024:.1f} MiB")
            if args.no_reload:
                return
            await asyncio.sleep(max(0.0, reload_at - time.monotonic()))
            a = time.monotonic()
            body = {"bundle": str(args.reload_bundle)} if args.reload_bundle else {}
            r = await http.post("/admin/reload", json=body, headers={"x-api-key": admin})
            window.append((a, time.monotonic()))
            events.append(
                f"{a - started:6.1f} s  POST /admin/reload -> {r.status_code} "
                f"{r.json().get('bundle')} {r.json().get('fingerprint')} in {time.monotonic() - a:.2f} s"
            )
            await asyncio.sleep(max(0.0, hup_at - time.monotonic()))
            a = time.monotonic()
            before = (await http.get("/readyz")).json()["load_seconds"]
            os.kill(pid, signal.SIGHUP)
            for _ in range(100):  # the swap shows in /readyz (a new load_seconds) within a few seconds
                await asyncio.sleep(0.1)
                ready = (await http.get("/readyz")).json()
                if ready["load_seconds"] != before:
                    break
            window.append((a, time.monotonic()))
            events.append(f"{a - started:6.1f} s  SIGHUP -> serving {ready['bundle']} {ready['fingerprint']}")

        samples: list[str] = []

        async def sampler() -> None:
            while time.monotonic() < deadline:
                samples.append(f"{time.monotonic() - started:.0f}s:{rss_kib(pid) / 1024:.0f}")
                await asyncio.sleep(5)

        attacker = None
        if attack is not None:  # its own process: building attacks must not slow the normal clients down
            results: multiprocessing.Queue[tuple[dict[tuple[str, int | str], int], int]] = SPAWN.Queue()
            attacker = SPAWN.Process(
                target=run_attacks,
                args=(base, key, admin, world, deadline - time.monotonic(), args.attackers, args.slow_sockets, results),
            )
            attacker.start()
        await asyncio.gather(operator(), sampler(), *(worker(i) for i in range(args.concurrency)))
        if attacker is not None and attack is not None:
            statuses, attack.slow_cut = await asyncio.to_thread(results.get, True, 60)
            attack.statuses.update(statuses)
            attacker.join(timeout=10)
        events.append("RSS MiB over time: " + " ".join(samples))
        rss_end = rss_kib(pid)
        metrics = (await http.get("/metrics")).text
        reloads = [line for line in metrics.splitlines() if line.startswith("latent_bridge_reloads_total")]
        events.append(f"{time.monotonic() - started:6.1f} s  end; {', '.join(reloads)}")
    return tally, events, rss_start, rss_end


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) * 1000 if values else float("nan")


def serve_and_soak(args: argparse.Namespace, attack: Attack | None) -> tuple[Tally, list[str], int, int, int, str]:
    """Start a fresh server, soak it (beside ``attack`` when given), stop it."""
    key, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    port = free_port()
    models = (args.reload_bundle or args.bundle).resolve().parent
    env = os.environ | {
        "LATENT_BRIDGE_API_KEY": key,
        "LATENT_BRIDGE_ADMIN_KEY": admin,
        "LATENT_BRIDGE_MODELS_DIR": str(models),
        "LATENT_BRIDGE_ACCESS_LOG": "false",
        "LATENT_BRIDGE_LOG_LEVEL": "error",
        "LATENT_BRIDGE_MAX_BODY_BYTES": str(args.max_body),
        "LATENT_BRIDGE_MAX_K": str(args.max_k),
        "LATENT_BRIDGE_HEADER_TIMEOUT": str(args.header_timeout),
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*command(), "serve", "--bundle", str(args.bundle), "--host", HOST, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://{HOST}:{port}"
        try:
            for _ in range(600):
                if process.poll() is not None:
                    log.seek(0)
                    raise SystemExit(log.read().decode())
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            tally, events, rss_start, rss_end = asyncio.run(soak(args, base, key, process.pid, admin, attack))
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        log.seek(0)
        return tally, events, rss_start, rss_end, code, log.read().decode(errors="replace")


def report(args: argparse.Namespace, title: str, run: tuple[Tally, list[str], int, int, int, str]) -> bool:
    """Print one run; whether it failed (unexpected answers, failures at the reloads, growth, traceback)."""
    tally, events, rss_start, rss_end, code, server_log = run
    total = sum(tally.statuses.values()) + sum(n for (k, _), n in tally.unexpected.items() if k == "transport")
    growth = (rss_end - rss_start) / rss_start if rss_start else float("nan")
    print(f"# soak ({title}): {args.bundle} for {args.seconds:g} s, concurrency {args.concurrency}, loopback")
    print()
    for line in events:
        print(f"    {line}")
    print()
    print(f"requests: {total} ({total / args.seconds:.0f}/s)")
    by_status = Counter[int]()
    for (_, status), n in tally.statuses.items():
        by_status[status] += n
    print("responses by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    print("| kind | status | count |\n|---|---|---|")
    for (kind, status), n in sorted(tally.statuses.items()):
        print(f"| {kind} | {status} | {n} |")
    print(f"unexpected: {dict(tally.unexpected) or 0}")
    print(f"around the reloads (±2 s): {dict(tally.near_reload)}")
    print(
        f"latency of good requests after warm-up: p50 {percentile(tally.latencies, 50):.1f} ms, "
        f"p99 {percentile(tally.latencies, 99):.1f} ms"
    )
    print(f"server RSS: {rss_start / 1024:.1f} MiB after warm-up, {rss_end / 1024:.1f} MiB at the end ({growth:+.1%})")
    print(f"server exit after SIGTERM: {code}")
    print()
    if "Traceback" in server_log:
        print("server log has a traceback:\n" + server_log[-3000:])
        return True
    return bool(tally.unexpected) or tally.near_reload.get("failed", 0) > 0 or growth >= args.max_growth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--reload-bundle", type=Path, help="bundle to reload into (default: the same one)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=None, help="seconds before RSS is first read")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--max-body", type=int, default=1 << 20, help="server's max_body_bytes for the run")
    parser.add_argument("--max-k", type=int, default=100)
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--no-reload", action="store_true", help="no reload, no SIGHUP (a baseline)")
    parser.add_argument("--attack", action="store_true", help="a clean run, then one beside the attack mix")
    parser.add_argument("--attackers", type=int, default=4, help="attack loops (long paths, huge values, ...)")
    parser.add_argument("--slow-sockets", type=int, default=200, help="connections with unfinished headers")
    parser.add_argument("--header-timeout", type=float, default=2.0, help="server's header_timeout for the run")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 600.0)
    args.warm_up = args.warm_up if args.warm_up is not None else min(10.0, args.seconds / 6)

    clean = serve_and_soak(args, None)
    failed = report(args, "clean", clean)
    if not args.attack:
        return 1 if failed else 0
    attack = Attack()
    attacked = serve_and_soak(args, attack)
    failed = report(args, "beside the attack mix", attacked) or failed
    print("attack answers: " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(attack.statuses.items(), key=str)))
    print(f"slow-header connections cut off by the server: {attack.slow_cut}")
    crashed = {f"{k} {s}": n for (k, s), n in attack.statuses.items() if isinstance(s, int) and s >= 500 and s != 503}
    if crashed:  # an attack must be refused (4xx, or 503 with Retry-After), never break the server
        print(f"attacks answered with a server error: {crashed}")
        failed = True
    p99 = percentile(clean[0].latencies, 99), percentile(attacked[0].latencies, 99)
    print(f"normal requests' p99: clean {p99[0]:.1f} ms, under attack {p99[1]:.1f} ms ({p99[1] / p99[0]:.2f}×)")
    growth = [(r[3] - r[2]) / r[2] for r in (clean, attacked)]
    print(f"server RSS growth: clean {growth[0]:+.1%}, under attack {growth[1]:+.1%}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
