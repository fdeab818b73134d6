"""Training time against data size: the demo bundle, and planted synthetic pairs, 384-d ↔ 768-d.

Each row trains one bundle with defaults (every pair, both directions, every candidate kind,
cross-validated selection, final refit, ONNX export, galleries) with one torch thread, and prints wall
seconds beside the machine's load, and CPU seconds: with one thread, what the wall time would be on a
core of its own. ``demo`` is ``latent-bridge train --data data/demo`` (3 pairs, 644 samples).

    python bench/train_time.py [--sizes demo 1000 10000 100000] [--out reports/train_time.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["demo", "1000", "10000", "100000"],
                        help="'demo' or a number of synthetic pairs")
    parser.add_argument("--out", type=Path, default=Path("reports/train_time.md"))
    args = parser.parse_args()
    lines = ["| data | folds | kinds chosen (MLP epochs) | wall s | CPU s | load before → after (1-min avg, 2 cores) |",
             "|---|---|---|---|---|---|"]
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            if size == "demo":
                data, n, name = Path("data/demo"), 644, "demo bundle (644 samples, 3 pairs)"
            else:
                n = int(size)
                name = f"{n:,} pairs, 384-d ↔ 768-d"
                data = make_dataset(Path(tmp) / "data", n=n, dims={"text": 384, "image": 768},
                                    relation="nonlinear", noise=0.5, seed=0)
            load = os.getloadavg()[0]
            started, cpu = time.perf_counter(), time.process_time()
            cfg = TrainConfig(data=data, out=Path(tmp) / "bundle", progress=False)
            manifest = train(cfg)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            folds = cfg.folds if n < cfg.single_split_from else 1
            kinds = ", ".join(f"{e.key.replace('__', '→')} {e.kind}" + (
                f" ({e.fit.hyperparameters.get('epochs')})" if e.kind == "mlp" and e.fit else "")
                for e in manifest.edges)
            after = os.getloadavg()[0]
            lines.append(f"| {name} | {folds} | {kinds} | {seconds:.0f} | {cpu:.0f} | {load:.1f} → {after:.1f} |")
            print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
