"""Tokenisation with the encoder's own ``tokenizer.json`` (XLM-R sentencepiece, via the ``tokenizers`` library)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PREFIX = "query: "  # e5 was trained with "query: " / "passage: " prefixes; a citizen's request is a query
PAD_ID = 1


class TextEncoder:
    """Text -> token ids (with ``<s>``/``</s>``), truncated to ``max_len``; padding to batches."""

    def __init__(self, tokenizer_file: Path, max_len: int = 128, prefix: str = PREFIX) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_len = int(max_len)
        self.prefix = prefix

    def ids(self, texts: list[str], max_len: int | None = None) -> list[list[int]]:
        limit = int(max_len or self.max_len)
        out = []
        for enc in self.tokenizer.encode_batch([self.prefix + t for t in texts]):
            ids = enc.ids
            if len(ids) > limit:  # keep <s> … </s>
                ids = ids[: limit - 1] + [ids[-1]]
            out.append(ids)
        return out

    @staticmethod
    def pad(batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(len(x) for x in batch)
        ids = np.full((len(batch), n), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.int64)
        for i, x in enumerate(batch):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)
