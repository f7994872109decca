"""Sentence embeddings (multilingual-e5-small) for the knowledge base and the classifier.

``Embedder`` wraps ``sentence_transformers.SentenceTransformer`` loaded from a folder written by
``python -m encoder.convert``. e5 expects a prefix: ``query: `` for what a citizen asks, ``passage: `` for what is
searched (knowledge-base entries, labelled examples). Vectors are float32, L2-normalised, so a dot product is the
cosine similarity.
"""
from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

QUERY_PROMPT_NAME = "query"
PASSAGE_PROMPT_NAME = "passage"
DEFAULT_PROMPTS = {QUERY_PROMPT_NAME: "query: ", PASSAGE_PROMPT_NAME: "passage: "}

log = logging.getLogger(__name__)


class Embedder:
    """Encode texts into (n, 384) float32 L2-normalised vectors on the CPU.

    Args:
        path: a converted model folder (see :mod:`encoder.convert`).
        num_threads: if given, ``torch.set_num_threads(num_threads)`` (a process-wide setting).
        batch_size: texts per forward pass; texts are grouped by length, so padding stays small.
        quantize: opt-in dynamic int8 quantisation of the Linear layers (per-channel weights,
            ``torch.ao.quantization.quantize_dynamic``): about 2x faster for one short query, cosine to the float32
            vectors about 0.99 (see encoder/README.md) - mind that before using it for ranking.
        bf16: opt-in bfloat16 weights and activations: about 1.4x faster on CPUs with AVX512-BF16/AMX, cosine to
            float32 0.99998; ignored (with a warning) where the CPU lacks native bfloat16, which would be slower.
    """

    def __init__(self, path: str | Path, *, num_threads: int | None = None, batch_size: int = 32,
                 quantize: bool = False, bf16: bool = False) -> None:
        from sentence_transformers import SentenceTransformer

        self.path = Path(path)
        if not (self.path / "modules.json").is_file() or not (self.path / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{self.path} is not a converted encoder folder; create it with `python -m encoder.convert --out DIR`")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = int(batch_size)
        if quantize and bf16:
            raise ValueError("choose quantize (int8) or bf16, not both")
        self.quantized = bool(quantize)
        model = SentenceTransformer(str(self.path), device="cpu")
        model.eval()
        missing = [name for name in DEFAULT_PROMPTS if name not in (model.prompts or {})]
        if missing:
            raise ValueError(f"{self.path}: config_sentence_transformers.json lacks the prompts {missing}")
        if quantize:
            model = _quantize_linear_int8(model)
        self.bf16 = bool(bf16) and _cpu_has_native_bf16()
        if bf16 and not self.bf16:
            log.warning("encoder: this CPU has no native bfloat16 support; staying with float32")
        if self.bf16:
            model = model.to(torch.bfloat16)
        self._model = model
        # One forward at a time: torch already spreads a forward over the cores, and concurrent forwards from
        # several request threads would each start their own OpenMP team and oversubscribe a small CPU.
        self._lock = threading.Lock()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_seq_length = int(model.max_seq_length)

    @property
    def sentence_transformer(self):
        """The loaded ``SentenceTransformer`` (read-only use: e.g. a distilled query encoder shares its tables)."""
        return self._model

    def __repr__(self) -> str:
        return f"Embedder({str(self.path)!r}, dim={self.dim}, quantized={self.quantized}, bf16={self.bf16})"

    def encode_queries(self, texts: Iterable[str]) -> np.ndarray:
        """Embed what users ask (``query: `` prefix). Returns float32 (n, dim), rows of unit length."""
        return self._encode(texts, QUERY_PROMPT_NAME)

    def encode_passages(self, texts: Iterable[str]) -> np.ndarray:
        """Embed what is searched or classified against (``passage: `` prefix). Returns float32 (n, dim)."""
        return self._encode(texts, PASSAGE_PROMPT_NAME)

    def encode_query(self, text: str) -> np.ndarray:
        """One query -> float32 (dim,)."""
        return self.encode_queries([text])[0]

    def _encode(self, texts: Iterable[str], prompt_name: str) -> np.ndarray:
        items = text_list(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        prompt = self._model.prompts[prompt_name]
        # Longest first, so each batch pads to a similar length (as SentenceTransformer.encode does).
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                rows = order[start : start + self.batch_size]
                vectors = self._forward([items[i] for i in rows], prompt)
                out[rows] = torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()
        return out

    def _forward(self, texts: list[str], prompt: str) -> torch.Tensor:
        """Tokenise (padding to the longest text of the batch, at most 512 tokens) and run the module pipeline.

        This is what ``SentenceTransformer.encode`` does minus its per-call bookkeeping (device resolution walks
        every parameter: ~1.5 ms, more than 10 % of a short query); ``encode`` remains the fallback.
        """
        model = self._model
        if hasattr(model, "preprocess"):
            features = model.preprocess(texts, prompt=prompt)
            return model(features)["sentence_embedding"]
        return model.encode([prompt + t for t in texts], batch_size=len(texts), convert_to_tensor=True,
                            show_progress_bar=False)


def text_list(texts: Iterable[str]) -> list[str]:
    """``texts`` as a list, refusing a bare string (it would be read as characters) and anything but strings."""
    if isinstance(texts, str):
        raise TypeError("pass a list of strings, not a single string")
    items = list(texts)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"texts must be strings, got {type(item).__name__}")
    return items


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch marks eager-mode quantisation as deprecated in favour of torchao, which is not a dependency here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                                inplace=True)


_CACHE: dict[tuple[str, bool, bool], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(path: str | Path | None = None, *, num_threads: int | None = None,
                 quantize: bool = False, bf16: bool = False) -> Embedder:
    """The process-wide :class:`Embedder` for ``path`` (loaded once per folder and precision setting).

    Without ``path`` the folder and thread count come from ``core.config.get_settings()``
    (``JSJB_ENCODER_DIR`` / ``var/models/encoder``, ``JSJB_TORCH_THREADS``).
    """
    if path is None:
        from core.config import get_settings

        settings = get_settings()
        path = settings.resolved_encoder_dir
        if num_threads is None:
            num_threads = settings.torch_threads
    key = (str(Path(path).resolve()), bool(quantize), bool(bf16))
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            embedder = Embedder(path, num_threads=num_threads, quantize=quantize, bf16=bf16)
            _CACHE[key] = embedder
        elif num_threads:
            torch.set_num_threads(int(num_threads))
        return embedder


def clear_embedder_cache() -> None:
    """Forget the cached embedders (tests, or after re-converting a folder)."""
    with _CACHE_LOCK:
        _CACHE.clear()
