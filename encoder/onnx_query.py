"""multilingual-e5-small for one question at a time: its transformer layers in ONNX Runtime with int8 weights.

A citizen's question is embedded on the request path, one at a time; entries are embedded once, in batches, when
they are published. PyTorch's eager float32 forward of e5-small takes about 20-25 ms for a 20-token question on two
cores; the same layers exported to ONNX and dynamically quantised to int8 (per-channel weights, int8 activations)
take about 4-5 ms, with vectors at cosine about 0.99 to float32 (measured at export and written to the card).

The folder written by ``export`` holds ``layers_int8.onnx`` (the 12 transformer layers + mean pooling + L2 norm:
embedding output and attention mask in, unit vector out, about 30 MB) and ``onnx_query.json`` (the card: source
encoder fingerprint, export date, cosine to float32 on sample questions). The embedding layer (lookup + LayerNorm)
runs in NumPy over views of the full encoder's own tables (loaded anyway for passages), so this adds no copy of the
250k-row table.

    python -m encoder.onnx_query --encoder var/models/encoder --out DIR
    encoder = OnnxQueryEncoder.load(DIR, embedder)       # embedder: encoder.embedder.Embedder of that folder
    encoder.encode_queries(["居住证怎么办"])               # float32 (1, 384), unit rows
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from concurrent.futures import Executor
from typing import Any, Callable, Iterable, TypeVar

import numpy as np
import torch

T = TypeVar("T")

ONNX_FILE = "layers_int8.onnx"
CARD_FILE = "onnx_query.json"
FORMAT_VERSION = 1
# Questions as citizens type them, for the export's own check (not from any evaluation set).
CHECK_QUESTIONS = [
    "孩子刚出生户口怎么上", "外地车进京证一年能办几次", "离职了公积金能不能全部取出来", "家里老人八十岁了有没有补贴",
    "小区晚上十一点还在施工，找谁管", "失业金怎么领", "社保卡丢了去哪补办", "How do I get a residence permit in Beijing?",
    "暖气不热", "医保异地就医备案需要什么材料，在网上能办吗", "狗证", "垃圾分类厨余垃圾包括哪些",
]
MIN_CHECK_COSINE = 0.97

log = logging.getLogger(__name__)


class OnnxQueryMismatch(RuntimeError):
    """The folder is missing, incomplete, or was exported from another encoder."""


def encoder_fingerprint(encoder_dir: Path | str) -> str:
    """What identifies the converted encoder's weights: the converter's record of its source and version."""
    path = Path(encoder_dir) / "conversion.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxQueryMismatch(f"{path}: not a converted encoder folder ({exc})") from exc
    return f"{str(info.get('source_sha256', '?'))[:16]}-v{info.get('converter_version', '?')}"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class _Layers(torch.nn.Module):
    """BERT's encoder stack + mean pooling + L2 norm, from the embedding output."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = bert.encoder

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        extended = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        hidden = x
        for layer in self.encoder.layer:
            out = layer(hidden, attention_mask=extended)
            hidden = out[0] if isinstance(out, tuple) else out
        return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)


def export(encoder_dir: Path | str, out: Path | str, threads: int | None = None) -> dict[str, Any]:
    """Export and quantise the layers of the encoder in ``encoder_dir`` into ``out`` (built beside it, renamed)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from encoder.embedder import Embedder

    started = time.perf_counter()
    encoder_dir, out = Path(encoder_dir), Path(out).resolve()
    embedder = Embedder(encoder_dir, num_threads=threads)
    bert = embedder.sentence_transformer[0].auto_model.eval()
    if getattr(bert.config, "_attn_implementation", None) != "eager":
        bert.config._attn_implementation = "eager"  # an explicit additive mask: traces to plain ONNX ops
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hidden = int(bert.config.hidden_size)
    try:
        with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp32 = Path(work) / "layers.onnx"
            torch.onnx.export(_Layers(bert), (torch.zeros(2, 16, hidden), torch.ones(2, 16, dtype=torch.long)),
                              str(fp32), input_names=["x", "mask"], output_names=["vector"],
                              dynamic_axes={"x": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"},
                                            "vector": {0: "batch"}},
                              opset_version=17, dynamo=False)
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # quantize_dynamic's hint about pre-processing
            try:
                quantize_dynamic(str(fp32), str(tmp / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            finally:
                root.setLevel(level)
        card = {"format": FORMAT_VERSION, "encoder": encoder_fingerprint(encoder_dir),
                "what": "transformer layers of multilingual-e5-small + mean pooling + L2 norm, ONNX opset 17, "
                        "dynamic int8 (per-channel weights); input: embedding output and attention mask",
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        (tmp / CARD_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        encoder = OnnxQueryEncoder.load(tmp, embedder, threads=threads or 1)
        cos = (encoder.encode_queries(CHECK_QUESTIONS) * embedder.encode_queries(CHECK_QUESTIONS)).sum(1)
        card["check"] = {"questions": len(CHECK_QUESTIONS), "cosine_to_float32_mean": round(float(cos.mean()), 5),
                         "cosine_to_float32_min": round(float(cos.min()), 5)}
        if cos.min() < MIN_CHECK_COSINE:
            raise RuntimeError(f"int8 export drifted from float32: min cosine {cos.min():.4f} < {MIN_CHECK_COSINE}")
        card["seconds"] = round(time.perf_counter() - started, 1)
        (tmp / CARD_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card


class OnnxQueryEncoder:
    """Embeds questions like :meth:`encoder.embedder.Embedder.encode_queries` (``query:`` prompt, mean pooling,
    unit rows), with the transformer layers in ONNX Runtime (int8)."""

    def __init__(self, session: Any, embeddings: torch.nn.Module, tokenizer: Any, prompt: str, max_seq_length: int,
                 card: dict) -> None:
        from tokenizers import Tokenizer

        self._session = session
        self._prompt = prompt
        self.max_seq_length = int(max_seq_length)
        self.card = card
        self.dim = int(embeddings.word_embeddings.embedding_dim)
        self._lock = threading.Lock()
        # A private copy of the fast tokenizer's Rust backend, configured once (no padding, truncation to the model's
        # length): the transformers wrapper rebuilds its settings on every call, a third of a millisecond per question.
        self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_seq_length)
        # The embedding layer (BertEmbeddings: word + token type + position, LayerNorm) in NumPy over views of the
        # float32 encoder's own tables - no copy of the 250k-row table, no PyTorch dispatch for a 20-token question.
        self._word = embeddings.word_embeddings.weight.detach().numpy()
        positions = embeddings.position_ids.reshape(-1)[: self.max_seq_length]
        types = embeddings.token_type_ids.reshape(-1)[: self.max_seq_length]
        self._position_and_type = (embeddings.token_type_embeddings.weight.detach()[types]
                                   + embeddings.position_embeddings.weight.detach()[positions]).numpy()
        self._ln_weight = embeddings.LayerNorm.weight.detach().numpy()
        self._ln_bias = embeddings.LayerNorm.bias.detach().numpy()
        self._ln_eps = float(embeddings.LayerNorm.eps)

    def embed_tokens(self, text: str) -> np.ndarray:
        """The embedding layer's output for the prompted text, (1, tokens, hidden) float32."""
        ids = self._tokenizer.encode(self._prompt + text).ids
        x = self._word[ids] + self._position_and_type[: len(ids)]
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=-1, keepdims=True)
        x = centred / np.sqrt(var + self._ln_eps) * self._ln_weight + self._ln_bias
        return x[None].astype(np.float32, copy=False)

    @classmethod
    def load(cls, folder: Path | str, embedder: Any, threads: int = 1) -> OnnxQueryEncoder:
        """``embedder``: the float32 :class:`encoder.embedder.Embedder` of the folder this was exported from."""
        import onnxruntime as ort

        folder = Path(folder)
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OnnxQueryMismatch(f"{folder}: no readable {CARD_FILE} ({exc})") from exc
        if card.get("format") != FORMAT_VERSION:
            raise OnnxQueryMismatch(f"{folder}: format {card.get('format')}, this code reads {FORMAT_VERSION}")
        expected = encoder_fingerprint(embedder.path)
        if card.get("encoder") != expected:
            raise OnnxQueryMismatch(f"{folder} was exported from encoder {card.get('encoder')}, "
                                    f"but the loaded encoder is {expected}")
        if embedder.quantized or embedder.bf16:
            raise OnnxQueryMismatch("the ONNX layers take the float32 encoder's embedding output")
        if not (folder / ONNX_FILE).is_file():
            raise OnnxQueryMismatch(f"{folder / ONNX_FILE} is missing")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # no busy-waiting between ops: on a small shared CPU spinning threads steal the other requests' cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(folder / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        st_model = embedder.sentence_transformer
        transformer = st_model[0]
        return cls(session, transformer.auto_model.embeddings, transformer.tokenizer, st_model.prompts["query"],
                   transformer.max_seq_length, card)

    @property
    def kind(self) -> str:
        return "onnx-int8"

    def __repr__(self) -> str:
        return f"OnnxQueryEncoder(encoder={self.card.get('encoder')}, threads={self._threads()})"

    def _threads(self) -> int:
        return int(self._session.get_session_options().intra_op_num_threads)

    def encode_queries(self, texts: Iterable[str]) -> np.ndarray:
        from encoder.embedder import text_list

        items = text_list(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        # one text per run: no padding, and a question's vector never depends on what it was batched with
        for i, text in enumerate(items):
            out[i] = self._run_layers(self.embed_tokens(text))
        return out

    def _run_layers(self, x: np.ndarray) -> np.ndarray:
        """The transformer layers on one text's embedding output (ONNX Runtime releases the GIL while it runs)."""
        with self._lock:
            return self._session.run(None, {"x": x, "mask": np.ones(x.shape[:2], dtype=np.int64)})[0][0]

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([text])[0]

    def encode_query_alongside(self, text: str, job: Callable[[], T], pool: Executor) -> tuple[np.ndarray, T]:
        """:meth:`encode_query`, with ``job`` run on ``pool`` meanwhile: it is submitted once the tokens are embedded,
        just before the transformer layers run, which release the GIL - so the two overlap instead of taking turns
        on the GIL (a job submitted first can hold the GIL for Python's whole switch interval)."""
        x = self.embed_tokens(text)
        pending = pool.submit(job)
        try:
            vector = self._run_layers(x)
        finally:
            result = pending.result()
        return vector, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encoder.onnx_query", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True, help="converted encoder folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    card = export(args.encoder, args.out)
    print(json.dumps(card, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
