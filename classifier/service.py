"""Inference: ``load_classifier(model_dir).predict(text) -> dispatch.proposal.ModelProposal``.

Probabilities per head = softmax(((1 − α) · encoder logits + α · c · lexical SVM margins) / T): α (the lexical share),
c (the margins' scale) and T (temperature scaling) fitted on the dev split. Each proposal carries a reason an agent can read: the phrases of the request that most support
the label according to the lexical component's feature weights ("关键词：…（词面权重）").
"""
from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from dispatch.proposal import ModelProposal, Scored

from .calibration import softmax
from .labels import HEADS, LabelMaps, split_l2_key
from .lexical import LexicalModel
from .model import HotlineClassifier
from .tokenize import TextEncoder

TOP_K = 3
REASON_SOURCE = "词面权重"


class Classifier:
    """A trained classifier in memory (see :func:`load_classifier`)."""

    def __init__(self, model: HotlineClassifier, encoder: TextEncoder, labels: LabelMaps,
                 lexical: LexicalModel | None, temperatures: dict[str, float], fusion: dict[str, float],
                 version: str, *, backend: str = "torch", ort_core=None, meta: dict | None = None) -> None:
        self.model = model.eval()
        self.encoder = encoder
        self.labels = labels
        self.lexical = lexical
        self.temperatures = {h: float(temperatures.get(h, 1.0)) for h in HEADS}
        # per head: fused logits = w_encoder * encoder logits + w_lexical * lexical margins
        self.fusion = {}
        for h in HEADS:
            w = fusion.get(h) or {}
            w = {"lexical": float(w)} if isinstance(w, (int, float)) else w  # older folders: one weight β
            self.fusion[h] = {"encoder": 1.0, "lexical": 0.0, **w}
        self.version = version
        self.backend = backend          # torch | torch-int8 | onnx-int8
        self.ort_core = ort_core
        self.meta = meta or {}
        self.heads = [h for h in HEADS if labels.size(h) > 0]
        self._lock = threading.Lock()

    # -- scores -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encoder_logits(self, texts: list[str], batch_size: int = 32) -> dict[str, np.ndarray]:
        ids = self.encoder.ids(texts)
        out = {h: np.zeros((len(texts), self.labels.size(h)), dtype=np.float32) for h in self.heads}
        order = np.argsort([len(x) for x in ids], kind="stable")
        # the int8 backends quantise activations with one scale per tensor, so a text's scores would depend on the
        # other texts (and the padding) in its batch: they score one text at a time (no padding either)
        step = 1 if self.backend in ("onnx-int8", "torch-int8") else batch_size
        for s in range(0, len(order), step):
            idx = order[s:s + step]
            input_ids, mask = TextEncoder.pad([ids[i] for i in idx])
            if self.ort_core is not None:
                pooled = torch.from_numpy(self.ort_core(self.model.embed(input_ids).numpy(), mask.numpy()))
                logits = {h: head(pooled) for h, head in self.model.heads.items()}
            else:
                logits = self.model(input_ids, mask)
            for h in self.heads:
                out[h][idx] = logits[h].float().numpy()
        return out

    def logits(self, texts: list[str], batch_size: int = 32, *, components: bool = False, features=None):
        """Fused, uncalibrated logits per head (and, with ``components``, the encoder and lexical parts)."""
        enc = self.encoder_logits(texts, batch_size)
        lex = {}
        if self.lexical is not None:
            lex = self.lexical.scores(texts, features)
        fused = {}
        for h in self.heads:
            w = self.fusion[h]
            fused[h] = w["encoder"] * enc[h] + w["lexical"] * lex[h] if h in lex and w["lexical"] else enc[h]
        return (fused, enc, lex) if components else fused

    def probabilities(self, texts: list[str], batch_size: int = 32, features=None) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head, ``{head: (n, n_labels)}``; category_l2 made consistent with l1."""
        fused = self.logits(texts, batch_size, features=features)
        probs = {h: softmax(fused[h], self.temperatures[h]).astype(np.float32) for h in self.heads}
        if "category_l2" in probs and "category_l1" in probs:
            probs["category_l2"] = self._l2_given_l1(probs["category_l1"], probs["category_l2"])
        return probs

    def _l2_given_l1(self, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
        """p(l1/l2) = p_l1(l1) · p_l2(l1/l2 | l1): the second level agrees with the first-level head.

        The l2 head's distribution is renormalised within each first-level category and weighted by the l1 head's
        probability (first-level categories without any second-level label drop out and the rest is renormalised).
        """
        parents = getattr(self, "_l2_parent_idx", None)
        if parents is None:
            parents = np.array([self.labels.index("category_l1", split_l2_key(k)[0])
                                for k in self.labels.labels["category_l2"]])
            self._l2_parent_idx = parents
        n1 = p1.shape[1]
        within = np.zeros((p2.shape[0], n1), dtype=np.float64)
        np.add.at(within.T, parents, p2.T.astype(np.float64))
        cond = p2 / np.clip(within[:, parents], 1e-12, None)
        joint = cond * p1[:, parents]
        return (joint / np.clip(joint.sum(axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    # -- proposals --------------------------------------------------------------------------------------------
    def predict(self, text: str) -> ModelProposal:
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: list[str], batch_size: int = 32) -> list[ModelProposal]:
        if isinstance(texts, str):
            raise TypeError("predict_batch takes a list of texts")
        texts = [" ".join(str(t or "").split()) for t in texts]
        if not texts:
            return []
        feats_all = [self.lexical.features(t) for t in texts] if self.lexical is not None else None
        with self._lock:  # torch intra-op threads are shared; one forward at a time per process
            probs = self.probabilities(texts, batch_size, feats_all)
        out = []
        for i, text in enumerate(texts):
            feats = feats_all[i] if feats_all is not None and text else None
            lists: dict[str, list[Scored]] = {}
            for h in self.heads:
                p = probs[h][i]
                top = np.argsort(-p, kind="stable")[:TOP_K]
                if h == "category_l2":
                    lists[h] = self._l2_scored(text, p, feats)
                else:
                    lists[h] = [Scored(self.labels.label(h, int(j)), round(float(p[j]), 4),
                                       self._reason(text, h, int(j), feats)) for j in top]
            out.append(ModelProposal(request_type=lists.get("request_type", []),
                                     category_l1=lists.get("category_l1", []),
                                     category_l2=lists.get("category_l2", []),
                                     unit_type=lists.get("unit_type", []), model_version=self.version))
        return out

    def _l2_scored(self, text: str, p: np.ndarray, feats) -> list[Scored]:
        """Top second-level names (a name under several first-level categories, e.g. 其他, is summed)."""
        by_name: dict[str, float] = {}
        best_key: dict[str, tuple[float, int]] = {}
        for j, key in enumerate(self.labels.labels["category_l2"]):
            name = split_l2_key(key)[1]
            by_name[name] = by_name.get(name, 0.0) + float(p[j])
            if name not in best_key or best_key[name][0] < p[j]:
                best_key[name] = (float(p[j]), j)
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:TOP_K]
        out = []
        for name, prob in top:
            j = best_key[name][1]
            parent = split_l2_key(self.labels.label("category_l2", j))[0]
            reason = f"属于“{parent}”；" + self._reason(text, "category_l2", j, feats)
            out.append(Scored(name, round(prob, 4), reason))
        return out

    def _reason(self, text: str, head: str, cls: int, feats) -> str:
        if self.lexical is None or feats is None:
            return "语义模型判断"
        phrases = self.lexical.phrases(text, head, cls, k=3, features=feats)
        if not phrases:
            return "语义模型判断（无突出关键词）"
        return f"关键词：{'、'.join(phrases)}（{REASON_SOURCE}）"

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))
        (directory / "encoder_config.json").write_text(json.dumps(
            {"config": self.model.config, "num_layers": self.model.num_layers, "max_len": self.encoder.max_len,
             "prefix": self.encoder.prefix}, ensure_ascii=False, indent=1), encoding="utf-8")
        self.labels.save(directory / "label_maps.json")
        (directory / "calibration.json").write_text(json.dumps(
            {"temperatures": self.temperatures, "fusion": self.fusion, "version": self.version}, indent=1),
            encoding="utf-8")
        if self.lexical is not None:
            self.lexical.save(directory)

    @classmethod
    def load(cls, directory: Path, *, backend: str | None = None, quantize: bool | None = None,
             threads: int | None = None) -> Classifier:
        """Load a model folder written by ``python -m classifier.train``.

        ``backend``: ``onnx-int8`` (the exported int8 encoder, ONNX Runtime), ``torch-int8`` (PyTorch dynamic int8)
        or ``torch`` (float32). Default: ``inference.json`` of the folder (training writes ``torch-int8``, the
        fastest on an idle 2-core CPU, see README); ``onnx-int8`` falls back to ``torch`` where the export or
        onnxruntime is missing. ``quantize=True`` is short for ``torch-int8``.
        """
        from safetensors.torch import load_file

        from .onnx_export import ONNX_FILE, OrtCore, onnxruntime_available

        directory = Path(directory)
        if not (directory / "model.safetensors").is_file():
            raise FileNotFoundError(f"{directory} holds no trained classifier (train one with "
                                    "`python -m classifier.train --out DIR --encoder ENCODER_DIR`)")
        if threads:
            torch.set_num_threads(int(threads))
        meta = json.loads((directory / "encoder_config.json").read_text(encoding="utf-8"))
        labels = LabelMaps.load(directory / "label_maps.json")
        calib = json.loads((directory / "calibration.json").read_text(encoding="utf-8"))
        inference = {}
        if (directory / "inference.json").is_file():
            inference = json.loads((directory / "inference.json").read_text(encoding="utf-8"))
        if backend is None:
            backend = "torch-int8" if quantize else inference.get("backend", "torch")
        if backend == "onnx-int8" and not ((directory / ONNX_FILE).is_file() and onnxruntime_available()):
            backend = "torch"  # the export or onnxruntime is missing: serve the same weights in float32
        if backend not in ("torch", "torch-int8", "onnx-int8"):
            raise ValueError(f"unknown backend {backend!r}")
        model = HotlineClassifier(meta["config"], meta["num_layers"], {h: labels.size(h) for h in HEADS},
                                  word_dtype=torch.float16)  # fp16 table, looked-up rows cast to float32
        model.load_state_dict(load_file(str(directory / "model.safetensors")), assign=True)  # no second copy
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        ort_core = None
        if backend == "torch-int8":
            model = quantize_encoder(model)
        elif backend == "onnx-int8":
            ort_core = OrtCore(directory / ONNX_FILE, threads or torch.get_num_threads())
            model.layers = torch.nn.ModuleList()  # served by ONNX Runtime; frees the float32 layers
        encoder = TextEncoder(directory / "tokenizer.json", meta["max_len"], meta.get("prefix", "query: "))
        lexical = LexicalModel.load(directory) if (directory / "lexical.json").is_file() else None
        return cls(model, encoder, labels, lexical, calib["temperatures"], calib["fusion"], calib["version"],
                   backend=backend, ort_core=ort_core, meta={"dir": str(directory), **inference})


def quantize_encoder(model: HotlineClassifier) -> HotlineClassifier:
    """int8 dynamic quantisation (per-channel weights) of the encoder layers' Linear modules; heads stay float."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.layers = quantize_dynamic(model.layers, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                        dtype=torch.qint8, inplace=False)
    return model


_CACHE: dict[tuple[str, str | None], Classifier] = {}
_CACHE_LOCK = threading.Lock()


def load_classifier(model_dir: str | Path | None = None, *, backend: str | None = None) -> Classifier:
    """The process-wide :class:`Classifier` for ``model_dir`` (default: settings' ``resolved_classifier_dir``)."""
    from core.config import get_settings

    settings = get_settings()
    path = Path(model_dir) if model_dir else settings.resolved_classifier_dir
    key = (str(path.resolve()), backend)
    with _CACHE_LOCK:
        clf = _CACHE.get(key)
        if clf is None:
            started = time.perf_counter()
            clf = Classifier.load(path, backend=backend, threads=settings.torch_threads)
            clf.meta["load_seconds"] = round(time.perf_counter() - started, 3)
            _CACHE[key] = clf
        return clf
