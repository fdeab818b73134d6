"""Training configuration: one dataclass, filled from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from latent_bridge.service.bundle.manifest import EDGE_KINDS, IndexType

KIND_CHOICES = ("auto", *EDGE_KINDS)


@dataclass
class TrainConfig:
    data: Path
    out: Path
    kind: str = "auto"  # one of KIND_CHOICES; auto keeps, per directed edge, the best cross-validated R@1
    edges: list[tuple[str, str]] | None = None  # directed; None = every pair sharing enough samples
    seed: int = 0
    min_shared: int = 32
    holdout: float = 0.0  # fraction of samples kept out of every fit as a test split (0: fit every pair)
    folds: int = 5  # cross-validation folds by sample ...
    single_split_from: int = 20_000  # ... or, from this many usable samples, one split ...
    val_fraction: float = 0.2  # ... scoring this fraction
    # linear kinds
    ridge_alphas: tuple[float, ...] = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)  # a user's usual grid
    cca_dim: int = 128
    # MLP
    hidden: int = 512
    dropout: float = 0.2
    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 8  # epochs without a better mean cross-validated score before the MLP stops
    cosine_weight: float = 1.0  # cosine to the true partner
    recon_weight: float = 0.5  # the seeds' reconstruction loss 1 - cos(x, f_BA(f_AB(x)))
    infonce_weight: float = 1.0
    temperature: float = 0.05
    max_pairs_per_sample: int = 8
    # DMVAE (--kind dmvae; also a candidate of auto): epochs, patience, weight decay and temperature as above
    dmvae_lr: float = 6e-3  # it starts from scratch, not from a linear map as the MLP does
    dmvae_batch_size: int = 128
    dmvae_hidden: int = 128  # each encoder's and decoder's hidden width
    dmvae_shared: int = 64  # shared code: what the pair's two sides have in common
    dmvae_private: int = 8  # each side's private code
    dmvae_beta: float = 1e-3  # weight of the KL terms (per row, summed over the code)
    dmvae_align_weight: float = 1.0  # InfoNCE between the two sides' shared means
    auto_dmvae: bool = False  # auto also tries dmvae: about doubles selection time, and lost on every demo edge
    joint: bool = False  # then tune every translator together (training/joint.py); kept where CV says it wins
    bf16: bool = True  # MLP steps in bfloat16 autocast (float32 weights) where the CPU has it natively: ~2x faster
    # galleries
    index_type: IndexType = "flat"
    pivots: bool = True  # choose each route's retrieval strategy and build the pivot galleries it needs
    progress: bool = True
    threads: int = 1  # torch threads: small translators gain little from more, and lose much on shared cores
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KIND_CHOICES:
            raise ValueError(f"unknown kind {self.kind!r}; choose from {', '.join(KIND_CHOICES)}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")

    def as_record(self) -> dict[str, object]:
        """JSON-able copy for the manifest."""
        record = asdict(self)
        record["data"] = str(self.data)
        record["out"] = str(self.out)
        record["edges"] = [f"{a}:{b}" for a, b in self.edges] if self.edges else None
        return json.loads(json.dumps(record))  # tuples become lists, as they will be read back
