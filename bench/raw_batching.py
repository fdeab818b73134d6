"""Dynamic batching of encoder calls: raw queries at concurrency 1 and N, batching off and on, one run.

    python bench/raw_batching.py --bundle models/demo [--seconds 6] [--kinds text,image]

For each server configuration (``--configs``, default ``off`` = ``LATENT_BRIDGE_ENCODE_BATCH_SIZE=1`` and
``on`` = the settings' defaults; ``size:wait`` pairs such as ``16:2`` try others) it starts
``latent-bridge serve`` on a free loopback port (all of them at once) and drives ``POST /retrieve`` with a
raw query per encoder kind (the caption "a dog" → image, a 64 px PNG → text, a 1 s WAV → text) at
concurrency 1 and ``--connections``, every server's scenarios in alternating slices so background load falls
on all alike. It reuses ``bench/load.py``'s keep-alive client. Prints a Markdown table (req/s of 200
answers, p50/p99 ms, 503s, the server's CPU per request) with the 1-minute load average
before and after. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (bench/load.py: the client, the processes, the raw inputs)

TARGETS = {"text": "image", "image": "text", "audio": "text"}
MODALITY = {"text": "text", "image": "image", "audio": "audio"}  # the demo's modality per input kind
def environment(config: str) -> dict[str, str]:
    env = {"LATENT_BRIDGE_ACCESS_LOG": "false", "LATENT_BRIDGE_LOG_LEVEL": "warning"}
    if config == "off":
        env["LATENT_BRIDGE_ENCODE_BATCH_SIZE"] = "1"
    elif config != "on":
        size, wait = config.split(":")
        env |= {"LATENT_BRIDGE_ENCODE_BATCH_SIZE": size, "LATENT_BRIDGE_ENCODE_BATCH_WAIT_MS": wait}
    return env


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every configuration's server at once, their scenarios in alternating slices."""
    runs: list[tuple[str, int, int, load.Scenario]] = []
    with ExitStack() as stack:
        for config in args.configs:
            port = load.free_port()
            command = [sys.executable, "-m", "latent_bridge.cli", "serve", "--bundle", str(args.bundle),
                       "--host", load.HOST, "--port", str(port), "--workers", "1"]
            env = os.environ | environment(config)
            pid = stack.enter_context(load.running(command, env, port, "/readyz", f"the server ({config})"))
            for kind in args.kinds:
                body = {"from": MODALITY[kind], "to": TARGETS[kind], kind: load.raw_value(kind), "k": 10}
                for c in sorted({1, args.connections}):
                    scenario = load.Scenario(f"{load.raw_label(kind)} → {TARGETS[kind]}", kind,
                                             load.post("/retrieve", body), c)
                    load.warm_up(scenario, port)
                    runs.append((config, port, pid, scenario))
        rounds = max(1, math.ceil(args.seconds / args.slice))
        for _ in range(rounds):
            for _, port, pid, scenario in runs:
                load.drive(scenario, port, pid, args.seconds / rounds, args.max_requests)
    order = {(kind, c): i for i, (kind, c) in enumerate((k, c) for k in args.kinds for c in (1, args.connections))}
    runs.sort(key=lambda r: (order[r[3].group, r[3].connections], args.configs.index(r[0])))
    return [scenario.summary(None) | {"config": config} for config, _, _, scenario in runs]


def number(row: dict[str, Any], key: str, digits: int) -> str:
    value = row.get(key)
    return "–" if value is None else f"{value:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=load.ROOT / "models" / "demo")
    parser.add_argument("--seconds", type=float, default=6.0, help="per scenario, all its slices together")
    parser.add_argument("--slice", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--kinds", default="text", help="comma-separated: text,image,audio")
    parser.add_argument("--configs", default="off,on", help="off, on, or size:wait_ms pairs, comma-separated")
    args = parser.parse_args()
    args.kinds = args.kinds.split(",")
    args.configs = args.configs.split(",")
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    rows = run(args)
    print(f"Bundle `{args.bundle}`; {os.cpu_count()} CPUs, client on the same machine; {args.seconds:g} s per "
          f"scenario in {args.slice:g} s slices; 1-min load average {load_before[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after ({started}).\n")
    print("| batching | raw query | c | req/s | p50 ms | p99 ms | 503 | errors | server CPU ms/req |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['name']} | {r['connections']} | {number(r, 'rps', 0)} | "
              f"{number(r, 'p50_ms', 1)} | {number(r, 'p99_ms', 1)} | {r['shed']} | {r['errors']} | "
              f"{number(r, 'cpu_ms_per_request', 2)} |")
    for r in rows:
        if r["first_error"]:
            print(f"{r['config']} {r['name']} c={r['connections']}: {r['first_error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
