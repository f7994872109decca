"""The network: the bottom layers of multilingual-e5-small (a BERT encoder) with one linear head per label set.

Written in plain PyTorch (no ``transformers`` modelling code) so the layers can be run separately: training caches
the output of the frozen bottom layers once and fine-tunes only the top ones; inference can quantise the Linear layers
to int8. Weights are loaded from the converted encoder folder (``model.safetensors`` + ``config.json``) by name.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, max_pos: int, type_vocab: int, eps: float,
                 word_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        # the table is always overwritten by trained weights: allocate it uninitialised (no 96M-value random init)
        self.word_embeddings = nn.Embedding(vocab, hidden, _weight=torch.empty(vocab, hidden, dtype=word_dtype),
                                            _freeze=True)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids).float() + self.position_embeddings(pos)[None]
        x = x + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class Layer(nn.Module):
    """One post-LayerNorm BERT layer (names follow the Hugging Face checkpoint, flattened)."""

    def __init__(self, hidden: int, heads: int, inter: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, inter)
        self.out = nn.Linear(inter, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        drop = self.dropout.p if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        a = a.transpose(1, 2).reshape(b, n, d)
        x = self.attn_norm(x + self.dropout(self.attn_out(a)))
        y = self.out(F.gelu(self.inter(x)))
        return self.out_norm(x + self.dropout(y))


def attention_bias(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(batch, 1, 1, seq) additive bias: 0 for tokens, a large negative number for padding."""
    return ((1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min).to(dtype)


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class HotlineClassifier(nn.Module):
    """Embeddings + ``num_layers`` BERT layers + mean pooling + one linear head per label set."""

    def __init__(self, config: dict, num_layers: int, head_sizes: dict[str, int], dropout: float = 0.1,
                 word_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        hidden = int(config["hidden_size"])
        eps = float(config.get("layer_norm_eps", 1e-12))
        self.config = dict(config)
        self.num_layers = int(num_layers)
        self.embeddings = Embeddings(int(config["vocab_size"]), hidden, int(config["max_position_embeddings"]),
                                     int(config.get("type_vocab_size", 2)), eps, word_dtype)
        self.layers = nn.ModuleList(
            Layer(hidden, int(config["num_attention_heads"]), int(config["intermediate_size"]), eps,
                  float(config.get("hidden_dropout_prob", 0.1)))
            for _ in range(self.num_layers))
        self.head_dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in head_sizes.items() if n > 0})

    # -- running parts of the network -------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embeddings(input_ids)

    def run_layers(self, x: torch.Tensor, mask: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        bias = attention_bias(mask, x.dtype)
        for layer in self.layers[start:stop]:
            x = layer(x, bias)
        return x

    def head_logits(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.head_dropout(pooled)
        return {name: head(pooled) for name, head in self.heads.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.run_layers(self.embed(input_ids), attention_mask)
        return self.head_logits(mean_pool(x, attention_mask))

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.run_layers(self.embed(input_ids), attention_mask), attention_mask)

    # -- weights ----------------------------------------------------------------------------------------------
    @staticmethod
    def _map_hf_name(name: str) -> str | None:
        """Hugging Face BertModel parameter name -> ours (None = not used)."""
        if name.startswith("embeddings."):
            return name
        if not name.startswith("encoder.layer."):
            return None
        rest = name[len("encoder.layer."):]
        idx, _, tail = rest.partition(".")
        table = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
                 "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
                 "intermediate.dense": "inter", "output.dense": "out", "output.LayerNorm": "out_norm"}
        for hf, ours in table.items():
            if tail.startswith(hf + "."):
                return f"layers.{idx}.{ours}{tail[len(hf):]}"
        return None

    @classmethod
    def from_encoder(cls, encoder_dir: Path, num_layers: int, head_sizes: dict[str, int],
                     dropout: float = 0.1) -> HotlineClassifier:
        """Initialise from a converted e5 folder (keeps the bottom ``num_layers`` layers; heads random)."""
        from safetensors import safe_open

        encoder_dir = Path(encoder_dir)
        config = json.loads((encoder_dir / "config.json").read_text())
        if num_layers > int(config["num_hidden_layers"]):
            raise ValueError(f"the encoder has only {config['num_hidden_layers']} layers")
        model = cls(config, num_layers, head_sizes, dropout, word_dtype=torch.float16)
        state = {}
        with safe_open(str(encoder_dir / "model.safetensors"), framework="pt") as fh:  # reads only what is kept
            for name in fh.keys():
                ours = cls._map_hf_name(name)
                if ours is None or (ours.startswith("layers.") and int(ours.split(".")[1]) >= num_layers):
                    continue
                tensor = fh.get_tensor(name)
                state[ours] = tensor.to(torch.float16) if ours == "embeddings.word_embeddings.weight" else tensor
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.startswith("heads.")]
        if missing or unexpected:
            raise ValueError(f"encoder weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model


def init_heads(model: HotlineClassifier, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for head in model.heads.values():
        bound = 1.0 / math.sqrt(head.in_features)
        with torch.no_grad():
            head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=gen) * 0.1)
            head.bias.zero_()
