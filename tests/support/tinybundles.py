"""Small real bundles trained by the training code in a second or two (ridge edges on a synthetic dataset).

Training is imported inside the functions, so collecting the service tests never needs torch.
"""

from __future__ import annotations

from pathlib import Path


def train_tiny(
    data: Path, out: Path, edges: list[tuple[str, str]] | None = None, index_type: str = "flat", seed: int = 0
) -> Path:
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.train import train

    config = TrainConfig(
        data=data, out=out, kind="ridge", edges=edges, progress=False, index_type=index_type, seed=seed
    )  # type: ignore[arg-type]
    train(config)
    return out


def tiny_dataset(out: Path, dims: dict[str, int], n: int = 200, seed: int = 0, **plant: object) -> Path:
    """A synthetic paired dataset (``make_dataset``'s planted relation; noise 0.1 unless given)."""
    from latent_bridge.training.datasets.builders.synthetic import make_dataset

    return make_dataset(out, n=n, dims=dims, seed=seed, **({"noise": 0.1} | plant))  # type: ignore[arg-type]
