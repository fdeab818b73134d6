"""Translators (one onnxruntime session per edge) and running a batch along a route.

A translator maps raw source embeddings to raw target embeddings (docs/architecture.md, "Bundle"), so a route is the
composition of its hops: each hop's output array is the next hop's input as it is, with no copy or
conversion between hops. Sessions are created once per bundle and shared by all requests (onnxruntime's
``run`` is thread-safe).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
from latent_bridge.service.bundle.manifest import ONNX_INPUT, ONNX_OUTPUT, BundleError, EdgeSpec
from latent_bridge.service.engine.graph import Route
from latent_bridge.service.errors import NonFiniteOutput
from latent_bridge.service.galleries.backend import Matrix

HopTimer = Callable[[str, float], None]


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _static_dims(shape: list[int | str | None]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


class Translator:
    """One directed edge's ONNX model, checked against the manifest's dimensions when opened."""

    def __init__(
        self, spec: EdgeSpec, model: bytes, source_dim: int, target_dim: int, path: Path, threads: int = 1
    ) -> None:
        self.spec = spec
        self.key = spec.key
        self.source_dim = source_dim
        self.target_dim = target_dim
        try:
            self.session = ort.InferenceSession(
                model, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged model
            raise BundleError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc
        self._check_io(path)
        self._outputs = [ONNX_OUTPUT]

    def _check_io(self, path: Path) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [ONNX_INPUT] or ONNX_OUTPUT not in [o.name for o in outputs]:
            raise BundleError(
                f"{path}: expected one input {ONNX_INPUT!r} and an output {ONNX_OUTPUT!r}, found inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
            )
        output = next(o for o in outputs if o.name == ONNX_OUTPUT)
        for arg, dim, what in ((inputs[0], self.source_dim, "input"), (output, self.target_dim, "output")):
            if arg.type != "tensor(float)":
                raise BundleError(f"{path}: {what} has type {arg.type}, expected tensor(float)")
            shape = _static_dims(arg.shape)
            if len(shape) != 2 or shape[1] not in (dim, None):
                raise BundleError(
                    f"{path}: {what} shape {arg.shape} does not match the manifest's {self.key} "
                    f"({what} dimension {dim})"
                )

    def __call__(self, x: Matrix) -> Matrix:
        out: Matrix = self.session.run(self._outputs, {ONNX_INPUT: x})[0]
        return out

    def warm_up(self, path: Path, batch: int, deadline: float = 10.0) -> None:
        """Run at batch 1 (three times) and ``batch``; check the output really has the manifest's dimension,
        and measure what a call costs (``seconds``). A run past ``deadline`` seconds is stopped and the
        translator refused: a model that slow (an ONNX ``Loop``, say) must not hold up a reload."""
        timings: dict[int, float] = {}
        for n in (1, 1, 1, batch):
            options = ort.RunOptions()
            options.log_severity_level = 4  # the stopped run's error is ours to report, in one line
            timer = threading.Timer(deadline, setattr, (options, "terminate", True))
            timer.start()
            started = time.perf_counter()
            try:
                x = np.zeros((n, self.source_dim), np.float32)
                out = self.session.run(self._outputs, {ONNX_INPUT: x}, options)
            except Exception as exc:
                if options.terminate:
                    raise BundleError(
                        f"{path}: a warm-up run on a batch of {n} took longer than {deadline:g} s "
                        "(load_timeout)"
                    ) from None
                raise BundleError(f"{path}: fails on a batch of {n} ({type(exc).__name__}: {exc})") from exc
            finally:
                timer.cancel()
            timings[n] = min(timings.get(n, math.inf), time.perf_counter() - started)
            if out[0].shape != (n, self.target_dim):
                raise BundleError(
                    f"{path}: output shape {out[0].shape} for a batch of {n}, "
                    f"manifest says ({n}, {self.target_dim})"
                )
        self._seconds_one = timings[1]
        self._seconds_per_row = max(0.0, timings[batch] - timings[1]) / max(1, batch - 1)

    def seconds(self, rows: int) -> float:
        """The measured cost of one call on ``rows`` vectors (from the warm-up)."""
        return self._seconds_one + self._seconds_per_row * max(0, rows - 1)


def route_seconds(translators: Mapping[tuple[str, str], Translator], route: Route, rows: int) -> float:
    """What translating ``rows`` vectors along ``route`` costs, by the translators' measured warm-up."""
    return sum(translators[h.source, h.target].seconds(rows) for h in route.hops)


def check_finite_output(y: Matrix, what: str = "translated vector") -> None:
    """Refuse an answer holding NaN or infinity: finite inputs can overflow float32 along a route (values
    near 3e38), and NaN or Infinity in JSON is invalid for most clients (and unsearchable by FAISS)."""
    finite = np.isfinite(y)
    if finite.all():
        return
    rows = np.flatnonzero(~finite.reshape(len(y), -1).all(axis=1))
    raise NonFiniteOutput(
        f"{len(rows)} {what}(s) overflow float32 to NaN or infinity, first at row {int(rows[0])}: the input "
        "values are too large for this route",
        rows=rows[:20].tolist(),
    )


def unit_rows(x: Matrix) -> Matrix:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.isfinite(norms).all():  # finite values whose norm overflows float32: divide in float64
        wide = x.astype(np.float64)
        unit: Matrix = (wide / np.maximum(np.linalg.norm(wide, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return unit
    out: Matrix = x / np.maximum(norms, np.float32(1e-12))
    return out


def run_route(
    translators: Mapping[tuple[str, str], Translator],
    route: Route,
    x: Matrix,
    l2_inputs: frozenset[str] = frozenset(),
    on_hop: HopTimer | None = None,
) -> Matrix:
    """Translate a float32 (n, d) batch along ``route``; modalities in ``l2_inputs`` get unit-norm inputs."""
    for hop in route.hops:
        if hop.source in l2_inputs:
            x = unit_rows(x)
        translator = translators[hop.source, hop.target]
        if on_hop is None:
            x = translator(x)
        else:
            started = time.perf_counter()
            x = translator(x)
            on_hop(translator.key, time.perf_counter() - started)
    check_finite_output(x)
    return x


def round_trip_cosine(x: Matrix, back: Matrix, mean: Matrix | None) -> Matrix:
    """Row-wise cosine of ``x`` and its round trip ``back``, both centred by ``mean`` when given (in float64:
    large finite values would overflow float32's products)."""
    x, back = x.astype(np.float64), back.astype(np.float64)
    if mean is not None:
        x = x - mean
        back = back - mean
    num = np.einsum("ij,ij->i", x, back)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(back, axis=1)
    out: Matrix = (num / np.maximum(den, 1e-12)).astype(np.float32)
    return out
