"""Evaluate retrieval and the answer/decline decision; tune and calibrate on a dev split, report on a held-out test split.

    python -m knowledge_base.evaluate --report-dir reports/kb [--write-calibration]

Data: ``knowledge_base/eval/questions_part*.yaml`` (question → entry id) and ``unanswerable_part*.yaml`` (questions
no entry covers), against the seed entries (``knowledge_base/seed/entries_*.yaml``) indexed exactly as the service
indexes them (same phrasings, vectors, BM25 documents; an in-memory index, no database).

Protocol: each question goes to *dev* or *test* by a hash of its normalised text (stable as the files grow, about
half each). For each mode (hybrid, dense, lexical) the weights, the margin weight and the threshold are chosen on
dev only - a grid search maximising the balanced decision accuracy ½·(answerable questions answered with the right
entry + unanswerable questions declined), ties broken by MRR - and the confidence is a logistic fit of the decision
score on dev. The winning mode on dev is what the service uses (``--write-calibration`` stores it in
``knowledge_base/calibration.json``). Every number in the report's main table is measured on test.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from knowledge_base.content import indexed_entry
from knowledge_base.index import KBIndex
from knowledge_base.retrieval import CALIBRATION_FILE, MODES, Candidates, HybridRetriever, RetrievalConfig
from knowledge_base.seed import SEED_DIR, load_seed_entries
from knowledge_base.text import normalise

logger = logging.getLogger(__name__)
EVAL_DIR = Path(__file__).resolve().parent / "eval"

GRIDS: dict[str, dict[str, list[float]]] = {
    "hybrid": {"centroid_weight": [0.0, 0.25, 0.5, 0.75, 1.0], "answer_weight": [0.0, 0.25, 0.5, 0.75, 1.0],
               "lexical_weight": [0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2], "lexical_saturation": [4, 8, 16, 32],
               "margin_weight": [0.0, 0.5, 1.0, 2.0]},
    "dense": {"centroid_weight": [0.0, 0.25, 0.5, 0.75, 1.0], "answer_weight": [0.0, 0.25, 0.5, 0.75, 1.0],
              "margin_weight": [0.0, 0.5, 1.0, 2.0]},
    "lexical": {"lexical_saturation": [2, 4, 8, 16, 32, 64], "margin_weight": [0.0, 0.5, 1.0, 2.0]},
}


@dataclass(frozen=True)
class EvalQuestion:
    text: str
    gold: str | None  # None: unanswerable
    source: str
    split: str  # dev | test


def split_of(text: str) -> str:
    return "dev" if int(hashlib.sha256(normalise(text).encode("utf-8")).hexdigest(), 16) % 2 == 0 else "test"


def load_questions(folder: Path = EVAL_DIR) -> list[EvalQuestion]:
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("questions_part*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            text = str(item["question"]).strip()
            if normalise(text) in seen:
                continue
            seen.add(normalise(text))
            out.append(EvalQuestion(text, str(item["entry_id"]), path.name, split_of(text)))
    for path in sorted(folder.glob("unanswerable_part*.yaml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            text = str(item).strip()
            if normalise(text) in seen:
                continue
            seen.add(normalise(text))
            out.append(EvalQuestion(text, None, path.name, split_of(text)))
    return out


# ------------------------------------------------------------------------------------------------ vectors


class VectorCache:
    """Embeddings by (prompt, text) in an .npz beside the reports, keyed by the encoder's fingerprint."""

    def __init__(self, embedder: Any, path: Path | None, encoder_key: str) -> None:
        self.embedder = embedder
        self.path = path
        self.key = encoder_key
        self.vectors: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            data = np.load(path, allow_pickle=False)
            if str(data["encoder"]) == encoder_key:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def get(self, texts: list[str], prompt: str) -> np.ndarray:
        keys = [f"{prompt}|{t}" for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        if missing:
            fn = self.embedder.encode_queries if prompt == "query" else self.embedder.encode_passages
            for start in range(0, len(missing), 64):
                chunk = missing[start:start + 64]
                for key, vec in zip(chunk, fn([k.split("|", 1)[1] for k in chunk])):
                    self.vectors[key] = vec
        if not keys:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self.vectors[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        np.savez(self.path, encoder=np.array(self.key), keys=np.array(keys),
                 vectors=np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384), np.float32))


def build_seed_index(cache: VectorCache, seed_dir: Path = SEED_DIR) -> KBIndex:
    entries = [indexed_entry(slug, 1, content) for slug, content in load_seed_entries(seed_dir)]
    ph = cache.get([p for e in entries for p in e.phrasings], "passage")
    ans = cache.get([e.answer for e in entries], "passage")
    index = KBIndex(ph.shape[1], dense_kind="flat")
    index.upsert_many(entries, ph, ans, journal=False)
    return index


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class FeatureMatrix:
    """Candidates of many questions padded into matrices (n_questions × max_candidates)."""

    slugs: list[list[str]]
    dense: np.ndarray
    centroid: np.ndarray
    answer: np.ndarray
    bm25: np.ndarray
    valid: np.ndarray
    gold_col: np.ndarray  # column of the gold entry among the candidates, -1 if absent or unanswerable
    answerable: np.ndarray

    @classmethod
    def of(cls, cands: list[Candidates], golds: list[str | None]) -> FeatureMatrix:
        width = max(1, max(len(c.slugs) for c in cands))
        n = len(cands)
        mats = {k: np.zeros((n, width), dtype=np.float32) for k in ("dense", "centroid", "answer", "bm25")}
        valid = np.zeros((n, width), dtype=bool)
        gold_col = np.full(n, -1, dtype=np.int64)
        for i, (c, gold) in enumerate(zip(cands, golds)):
            m = len(c.slugs)
            for k in mats:
                mats[k][i, :m] = getattr(c, k)
            valid[i, :m] = True
            if gold is not None and gold in c.slugs:
                gold_col[i] = c.slugs.index(gold)
        return cls([c.slugs for c in cands], mats["dense"], mats["centroid"], mats["answer"], mats["bm25"], valid,
                   gold_col, np.array([g is not None for g in golds]))

    def raw(self, cfg: RetrievalConfig) -> np.ndarray:
        raw = cfg.raw_score(self.dense, self.centroid, self.answer, self.bm25)
        return np.where(self.valid, raw, -np.inf)


@dataclass
class Outcome:
    top_correct: np.ndarray  # answerable and top-1 is the gold entry
    rank: np.ndarray  # 0-based rank of the gold entry (large if absent)
    decision: np.ndarray  # raw decision score: top + margin_weight * (top - second)
    top_slug: list[str | None]


def outcome(fm: FeatureMatrix, cfg: RetrievalConfig) -> Outcome:
    raw = fm.raw(cfg)
    order = np.argsort(-raw, axis=1, kind="stable")
    top = order[:, 0]
    s_sorted = np.take_along_axis(raw, order, axis=1)
    first = s_sorted[:, 0]
    second = s_sorted[:, 1] if raw.shape[1] > 1 else np.full(len(raw), -np.inf)
    has_first = np.isfinite(first)
    first = np.where(has_first, first, -10.0)
    margin = np.where(np.isfinite(second), first - second, 0.0)
    decision = first + cfg.margin_weight * margin
    has_gold = fm.gold_col >= 0
    gold_score = np.take_along_axis(raw, np.maximum(fm.gold_col, 0)[:, None], axis=1)
    rank = np.where(has_gold, (raw > gold_score).sum(axis=1), 10_000)
    top_correct = fm.answerable & (fm.gold_col == top) & has_first & (fm.gold_col >= 0)
    top_slug = [fm.slugs[i][top[i]] if has_first[i] and fm.slugs[i] else None for i in range(len(raw))]
    return Outcome(top_correct, rank, decision, top_slug)


def best_threshold(o: Outcome, answerable: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(raw threshold, balanced accuracy) maximising ½(answered-correct rate + decline rate) on ``mask``;
    the threshold is the middle of the best plateau."""
    a = answerable & mask
    u = (~answerable) & mask
    n_a, n_u = max(int(a.sum()), 1), max(int(u.sum()), 1)
    values = np.unique(o.decision[mask])
    cands = np.concatenate([[values[0] - 1e-3], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-3]])
    good = np.sort(o.decision[o.top_correct & a])
    bad = np.sort(o.decision[u])
    answered_good = len(good) - np.searchsorted(good, cands, side="left")  # decision >= t
    declined_bad = np.searchsorted(bad, cands, side="left")  # decision < t
    bal = 0.5 * (answered_good / n_a + declined_bad / n_u)
    best = bal.max()
    on_plateau = np.flatnonzero(np.abs(bal - best) <= 1e-12)
    end = 0
    while end + 1 < len(on_plateau) and on_plateau[end + 1] == on_plateau[end] + 1:
        end += 1  # the first contiguous run of best thresholds
    lo, hi = cands[on_plateau[0]], cands[on_plateau[end]]
    return float((lo + hi) / 2), float(best)


def metrics(o: Outcome, answerable: np.ndarray, mask: np.ndarray, raw_threshold: float) -> dict[str, Any]:
    a = answerable & mask
    u = (~answerable) & mask
    answered = o.decision >= raw_threshold
    declined = ~answered
    n_a, n_u = int(a.sum()), int(u.sum())
    decl_total = int((declined & mask).sum())
    out = {
        "answerable": n_a,
        "unanswerable": n_u,
        "hit@1": float((o.rank[a] < 1).mean()) if n_a else None,
        "hit@3": float((o.rank[a] < 3).mean()) if n_a else None,
        "mrr": float((1.0 / (o.rank[a] + 1)).mean()) if n_a else None,
        "answered_correct": float((o.top_correct & answered & a).sum() / n_a) if n_a else None,
        "answered_wrong": float((~o.top_correct & answered & a).sum() / n_a) if n_a else None,
        "answerable_declined": float((declined & a).sum() / n_a) if n_a else None,
        "decline_recall": float((declined & u).sum() / n_u) if n_u else None,
        "decline_precision": float((declined & u).sum() / decl_total) if decl_total else None,
        "precision_when_answering": (float((o.top_correct & answered & a).sum() / (answered & mask).sum())
                                     if (answered & mask).sum() else None),
    }
    if n_a and n_u:
        out["balanced_accuracy"] = 0.5 * (out["answered_correct"] + out["decline_recall"])
    return out


def fit_calibration(o: Outcome, answerable: np.ndarray, mask: np.ndarray, raw_threshold: float) -> tuple[float, float]:
    """(slope, offset) of a logistic fit P(correct answer | decision score) on ``mask`` (classes balanced)."""
    from sklearn.linear_model import LogisticRegression

    x = o.decision[mask].reshape(-1, 1)
    y = (o.top_correct & answerable)[mask].astype(int)
    if len(set(y.tolist())) < 2:
        return 40.0, raw_threshold
    model = LogisticRegression(C=100.0, class_weight="balanced", max_iter=1000).fit(x, y)
    slope = float(model.coef_[0, 0])
    offset = float(-model.intercept_[0] / slope) if slope else raw_threshold
    return slope, offset


def tune(mode: str, fm: FeatureMatrix, dev: np.ndarray, base: RetrievalConfig) -> tuple[RetrievalConfig, dict]:
    grid = GRIDS[mode]
    names = list(grid)
    best: tuple[float, float] = (-1.0, -1.0)
    best_cfg = base
    for values in itertools.product(*(grid[n] for n in names)):
        cfg = RetrievalConfig(**{**base.to_dict(), "mode": mode, **dict(zip(names, values))})
        o = outcome(fm, cfg)
        _, bal = best_threshold(o, fm.answerable, dev)
        a = fm.answerable & dev
        mrr = float((1.0 / (o.rank[a] + 1)).mean())
        if (bal, mrr) > best:
            best, best_cfg = (bal, mrr), cfg
    o = outcome(fm, best_cfg)
    raw_t, bal = best_threshold(o, fm.answerable, dev)
    slope, offset = fit_calibration(o, fm.answerable, dev, raw_t)
    best_cfg.calib_slope, best_cfg.calib_offset = slope, offset
    best_cfg.threshold = float(best_cfg.confidence(raw_t))
    return best_cfg, {"dev_balanced_accuracy": bal, "raw_threshold": raw_t, "grid": {n: grid[n] for n in names}}


# ------------------------------------------------------------------------------------------------ report


def threshold_curves(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), sharey=True)
    for ax, (mode, r) in zip(np.atleast_1d(axes), results.items()):
        curve = r["curve"]
        ts = [c["threshold"] for c in curve]
        ax.plot(ts, [c["answered_correct"] for c in curve], label="answerable: answered correctly")
        ax.plot(ts, [c["decline_recall"] for c in curve], label="unanswerable: declined")
        ax.plot(ts, [c["answered_wrong"] for c in curve], label="answerable: wrong entry", linestyle=":")
        ax.axvline(r["config"]["threshold"], color="grey", linestyle="--", label="threshold (from dev)")
        ax.set_title(f"{mode} (test split)")
        ax.set_xlabel("confidence threshold")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("rate")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curve(o: Outcome, fm: FeatureMatrix, mask: np.ndarray, cfg: RetrievalConfig) -> list[dict[str, float]]:
    out = []
    for t in np.linspace(0.0, 1.0, 101):
        # confidence is monotone in the decision score: threshold t on confidence <=> raw threshold below
        if t <= 0.0:
            raw_t = -np.inf
        elif t >= 1.0:
            raw_t = np.inf
        else:
            raw_t = cfg.calib_offset + np.log(t / (1 - t)) / cfg.calib_slope
        m = metrics(o, fm.answerable, mask, raw_t)
        out.append({"threshold": round(float(t), 2), "answered_correct": m["answered_correct"] or 0.0,
                    "answered_wrong": m["answered_wrong"] or 0.0, "decline_recall": m["decline_recall"] or 0.0})
    return out


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown(report: dict) -> str:
    lines = ["# Knowledge-base retrieval evaluation", "",
             f"Generated {report['generated_at']} by `python -m knowledge_base.evaluate`. "
             f"{report['entries']} seed entries; {report['questions']['answerable']} answerable and "
             f"{report['questions']['unanswerable']} unanswerable questions "
             f"(dev {report['questions']['dev']}, test {report['questions']['test']}).", "",
             "Weights, margin weight, threshold and calibration of each mode were chosen on the **dev** split only "
             "(split by a hash of the question text); every number below is measured on the held-out **test** split. "
             f"Chosen mode (best on dev): **{report['chosen_mode']}**.", "",
             "| mode | hit@1 | hit@3 | MRR | answered correctly | wrong entry | answerable declined | "
             "decline recall (correct decline) | decline precision | balanced acc. | threshold (confidence) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in report["modes"].items():
        t = r["test"]
        lines.append(f"| {mode} | {fmt(t['hit@1'])} | {fmt(t['hit@3'])} | {fmt(t['mrr'])} | "
                     f"{fmt(t['answered_correct'])} | {fmt(t['answered_wrong'])} | {fmt(t['answerable_declined'])} | "
                     f"{fmt(t['decline_recall'])} | {fmt(t['decline_precision'])} | {fmt(t.get('balanced_accuracy'))} | "
                     f"{r['config']['threshold']:.3f} |")
    lines += ["", "Targets: hit@1 ≥ 0.92, correct decline ≥ 0.90 "
              f"({report['chosen_mode']} on test: hit@1 {fmt(report['modes'][report['chosen_mode']]['test']['hit@1'])},"
              f" correct decline {fmt(report['modes'][report['chosen_mode']]['test']['decline_recall'])}).", "",
              "Same configuration on dev (where it was tuned) and on all questions, for reference:", "",
              "| mode | split | hit@1 | hit@3 | MRR | answered correctly | decline recall | balanced acc. |",
              "|---|---|---|---|---|---|---|---|"]
    for mode, r in report["modes"].items():
        for split in ("dev", "all"):
            m = r[split]
            lines.append(f"| {mode} | {split} | {fmt(m['hit@1'])} | {fmt(m['hit@3'])} | {fmt(m['mrr'])} | "
                         f"{fmt(m['answered_correct'])} | {fmt(m['decline_recall'])} | "
                         f"{fmt(m.get('balanced_accuracy'))} |")
    lines += ["", "Chosen configurations:", ""]
    for mode, r in report["modes"].items():
        cfg = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r["config"].items()}
        lines.append(f"- **{mode}**: `{json.dumps(cfg, ensure_ascii=False)}`")
    lines += ["", "![threshold curves](threshold_curves.png)", "",
              f"## Errors of {report['chosen_mode']} on test", ""]
    for err in report["modes"][report["chosen_mode"]]["test_errors"][:60]:
        lines.append(f"- {err['kind']}: {err['question']} — expected `{err['expected']}`, got `{err['got']}` "
                     f"(confidence {err['confidence']:.2f})")
    conflicts = report["modes"][report["chosen_mode"]].get("possible_label_conflicts", [])
    if conflicts:
        lines += ["", "## Unanswerable questions answered with high confidence (check whether an entry now covers "
                  "them)", ""]
        for c in conflicts:
            lines.append(f"- {c['question']} → `{c['got']}` ({c['confidence']:.2f}, {c['split']})")
    return "\n".join(lines) + "\n"


def run(report_dir: Path, write_calibration: bool, encoder_dir: Path | None, cache_path: Path | None) -> dict:
    from core.config import get_settings
    from encoder.embedder import get_embedder
    from knowledge_base.service import encoder_fingerprint

    settings = get_settings()
    encoder_dir = Path(encoder_dir or settings.resolved_encoder_dir)
    embedder = get_embedder(encoder_dir)
    cache = VectorCache(embedder, cache_path, encoder_fingerprint(encoder_dir))
    started = time.perf_counter()
    index = build_seed_index(cache)
    questions = load_questions()
    known = set(index.versions)
    unknown = sorted({q.gold for q in questions if q.gold is not None and q.gold not in known})
    if unknown:
        logger.warning("questions refer to entries missing from the seed: %s", unknown)
    questions = [q for q in questions if q.gold is None or q.gold in known]
    qvecs = cache.get([normalise(q.text) for q in questions], "query")
    cache.save()
    golds = [q.gold for q in questions]
    dev = np.array([q.split == "dev" for q in questions])
    test = ~dev
    everything = np.ones(len(questions), dtype=bool)
    retriever = HybridRetriever(index, None, RetrievalConfig(candidates=30))
    results: dict[str, Any] = {}
    best_mode, best_dev = "hybrid", (-1.0, -1.0)
    for mode in MODES:
        cands = [retriever.candidates(q.text, mode, query_vector=qvecs[i]) for i, q in enumerate(questions)]
        fm = FeatureMatrix.of(cands, golds)
        cfg, info = tune(mode, fm, dev, RetrievalConfig(mode=mode, candidates=30))
        o = outcome(fm, cfg)
        raw_t = info["raw_threshold"]
        res = {"config": cfg.to_dict(), "tuning": info, "dev": metrics(o, fm.answerable, dev, raw_t),
               "test": metrics(o, fm.answerable, test, raw_t), "all": metrics(o, fm.answerable, everything, raw_t),
               "curve": curve(o, fm, test, cfg)}
        errors, conflicts = [], []
        for i, q in enumerate(questions):
            answered = o.decision[i] >= raw_t
            conf = cfg.confidence(float(o.decision[i]))
            if q.gold is None and answered and conf >= 0.9:
                conflicts.append({"question": q.text, "got": o.top_slug[i], "confidence": conf, "split": q.split})
            if not test[i]:
                continue
            if q.gold is not None and not o.top_correct[i]:
                kind = "wrong entry" if answered else "declined (wrong top-1)"
            elif q.gold is not None and not answered:
                kind = "declined (right top-1)"
            elif q.gold is None and answered:
                kind = "answered an unanswerable question"
            else:
                continue
            errors.append({"kind": kind, "question": q.text, "expected": q.gold or "decline", "got": o.top_slug[i],
                           "confidence": conf})
        res["test_errors"] = errors
        res["possible_label_conflicts"] = conflicts
        results[mode] = res
        key = (info["dev_balanced_accuracy"], res["dev"]["mrr"] or 0.0)
        if key > best_dev:
            best_mode, best_dev = mode, key
    report = {
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "entries": len(index),
        "questions": {"answerable": sum(q.gold is not None for q in questions),
                      "unanswerable": sum(q.gold is None for q in questions),
                      "dev": int(dev.sum()), "test": int(test.sum())},
        "missing_gold_entries": unknown,
        "chosen_mode": best_mode,
        "modes": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    threshold_curves(results, report_dir / "threshold_curves.png")
    (report_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    (report_dir / "report.md").write_text(markdown(report))
    if write_calibration:
        CALIBRATION_FILE.write_text(json.dumps({
            "chosen_mode": best_mode,
            "note": "written by `python -m knowledge_base.evaluate --write-calibration`; tuned on the dev split",
            "generated_at": report["generated_at"],
            "modes": {m: r["config"] for m, r in results.items()},
            "test": {m: r["test"] for m, r in results.items()},
        }, ensure_ascii=False, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knowledge_base.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report-dir", type=Path, default=Path("reports/kb"))
    parser.add_argument("--write-calibration", action="store_true",
                        help=f"store the chosen mode and configurations in {CALIBRATION_FILE.name}")
    parser.add_argument("--encoder", type=Path, default=None, help="converted encoder folder (default: settings)")
    parser.add_argument("--vector-cache", type=Path, default=None,
                        help="reuse embeddings between runs (an .npz; default: <data_dir>/cache/kb_eval_vectors.npz)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from core.config import get_settings

    cache_path = args.vector_cache or get_settings().data_dir / "cache" / "kb_eval_vectors.npz"
    report = run(args.report_dir, args.write_calibration, args.encoder, cache_path)
    chosen = report["chosen_mode"]
    print(f"chosen mode: {chosen} (by dev balanced accuracy); test split:")
    for mode, r in report["modes"].items():
        t = r["test"]
        print(f"  {mode:8s} hit@1 {fmt(t['hit@1'])} hit@3 {fmt(t['hit@3'])} MRR {fmt(t['mrr'])} | answered correctly "
              f"{fmt(t['answered_correct'])} correct decline {fmt(t['decline_recall'])} decline precision "
              f"{fmt(t['decline_precision'])} | threshold {r['config']['threshold']:.3f}")
    print(f"report: {args.report_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
