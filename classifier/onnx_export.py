"""Serving the encoder layers with ONNX Runtime, weights and activations dynamically quantised to int8.

At the end of training the fine-tuned layers + mean pooling (hidden states, mask -> pooled vector) are exported to
ONNX and quantised (``onnxruntime.quantization.quantize_dynamic``, per-channel int8 weights): about 1.5x faster
than PyTorch's float32 on one request, with test accuracy within a few tenths of a point (PyTorch's own dynamic int8
lost ~3 points of category accuracy here; see README). The embedding lookup and the heads stay in PyTorch/numpy.
Needs the ``onnx`` (export) and ``onnxruntime`` (serving) packages; without them the model is served by PyTorch.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .model import HotlineClassifier, mean_pool

log = logging.getLogger(__name__)
ONNX_FILE = "encoder_int8.onnx"


class _Core(torch.nn.Module):
    def __init__(self, model: HotlineClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.model.run_layers(x, mask), mask)


def export_int8(model: HotlineClassifier, directory: Path) -> Path | None:
    """Write ``directory/encoder_int8.onnx``; ``None`` (and a log line) when onnx/onnxruntime are missing."""
    try:
        import onnx  # noqa: F401 - required by the exporter
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        log.warning("ONNX export skipped (%s); the model will be served by PyTorch", exc)
        return None
    model = model.eval()
    hidden = int(model.config["hidden_size"])
    x = torch.zeros(2, 16, hidden)
    mask = torch.ones(2, 16, dtype=torch.long)
    out = Path(directory) / ONNX_FILE
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = Path(tmp) / "encoder.onnx"
        torch.onnx.export(_Core(model), (x, mask), str(fp32), input_names=["x", "mask"], output_names=["pooled"],
                          dynamic_axes={"x": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}},
                          opset_version=17, dynamo=False)
        logging.getLogger("root").setLevel(logging.ERROR)  # quantize_dynamic's pre-processing hint
        try:
            quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger("root").setLevel(logging.WARNING)
    return out


class OrtCore:
    """ONNX Runtime session for the exported layers: ``(x (b, n, d) float32, mask (b, n) int64) -> (b, d)``."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32),
                                       "mask": np.ascontiguousarray(mask, dtype=np.int64)})[0]


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
