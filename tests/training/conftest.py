from pathlib import Path

import pytest
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.train import train


@pytest.fixture(scope="session")
def rotation_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Manifest]:
    """A bundle trained with `auto` on a planted rotation (few samples, much noise, 20% held out), built once."""
    root = tmp_path_factory.mktemp("rotation")
    data = make_dataset(root / "data", n=300, dims={"a": 64, "b": 64}, relation="rotation", noise=0.8, offset=1.0)
    out = root / "bundle"
    manifest = train(TrainConfig(data=data, out=out, holdout=0.2, epochs=20, progress=False))
    return data, out, manifest
