"""Base64, the fast way where it can: float batches and raw files travel as base64 in JSON bodies."""

from __future__ import annotations

import base64
from collections.abc import Callable


def _codec() -> tuple[Callable[..., bytes], Callable[[bytes], bytes]]:
    """pybase64 (SIMD, ~50× faster on a 256 × 1280 batch: 0.08 ms against 4 ms) when installed."""
    try:
        import pybase64

        return pybase64.b64decode, pybase64.b64encode
    except ModuleNotFoundError:
        return base64.b64decode, base64.b64encode


b64decode, b64encode = _codec()
