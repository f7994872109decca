"""Train the classifier: ``python -m classifier.train --out DIR --encoder ENCODER_DIR``.

Data: our corpus (``training_data/classifier/train_*.csv``), the shared real messages (``../shared/datasets/
tipdm2020/messages_segmented.csv``, first-level category only; skipped when absent), and any ``--extra`` tables
(imported with :mod:`classifier.importer`, e.g. agents' exported dispatch decisions). Missing labels are masked.

Model: the bottom ``num_layers`` layers of multilingual-e5-small; the embedding table and the lower layers are frozen
and their outputs computed once, the top ``trainable_layers`` and four linear heads are fine-tuned with early
stopping on a dev split; a character n-gram TF-IDF + linear SVM per head is fused with the encoder's logits
(weight chosen on dev) and the result calibrated by temperature scaling on dev. Writes weights, label maps,
calibration, metrics and a model card into ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .calibration import fit_temperature, nll, reliability, softmax
from .config import TrainConfig
from .data import (CORPUS_DIR, default_shared_path, default_taxonomy_path, dedupe, label_counts, load_corpus, load_rows_file,
                   load_shared, rows_fingerprint, shared_split)
from .labels import HEADS, build_label_maps, load_taxonomy
from .lexical import LexicalModel
from .model import HotlineClassifier, mean_pool
from .service import Classifier
from .tokenize import TextEncoder

log = logging.getLogger("classifier.train")


# ---------------------------------------------------------------------------------------------------------------
# data
def gather_rows(*, shared: Path | None | str = "default", shared_part: str = "all", extra: list[Path] = (),
                corpus_dir: Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(training rows, held-out shared test rows, import reports).

    ``shared_part``: ``all`` (the default model), ``train`` (the 80 % part; the 20 % test part is returned) or
    ``none``. Test texts never occur among the training rows.
    """
    report: list[dict] = []
    corpus = load_corpus("train", corpus_dir or CORPUS_DIR, report=report)
    shared_path = default_shared_path() if shared == "default" else shared
    shared_rows = load_shared(shared_path, report=report) if shared_path and shared_part != "none" else []
    shared_test: list[dict] = []
    if shared_part == "train":
        shared_rows, shared_test = shared_split(shared_rows)
    extra_rows: list[dict] = []
    for path in extra:
        extra_rows += load_rows_file(Path(path), report=report)
    # our own test sets must never leak into training
    test_texts = {r["text"] for r in load_corpus("test", corpus_dir or CORPUS_DIR)}
    test_texts |= {r["text"] for r in shared_test}
    rows = dedupe(corpus + extra_rows + shared_rows, exclude_texts=test_texts)
    return rows, shared_test, report


def stratified_dev_split(rows: list[dict], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, dev): per stratum (source kind × first-level category) a ``fraction`` goes to dev."""
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        kind = "shared" if r.get("source") == "shared" else "own"
        strata.setdefault((kind, r.get("category_l1") or r.get("unit_type") or "?"), []).append(i)
    train, dev = [], []
    for key in sorted(strata):
        idx = strata[key][:]
        rng.shuffle(idx)
        n_dev = int(round(fraction * len(idx))) if len(idx) >= 4 else 0
        dev += idx[:n_dev]
        train += idx[n_dev:]
    return sorted(train), sorted(dev)


# ---------------------------------------------------------------------------------------------------------------
# training
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _progress(iterable, **kw):
    from tqdm import tqdm

    return tqdm(iterable, mininterval=1.0 if sys.stderr.isatty() else 15.0, file=sys.stderr, **kw)


def _batches(lengths: np.ndarray, idx: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-bucketed batches (little padding) in random order."""
    order = idx[np.argsort(lengths[idx], kind="stable")]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


class _Frozen:
    """Output of the frozen part (embeddings + bottom layers) per example, kept in float16.

    Computed on first use, in length-sorted chunks: a time-limited run pays only for the rows it reaches (with
    ``shared_per_epoch`` most shared rows are never reached in a short run).
    """

    def __init__(self, model: HotlineClassifier, ids: list[list[int]], n_frozen: int, batch_size: int) -> None:
        self.model, self.ids, self.n_frozen, self.batch_size = model, ids, n_frozen, batch_size
        self.states: list[torch.Tensor | None] = [None] * len(ids)
        self.seconds = 0.0
        self.rows_computed = 0

    def _compute(self, idx) -> None:
        missing = sorted({int(i) for i in idx if self.states[i] is None}, key=lambda i: len(self.ids[i]))
        if not missing:
            return
        t0 = time.perf_counter()
        model = self.model
        model.embeddings.eval()
        for layer in model.layers[: self.n_frozen]:
            layer.eval()
        with torch.inference_mode():
            for s in range(0, len(missing), self.batch_size * 2):
                b = missing[s:s + self.batch_size * 2]
                input_ids, mask = TextEncoder.pad([self.ids[i] for i in b])
                x = model.embed(input_ids)
                if self.n_frozen:
                    x = model.run_layers(x, mask, 0, self.n_frozen)
                for k, i in enumerate(b):
                    self.states[i] = x[k, : len(self.ids[i])].to(torch.float16).clone()
        self.rows_computed += len(missing)
        self.seconds += time.perf_counter() - t0

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        self._compute(idx)
        seqs = [self.states[i] for i in idx]
        n = max(s.shape[0] for s in seqs)
        x = torch.zeros(len(seqs), n, seqs[0].shape[1])
        mask = torch.zeros(len(seqs), n, dtype=torch.long)
        for k, s in enumerate(seqs):
            x[k, : s.shape[0]] = s.float()
            mask[k, : s.shape[0]] = 1
        return x, mask


def _head_forward(model: HotlineClassifier, x: torch.Tensor, mask: torch.Tensor, start: int) -> dict:
    h = model.run_layers(x, mask, start, None)
    return model.head_logits(mean_pool(h, mask))


def _dev_logits(model: HotlineClassifier, frozen: _Frozen, idx: np.ndarray, start: int, heads: list[str],
                batch_size: int) -> dict[str, np.ndarray]:
    model.eval()
    out = {h: np.zeros((len(idx), model.heads[h].out_features), dtype=np.float32) for h in heads}
    lengths = np.array([len(frozen.ids[i]) for i in idx])
    order = np.argsort(lengths, kind="stable")
    with torch.inference_mode():
        for s in range(0, len(order), batch_size * 2):
            pos = order[s:s + batch_size * 2]
            x, mask = frozen.batch(idx[pos])
            logits = _head_forward(model, x, mask, start)
            for h in heads:
                out[h][pos] = logits[h].numpy()
    return out


def _lr_scale(progress: float, warmup_fraction: float) -> float:
    """Learning-rate factor at ``progress`` (0–1) of the run: linear warm-up, then linear decay to zero."""
    wf = min(max(warmup_fraction, 1e-6), 0.5)
    if progress < wf:
        return progress / wf
    return max(0.0, (1.0 - progress) / (1.0 - wf))


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float | None:
    keep = y >= 0
    return float((logits[keep].argmax(1) == y[keep]).mean()) if keep.any() else None


def fit(rows: list[dict], encoder_dir: Path, cfg: TrainConfig, *, taxonomy: set | None = None,
        version_tag: str = "") -> tuple[Classifier, dict]:
    """Train on ``rows``; returns the in-memory classifier and its training metrics."""
    started = time.perf_counter()
    torch.set_num_threads(max(1, int(cfg.threads)))
    set_seed(cfg.seed)
    encoder_dir = Path(encoder_dir)
    labels = build_label_maps(rows, taxonomy=taxonomy, min_l2_examples=cfg.min_l2_examples)
    heads = [h for h in HEADS if labels.size(h) > 0]
    y = {h: np.array([labels.index(h, r.get(h)) for r in rows], dtype=np.int64) for h in heads}
    tr_idx, dev_idx = stratified_dev_split(rows, cfg.dev_fraction, cfg.seed)
    tr_idx, dev_idx = np.array(tr_idx), np.array(dev_idx)
    log.info("training rows %d (train %d, dev %d); labels: %s", len(rows), len(tr_idx), len(dev_idx),
             {h: labels.size(h) for h in heads})

    # -- tokens and the frozen part ---------------------------------------------------------------------------
    encoder = TextEncoder(encoder_dir / "tokenizer.json", cfg.max_len)
    texts = [r["text"] for r in rows]
    is_shared = np.array([r.get("source") == "shared" for r in rows])
    ids = encoder.ids(texts)
    dev_set = set(dev_idx.tolist())
    for i in np.flatnonzero(is_shared):  # long formal messages: train on the title and the start (dev: full length)
        if i not in dev_set and len(ids[i]) > cfg.shared_max_len:
            ids[i] = ids[i][: cfg.shared_max_len - 1] + [ids[i][-1]]
    n_layers = int(cfg.num_layers)
    n_train_layers = max(0, min(int(cfg.trainable_layers), n_layers))
    n_frozen = n_layers - n_train_layers
    model = HotlineClassifier.from_encoder(encoder_dir, n_layers, {h: labels.size(h) for h in heads}, cfg.dropout)
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = _Frozen(model, ids, n_frozen, cfg.batch_size)  # computed as rows are first used
    n_tokens = int(sum(len(x) for x in ids))

    # -- lexical component (independent of the encoder: first, so its time is known) --------------------------
    lexical = None
    lex_dev: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    if cfg.lexical:
        lexical = LexicalModel(cfg.lexical_ngram, 2, cfg.lexical_max_features, cfg.lexical_C,
                               cfg.lexical_word_ngram).fit(
            [texts[i] for i in tr_idx], {h: y[h][tr_idx] for h in heads}, {h: labels.size(h) for h in heads},
            sample_weight=np.where(is_shared[tr_idx], cfg.shared_weight, 1.0), seed=cfg.seed)
        lex_dev = lexical.scores([texts[i] for i in dev_idx])
        log.info("lexical component: %d features in %.1f s", len(lexical.vocab), time.perf_counter() - t0)
    lexical_seconds = time.perf_counter() - t0

    # -- fine-tuning the top layers and the heads --------------------------------------------------------------
    trainable_layers = list(model.layers[n_frozen:])
    enc_params = [p for layer in trainable_layers for p in layer.parameters()]
    head_params = list(model.heads.parameters())
    for p in enc_params + head_params:
        p.requires_grad_(True)
    decay = lambda p: p.ndim > 1  # noqa: E731 - no weight decay on biases and LayerNorm
    optim = torch.optim.AdamW([
        {"params": [p for p in enc_params if decay(p)], "lr": cfg.lr_encoder, "weight_decay": cfg.weight_decay},
        {"params": [p for p in enc_params if not decay(p)], "lr": cfg.lr_encoder, "weight_decay": 0.0},
        {"params": head_params, "lr": cfg.lr_heads, "weight_decay": 0.0},
    ])
    base_lrs = [g["lr"] for g in optim.param_groups]
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(x) for x in ids])
    own_tr = tr_idx[~is_shared[tr_idx]]
    shared_tr = tr_idx[is_shared[tr_idx]]
    rng.shuffle(shared_tr)
    per_epoch_shared = len(shared_tr) if cfg.shared_per_epoch <= 0 else min(cfg.shared_per_epoch, len(shared_tr))
    steps_per_epoch = math.ceil((len(own_tr) + per_epoch_shared) / cfg.batch_size)
    total_steps = max(1, steps_per_epoch * cfg.epochs)
    weights = {h: float(cfg.head_weights.get(h, 1.0)) for h in heads}
    y_t = {h: torch.from_numpy(v) for h, v in y.items()}
    row_weight = torch.from_numpy(np.where(is_shared, cfg.shared_loss_weight, 1.0).astype(np.float32))
    best = {"score": -1.0, "epoch": 0, "state": None}
    # the budget is for the whole run (the lexical component is done): fine-tuning stops early enough for one more
    # dev evaluation (estimated from the dev rows' frozen part, then measured) and the fusion (5 % of the budget)
    t0 = time.perf_counter()
    frozen._compute(dev_idx)
    dev_eval_seconds = (time.perf_counter() - t0) * max(1, n_train_layers) / max(1, n_frozen) * 1.5
    deadline = started + 0.95 * cfg.max_train_seconds
    ft_start = time.perf_counter()
    history = []
    step = 0
    stopped = "epochs"
    bad_epochs = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        model.embeddings.eval()
        for layer in model.layers[:n_frozen]:
            layer.eval()
        start = ((epoch - 1) * per_epoch_shared) % max(1, len(shared_tr))
        chosen_shared = np.concatenate([shared_tr, shared_tr])[start:start + per_epoch_shared] \
            if per_epoch_shared else np.array([], dtype=np.int64)
        epoch_idx = np.concatenate([own_tr, chosen_shared]).astype(np.int64)
        losses = []
        bar = _progress(_batches(lengths, epoch_idx, cfg.batch_size, rng), desc=f"epoch {epoch}/{cfg.epochs}",
                        unit="batch")
        if time.perf_counter() >= deadline - dev_eval_seconds and best["state"] is not None:
            stopped = "time budget"
            bar.close()
            break
        for b in bar:
            # linear warm-up, then linear decay to zero over the planned steps or the time left, whichever ends
            # first, so a slow machine still ends with a small learning rate instead of being cut mid-schedule
            # (warm-up too is measured in progress: when time is short it must not eat the whole run)
            progress = max((step + 1) / total_steps,
                           (time.perf_counter() - ft_start) / max(1.0, deadline - dev_eval_seconds - ft_start))
            if progress >= 1.0 and step > 0:
                stopped = "time budget"
                break
            lr_scale = _lr_scale(min(progress, 1.0), cfg.warmup_fraction)
            for g, lr in zip(optim.param_groups, base_lrs):
                g["lr"] = lr * lr_scale
            x, mask = frozen.batch(b)
            logits = _head_forward(model, x, mask, n_frozen)
            loss = torch.zeros(())
            bt = torch.from_numpy(b)
            sw = row_weight[bt]
            for h in heads:
                target = y_t[h][bt]
                labelled = target >= 0
                if labelled.any():
                    ce = F.cross_entropy(logits[h], target.clamp(min=0), reduction="none",
                                         label_smoothing=cfg.label_smoothing)
                    w = sw * labelled
                    loss = loss + weights[h] * (ce * w).sum() / w.sum()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params + head_params, 1.0)
            optim.step()
            step += 1
            losses.append(float(loss.detach()))
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()
        t0 = time.perf_counter()
        dev_logits = _dev_logits(model, frozen, dev_idx, n_frozen, heads, cfg.batch_size)
        dev_eval_seconds = time.perf_counter() - t0
        accs = {h: _accuracy(dev_logits[h], y[h][dev_idx]) for h in heads}
        present = [a for a in accs.values() if a is not None]
        score = float(np.mean(present)) if present else -float(np.mean(losses))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
                        "dev_accuracy": accs, "dev_score": score, "seconds": round(time.perf_counter() - started, 1)})
        log.info("epoch %d: loss %.4f, dev %s", epoch, history[-1]["train_loss"] or 0.0,
                 {h: round(a, 4) for h, a in accs.items() if a is not None})
        print(f"epoch {epoch}: train loss {history[-1]['train_loss'] or 0.0:.4f}  dev accuracy "
              + "  ".join(f"{h}={a:.3f}" for h, a in accs.items() if a is not None), file=sys.stderr, flush=True)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "dev_logits": dev_logits,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()
                              if not k.startswith("embeddings.")}}
            bad_epochs = 0
        else:
            bad_epochs += 1
        if stopped == "time budget":
            break
        if bad_epochs >= cfg.patience:
            stopped = "early stopping"
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    enc_dev = best.get("dev_logits") or _dev_logits(model, frozen, dev_idx, n_frozen, heads, cfg.batch_size)
    frozen_seconds, frozen_rows = frozen.seconds, frozen.rows_computed
    log.info("frozen part (%d layers): %d of %d rows in %.1f s", n_frozen, frozen_rows, len(rows), frozen_seconds)
    del frozen
    finetune_seconds = time.perf_counter() - started

    # -- fusion and temperature -----------------------------------------------------------------------------
    fusion, temperatures, dev_metrics = {}, {}, {}
    for h in heads:
        yd = y[h][dev_idx]
        keep = yd >= 0
        enc_z = enc_dev[h][keep]
        lex_z = lex_dev[h][keep] if h in lex_dev else None
        # z = (1 - a) * encoder logits + a * c * lexical margins, c putting the margins on the logits' scale;
        # a and the temperature minimise the dev negative log-likelihood
        c = float(np.std(enc_z) / max(np.std(lex_z), 1e-6)) if lex_z is not None and keep.any() else 0.0
        best_c = (float("inf"), 0.0, 1.0)
        for a in (cfg.fusion_grid if lex_z is not None else (0.0,)):
            if not keep.any():
                break
            z = (1 - a) * enc_z + a * c * lex_z if a else enc_z
            t = fit_temperature(z, yd[keep])
            score = nll(z, yd[keep], t)
            if score < best_c[0] - 1e-9:
                best_c = (score, float(a), float(t))
        _, a, t = best_c
        # stored as z = w_enc * encoder + w_lex * lexical (service.Classifier.logits)
        fusion[h] = {"encoder": 1.0 - a, "lexical": a * c, "alpha": a}
        temperatures[h] = t
        if keep.any():
            z = (1 - a) * enc_z + a * c * lex_z if a else enc_z
            dev_metrics[h] = {
                "n": int(keep.sum()),
                "accuracy_encoder": _accuracy(enc_z, yd[keep]),
                "accuracy_lexical": _accuracy(lex_z, yd[keep]) if lex_z is not None else None,
                "accuracy_fused": _accuracy(z, yd[keep]),
                "fusion_alpha": a, "temperature": t,
                "ece_before": reliability(softmax(z), yd[keep])["ece"],
                "ece_after": reliability(softmax(z, t), yd[keep])["ece"],
            }
    fingerprint = rows_fingerprint(rows)
    version = f"clf-{dt.date.today().strftime('%Y%m%d')}-{hashlib.sha256((fingerprint + json.dumps(cfg.to_dict(), sort_keys=True, default=str)).encode()).hexdigest()[:8]}{version_tag}"  # noqa: E501
    clf = Classifier(model, encoder, labels, lexical, temperatures, fusion, version)
    metrics = {
        "model_version": version,
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": {"total": round(time.perf_counter() - started, 1), "frozen_part": round(frozen_seconds, 1),
                    "lexical": round(lexical_seconds, 1),
                    "fine_tuning": round(finetune_seconds - frozen_seconds - lexical_seconds, 1)},
        "stopped_by": stopped, "best_epoch": best["epoch"], "history": history,
        "tokens": n_tokens, "frozen_rows_computed": frozen_rows,
        "rows": {"total": len(rows), "train": int(len(tr_idx)), "dev": int(len(dev_idx))},
        "rows_by_source": _count_sources(rows), "label_counts": {h: label_counts(rows, h) for h in heads},
        "dev": dev_metrics, "fusion": fusion, "temperatures": temperatures, "data_fingerprint": fingerprint,
        "config": cfg.to_dict(), "threads": torch.get_num_threads(),
    }
    return clf, metrics


def _count_sources(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = r.get("source", "?").split(":")[0] if not r.get("source", "").startswith("corpus") else r["source"]
        out[key] = out.get(key, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------------------------
# writing the model folder
def save_model(clf: Classifier, metrics: dict, out_dir: Path, encoder_dir: Path, import_report: list[dict],
               *, backend: str = "torch-int8") -> None:
    """Write the model folder; ``backend`` is how it is served by default (``inference.json``). The int8 ONNX
    export is written whatever the default, so ``Classifier.load(dir, backend="onnx-int8")`` can serve it too."""
    from .onnx_export import export_int8

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clf.save(out_dir)
    shutil.copyfile(Path(encoder_dir) / "tokenizer.json", out_dir / "tokenizer.json")
    t0 = time.perf_counter()
    if export_int8(clf.model, out_dir) is None and backend == "onnx-int8":
        backend = "torch"
    metrics.setdefault("seconds", {})["onnx_export"] = round(time.perf_counter() - t0, 1)
    metrics["backend"] = backend
    (out_dir / "inference.json").write_text(json.dumps({"backend": backend}), encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps({**metrics, "imports": [
        {k: v for k, v in r.items() if k != "errors"} for r in import_report]}, ensure_ascii=False, indent=1),
        encoding="utf-8")
    (out_dir / "MODEL_CARD.md").write_text(model_card(metrics, import_report, encoder_dir), encoding="utf-8")


def model_card(m: dict, imports: list[dict], encoder_dir: Path) -> str:
    cfg = m["config"]
    lines = [
        f"# Model card: {m['model_version']}",
        "",
        f"Trained {m['trained_at']} in {m['seconds']['total']} s on {m['threads']} CPU threads "
        f"(frozen part {m['seconds']['frozen_part']} s, fine-tuning {m['seconds']['fine_tuning']} s; "
        f"stopped by {m['stopped_by']}, best epoch {m['best_epoch']}).",
        "",
        "## Model",
        f"- Encoder: bottom {cfg['num_layers']} of 12 layers of multilingual-e5-small (`{encoder_dir}`), embedding "
        f"table frozen (float16), {cfg['num_layers'] - cfg['trainable_layers']} lower layers frozen, top "
        f"{cfg['trainable_layers']} fine-tuned; mean pooling; max {cfg['max_len']} tokens.",
        "- Heads: request type, category level 1, category level 2, handling-unit type (masked cross-entropy).",
        f"- Lexical component: character {cfg['lexical_ngram'][0]}–{cfg['lexical_ngram'][1]}-gram TF-IDF + linear "
        "SVM per head, fused as (1−α)·logits + α·c·margins (α = lexical share, c = scale; per head on dev: "
        + ", ".join(f"{h} α={w['alpha']:.1f}" for h, w in m["fusion"].items()) + ").",
        f"- Calibration: temperature per head on dev: { {h: round(t, 3) for h, t in m['temperatures'].items()} }.",
        "- Reasons: the phrases with the largest lexical feature weight for the proposed label.",
        "",
        "## Data",
        f"- Rows: {m['rows']['total']} (train {m['rows']['train']}, dev {m['rows']['dev']}); tokens {m['tokens']}.",
        f"- By source: {m['rows_by_source']}.",
        f"- Data fingerprint: {m['data_fingerprint']}.",
    ]
    for r in imports:
        if "error" in r:
            lines.append(f"- {r['source']}: not read ({r['error']})")
        else:
            lines.append(f"- {r['source']}: {r['accepted']} of {r['total']} rows accepted, {r['rejected']} rejected.")
    lines += ["", "## Dev-split scores (used for early stopping, fusion and temperature)", "",
              "| head | n | encoder acc | lexical acc | fused acc | ECE before T | ECE after T |", "|---|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for h, d in m["dev"].items():
        lines.append(f"| {h} | {d['n']} | {fmt(d['accuracy_encoder'])} | {fmt(d['accuracy_lexical'])} | "
                     f"{fmt(d['accuracy_fused'])} | {fmt(d['ece_before'])} | {fmt(d['ece_after'])} |")
    lines += ["", "Test-set scores: `python -m classifier.evaluate --report-dir reports/classifier`.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train the request classifier")
    ap.add_argument("--out", type=Path, required=True, help="model folder to write (created)")
    ap.add_argument("--encoder", type=Path, default=None, help="converted multilingual-e5-small folder")
    ap.add_argument("--shared-data", default="default",
                    help="shared real messages CSV (default ../shared/datasets/tipdm2020/messages_segmented.csv or "
                         "$JSJB_CLASSIFIER_SHARED_DATA); 'none' to train on our corpus alone")
    ap.add_argument("--shared-part", choices=("all", "train", "none"), default="all",
                    help="'train' leaves out the fixed 20%% held-out test split (evaluation)")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="more labelled tables (CSV/XLSX)")
    ap.add_argument("--config", type=Path, help="JSON with TrainConfig overrides")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one TrainConfig override")
    ap.add_argument("--backend", choices=("onnx-int8", "torch", "torch-int8"), default="torch-int8",
                    help="default serving backend written to inference.json (onnx-int8 needs onnx + onnxruntime)")
    return ap


def config_from_args(args) -> TrainConfig:
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    return cfg.replace(**changes) if changes else cfg


def parse_shared(value: str) -> Path | str | None:
    """``--shared-data``: ``default`` (the shared file, if present), ``none``, or a path."""
    if str(value).lower() == "none":
        return None
    return "default" if value == "default" else Path(value)


def common_inputs(args) -> tuple[TrainConfig, Path, Path | str | None]:
    """(configuration, encoder folder, shared-data choice) from the options train, retrain and evaluate share."""
    cfg = config_from_args(args)
    encoder_dir = args.encoder
    if encoder_dir is None:
        from core.config import get_settings

        encoder_dir = get_settings().resolved_encoder_dir
    return cfg, Path(encoder_dir), parse_shared(args.shared_data)


def train_from_args(args, *, merge=None, version_tag: str = "", extra_metrics: dict | None = None) -> dict | None:
    """Gather the rows the options name, (``merge(rows, report) -> rows``), train, write ``args.out``.

    ``extra_metrics`` (filled by then, e.g. by ``merge``) are added to the metrics written. Returns the training
    metrics, or ``None`` when there are no training rows.
    """
    cfg, encoder_dir, shared = common_inputs(args)
    rows, _, report = gather_rows(shared=shared, shared_part=args.shared_part if shared else "none",
                                  extra=args.extra)
    if merge is not None:
        rows = merge(rows, report)
    if not rows:
        print("no training rows found", file=sys.stderr)
        return None
    for r in report:
        print(f"data: {r.get('source')}: " + (r["error"] if "error" in r else
              f"{r['accepted']}/{r['total']} rows accepted"), file=sys.stderr)
    taxonomy = load_taxonomy(default_taxonomy_path()) or None
    clf, metrics = fit(rows, encoder_dir, cfg, taxonomy=taxonomy, version_tag=version_tag)
    metrics.update(extra_metrics or {})
    save_model(clf, metrics, args.out, encoder_dir, report, backend=args.backend)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = train_from_args(args)
    if metrics is None:
        return 1
    print(json.dumps({"out": str(args.out), "model_version": metrics["model_version"],
                      "seconds": metrics["seconds"], "dev": {h: d["accuracy_fused"] for h, d in metrics["dev"].items()}},
                     ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
