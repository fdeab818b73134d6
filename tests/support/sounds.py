"""Synthetic sound files for raw-input tests."""

from __future__ import annotations

import io
import wave

import numpy as np


def wav(seconds: float, rate: int) -> bytes:
    """A 440 Hz tone as 16-bit mono WAV."""
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    return buffer.getvalue()
