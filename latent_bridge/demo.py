"""`latent-bridge demo`: train the default bundle from the committed demo dataset if it is missing, then serve.

The demo bundle deliberately has no direct image↔audio edge: audio reaches image only through text,
which is the point of the modality graph.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from latent_bridge.service.bundle.manifest import read_manifest

DEMO_DATA = Path("data/demo")
DEMO_EDGES = [("image", "text"), ("audio", "text")]
DEMO_BUNDLE = "demo"

EXAMPLES = """\
Open http://{host}:{port}/ to search with a caption, an image or a sound. Or try these while the server runs:

  # captions for a sound (a dog barking)
  curl -s 'http://{host}:{port}/retrieve?from=audio&to=text&id=audio:effect:animals/mammals/dogs/dog&k=5'

  # images for a caption
  curl -s 'http://{host}:{port}/retrieve?from=text&to=image&id=text:vehicles/emergency/cartoon/fire_engine&k=5'

  # how audio reaches image when no audio-image pairs were ever trained
  curl -s 'http://{host}:{port}/route?from=audio&to=image'
"""


def ensure_demo_bundle(models: Path, data: Path = DEMO_DATA) -> Path:
    """Return ``models/demo``, training it from ``data`` first when it is not there yet, with the real
    encoders packaged in (when the encoders extra is installed) so the server takes raw input."""
    bundle = Path(models) / DEMO_BUNDLE
    if (bundle / "manifest.json").is_file():
        print(f"using bundle {bundle}")
        if not read_manifest(bundle).encoders:
            print(f"  (it has no encoders, so the search page cannot embed text, images or sound: "
                  f"remove {bundle} to rebuild it with them)")
        return bundle
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.train import train

    translators = Path(models) / f".{DEMO_BUNDLE}-translators-{os.getpid()}"
    print(f"training {bundle} from {data} (edges {', '.join(f'{a}↔{b}' for a, b in DEMO_EDGES)}) ...")
    started = time.perf_counter()
    try:
        manifest = train(TrainConfig(data=Path(data), out=translators, edges=DEMO_EDGES))
        print(f"trained {len(manifest.edges)} edges in {time.perf_counter() - started:.0f}s")
        add_encoders(translators, bundle, Path(data))
    finally:
        shutil.rmtree(translators, ignore_errors=True)
    return bundle


def add_encoders(translators: Path, bundle: Path, data: Path) -> None:
    """``bundle`` = ``translators`` + the demo's encoders and thumbnails; without the encoders extra, the
    translators alone (vectors and stored ids only)."""
    from latent_bridge.training.datasets.builders.encoders import EncoderUnavailable

    print("exporting the text, image and audio encoders into the bundle ...")
    started = time.perf_counter()
    try:
        from latent_bridge.training.encoders_export import with_encoders

        with_encoders(translators, bundle, media_from=data)
    except (EncoderUnavailable, ModuleNotFoundError) as exc:
        print(f"  no encoders ({exc}); the bundle takes vectors and stored ids only")
        shutil.copytree(translators, bundle)
        return
    print(f"exported the encoders in {time.perf_counter() - started:.0f}s")


def examples(host: str, port: int) -> str:
    return EXAMPLES.format(host="localhost" if host in ("0.0.0.0", "::") else host, port=port)
