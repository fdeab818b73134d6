"""`latent-bridge demo`: train the default bundle from the committed demo dataset if it is missing, then serve.

The demo bundle deliberately has no direct image↔audio edge: audio reaches image only through text,
which is the point of the modality graph.
"""

from __future__ import annotations

import time
from pathlib import Path

DEMO_DATA = Path("data/demo")
DEMO_EDGES = [("image", "text"), ("audio", "text")]
DEMO_BUNDLE = "demo"

EXAMPLES = """\
Try these while the server runs:

  # captions for a sound (a dog barking)
  curl -s 'http://{host}:{port}/retrieve?from=audio&to=text&id=audio:effect:animals/mammals/dogs/dog&k=5'

  # images for a caption
  curl -s 'http://{host}:{port}/retrieve?from=text&to=image&id=text:vehicles/emergency/cartoon/fire_engine&k=5'

  # how audio reaches image when no audio-image pairs were ever trained
  curl -s 'http://{host}:{port}/route?from=audio&to=image'
"""


def ensure_demo_bundle(models: Path, data: Path = DEMO_DATA) -> Path:
    """Return ``models/demo``, training it from ``data`` first when it is not there yet."""
    bundle = Path(models) / DEMO_BUNDLE
    if (bundle / "manifest.json").is_file():
        print(f"using bundle {bundle}")
        return bundle
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.train import train

    print(f"training {bundle} from {data} (edges {', '.join(f'{a}↔{b}' for a, b in DEMO_EDGES)}) ...")
    started = time.perf_counter()
    manifest = train(TrainConfig(data=Path(data), out=bundle, edges=DEMO_EDGES))
    print(f"trained {len(manifest.edges)} edges in {time.perf_counter() - started:.0f}s")
    return bundle


def examples(host: str, port: int) -> str:
    return EXAMPLES.format(host="localhost" if host in ("0.0.0.0", "::") else host, port=port)
