"""Export a translator to ONNX and prove the file computes what the torch module computes.

Nothing is written into a bundle until the ONNX graph passes ``onnx.checker`` and onnxruntime agrees
with torch at batch 1 and batch N.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from latent_bridge.service.bundle.manifest import ONNX_INPUT, ONNX_OUTPUT
from torch import nn

PARITY_ATOL = 1e-5


class ExportError(ValueError):
    """A translator or encoder whose export does not check out (ONNX checker, parity with torch)."""


def to_onnx(module: nn.Module, in_dim: int) -> bytes:
    """Serialise ``module`` with a dynamic batch axis; return the verified model bytes."""
    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(2, in_dim),),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    check_parity(module, data, in_dim)
    return data


def check_parity(module: nn.Module, data: bytes, in_dim: int, seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random inputs at batch 1 and 64; raise beyond ``PARITY_ATOL``."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in (1, 64):
        x = rng.standard_normal((batch, in_dim)).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]
        scale = max(1.0, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(got - expected).max()) / scale)
    if worst > PARITY_ATOL:
        raise ExportError(f"onnxruntime differs from torch by {worst:.2e} (> {PARITY_ATOL:.0e})")
    return worst
